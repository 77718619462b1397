"""The lab's code rule, checked statically: what a submission may import, call and touch.

The lab allows torch, torch.nn, torch.nn.functional and numpy only, and block E is numpy only.
Submissions may be hostile (they can try to forge their grade from inside the test process), so the
check parses the file with `ast` and never runs it. The lists it enforces live in labs/lab.toml's
[rules] table, read through labkit.labinfo.

    python -m labkit.grading.rules FILE...     print the violations; exit 1 if there are any

A static check cannot follow every path: it is one layer of the grader's defences, not all of them.
Known blind spot: an object reached through a module and handed to a function under another name
(`patch(np.testing)`) can still be changed there.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core.labinfo import Rules, load_lab, user_language
from minituner.i18n import LANGUAGES, N_, tr

ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
MUTATING_FUNCTIONS = frozenset({"setattr", "delattr"})
FUNCTION_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
SCOPES = (*FUNCTION_SCOPES, ast.ClassDef, *COMPREHENSIONS)
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
MAX_CONSTRUCT = 60
_DUNDER_IN_TEXT = re.compile(r"__[A-Za-z0-9]\w*?__")
Located = ast.stmt | ast.expr | ast.arg | ast.pattern  # the nodes a violation can point at

#: A finding is this prefix, then its message (_MESSAGES), each in the reader's language.
_PREFIX = N_("line {line}: `{construct}`: ")
_UNCHECKED = N_("line 1: the file is nested too deeply to be checked, which the lab does not allow")
_MESSAGES: dict[str, str] = {
    "import": N_("the lab allows imports from {allowed} only"),
    "import-relative": N_("relative imports are not allowed"),
    "import-star": N_("`from ... import *` is not allowed"),
    "builtin": N_("the built-in `{name}` is not allowed in the lab"),
    "builtin-type": N_("the built-in `type` is allowed only as `type(x)`"),
    "getattr-bare": N_("`{name}` may only be called directly"),
    "getattr-computed": N_("the attribute name given to `{name}` must be a string literal or a variable"),
    "getattr-module": N_(
        "`{name}` on a module, or on something reached through one, needs a string literal as the name"
    ),
    "subclass": N_(
        "a class may not derive from `{name}`: a tensor subclass can change how the tests compare "
        "tensors"
    ),
    "subclass-computed": N_("a class's bases must be named, not computed"),
    "dunder-string": N_(
        "a string that names a dunder (`{name}`): the only dunder names allowed are {allowed}, "
        "as strings too (a dunder in a string is how code reaches what the rule forbids by name)"
    ),
    "dunder": N_("the only dunder names allowed are {allowed}"),
    "module-attr": N_(
        "the name `{name}` is off-limits in the lab: through it, code reaches the OS, files, the "
        "interpreter or torch's machinery"
    ),
    "private": N_("the private names of modules (here `{name}`) are not allowed"),
    "assign-module": N_("code may not change a module, nor anything reached through one"),
    "module-value": N_("a module may only be used as `{name}.attribute`"),
    "numpy-only": N_("in `{function}`: block {block}'s functions ({functions}) use numpy only, not {modules}"),
    "numpy-only-via": N_(
        "in `{function}`, which `{caller}` uses: block {block}'s functions ({functions}) use numpy "
        "only, not {modules}"
    ),
}


@dataclass(frozen=True)
class Violation:
    """One construct of the submission that breaks the lab's code rule."""

    line: int  # 1-based line number in the submission
    code: str  # import, builtin, getattr, dunder, module-attr, private, assign-module, module-value,
    #            subclass, numpy-only, unchecked
    text: dict[str, str]  # {"en": ..., "es": ...}: "line N: `construct`: the rule"


def check_source(source: str) -> list[Violation]:
    """The violations of the lab's code rule in a submission's source, sorted by line.

    [] for a file that does not parse: the graded tests report the SyntaxError themselves.
    """
    source = source.removeprefix("\ufeff")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # ValueError: null bytes
        return []
    except (RecursionError, MemoryError):  # nested too deeply for ast: never let that pass unchecked
        return [Violation(1, "unchecked", {lang: tr(lang, _UNCHECKED) for lang in LANGUAGES})]
    return _Checker(source, tree, load_lab().rules).run()


def format_violations(violations: Sequence[Violation], lang: str) -> str:
    """One line per violation, "line N: ...", in the language lang ("en" or "es")."""
    return "\n".join(v.text[lang] for v in violations)


# ----------------------------------------------------------------------------- scopes
def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _scope_parts(node: ast.AST) -> tuple[list[ast.AST], list[ast.AST]]:
    """A scope's parts run in the enclosing scope (decorators, defaults, bases...) and its own."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        annotations = [a.annotation for a in _arguments(args) if a.annotation] + [node.returns]
        outer = [*node.decorator_list, *args.defaults, *args.kw_defaults, *annotations]
        return [n for n in outer if n is not None], list(node.body)
    if isinstance(node, ast.Lambda):
        return [*node.args.defaults, *(d for d in node.args.kw_defaults if d)], [node.body]
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *node.keywords], list(node.body)
    if isinstance(node, COMPREHENSIONS):
        first = node.generators[0]
        rest = [n for n in ast.iter_child_nodes(node) if n is not first]
        return [first.iter], [*rest, first.target, *first.ifs]
    return [], list(ast.iter_child_nodes(node))


def _arguments(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def _own_nodes(nodes: Sequence[ast.AST]) -> Iterator[ast.AST]:
    """The nodes and their descendants, without entering nested scopes (which are yielded)."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, SCOPES):
            stack.extend(ast.iter_child_nodes(node))


def _local_names(node: ast.AST, own: Sequence[ast.AST]) -> frozenset[str]:
    """The names a function or comprehension binds itself (imports aside: they never shadow)."""
    names = {a.arg for a in _arguments(node.args)} if isinstance(node, FUNCTION_SCOPES) else set()
    declared_global: set[str] = set()
    for n in _own_nodes(own):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            names.add(n.id)
        elif isinstance(n, (*DEFINITIONS, ast.MatchAs, ast.MatchStar, ast.ExceptHandler)) and n.name:
            names.add(n.name)
        elif isinstance(n, ast.Global):
            declared_global.update(n.names)
    return frozenset(names - declared_global)


def _free_loads(tree: ast.Module) -> set[ast.Name]:
    """The names read where no enclosing function binds them: module globals and built-ins.

    Module and class bindings do not count: `open = open` at module level still reads the built-in.
    """
    free: set[ast.Name] = set()
    stack: list[tuple[ast.AST, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, bound = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            free.add(node)
        outer, own = _scope_parts(node)
        inner = (
            bound | _local_names(node, own)
            if isinstance(node, (*FUNCTION_SCOPES, *COMPREHENSIONS))
            else bound
        )
        stack.extend((n, bound) for n in outer)
        stack.extend((n, inner) for n in own)
    return free


# ----------------------------------------------------------------------------- modules
def _root(node: ast.expr) -> ast.expr:
    """The start of an attribute / subscript chain: `torch` for torch.nn.functional.linear[0].

    getattr(x, name) is a step of the chain like x.name: `torch` for getattr(torch.nn, "functional").
    """
    while True:
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        elif (obj := _getattr_object(node)) is not None:
            node = obj
        else:
            return node


def _getattr_object(node: ast.expr) -> ast.expr | None:
    """x, for getattr(x, ...) with x given plainly (not *args); else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and node.args:
        first = node.args[0]
        return None if isinstance(first, ast.Starred) else first
    return None


def _bound_by(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str]]:
    """(name bound, dotted path of what it is bound to) for each alias of an import.

    `import torch.nn` binds torch to torch, `import torch.nn as nn` binds nn to torch.nn.
    """
    for alias in node.names:
        if isinstance(node, ast.Import):
            yield (
                alias.asname or alias.name.partition(".")[0],
                alias.name if alias.asname else alias.name.partition(".")[0],
            )
        elif alias.name != "*":
            yield alias.asname or alias.name, f"{node.module}.{alias.name}"


def _imported(tree: ast.Module) -> dict[str, str]:
    """{name: dotted path} for every name bound by an import, anywhere in the file."""
    return {
        name: path
        for node in ast.walk(tree)
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and not node.level)
        for name, path in _bound_by(node)
    }


@dataclass(frozen=True)
class _Reach:
    """What leads to a module: names bound to one, and functions that return one (or what it holds)."""

    names: frozenset[str]
    functions: frozenset[str]

    def __call__(self, node: ast.expr) -> bool:
        """Whether node is a module, or reached through one (attributes, subscripts, getattr, such calls)."""
        root = _root(node)
        if isinstance(root, ast.Name):
            return root.id in self.names
        return isinstance(root, ast.Call) and isinstance(root.func, ast.Name) and root.func.id in self.functions


def _module_reach(tree: ast.Module, imported: dict[str, str]) -> _Reach:
    """Imported names, names assigned from what leads to a module (`t = torch.nn`, `t = getattr(F, "torch")`,
    `t = f()`), and functions whose return value does (`def f(): return getattr(F, "torch")`)."""
    names, functions = set(imported), set[str]()
    pairs: list[tuple[ast.expr, ast.expr | None]]
    pairs = [(t, n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets]
    pairs += [(n.target, n.value) for n in ast.walk(tree) if isinstance(n, (ast.AnnAssign, ast.NamedExpr))]
    returns = [(f.name, r.value) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
               for r in ast.walk(f) if isinstance(r, ast.Return) and r.value is not None]  # fmt: skip
    returns += [(t.id, v.body) for t, v in pairs if isinstance(t, ast.Name) and isinstance(v, ast.Lambda)]
    changed = True
    while changed:
        reach = _Reach(frozenset(names), frozenset(functions))
        before = (len(names), len(functions))
        names |= {t.id for t, v in pairs if isinstance(t, ast.Name) and v is not None and reach(v)}
        functions |= {name for name, value in returns if reach(value)}
        changed = (len(names), len(functions)) != before
    return _Reach(frozenset(names), frozenset(functions))


def _is_type_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type"


# ----------------------------------------------------------------------------- the checker
class _Checker:
    """Walks one parsed submission once and collects its violations."""

    def __init__(self, source: str, tree: ast.Module, rules: Rules) -> None:
        self.tree, self.rules = tree, rules
        self.lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        self.free = _free_loads(tree)
        self.imported = _imported(tree)
        self.modules = {name for name, path in self.imported.items() if path in rules.imports}
        self.reach = _module_reach(tree, self.imported)
        self.found: dict[tuple[int, str, str], Violation] = {}

    def run(self) -> list[Violation]:
        checks: dict[type[ast.AST], Callable[[Any], None]] = {
            ast.Import: self.check_import,
            ast.ImportFrom: self.check_import,
            ast.Attribute: self.check_attribute,
            ast.Name: self.check_name,
            ast.Call: self.check_call,
            ast.arg: lambda n: self.check_dunder(n, n.arg),
            ast.FunctionDef: self.check_definition,
            ast.AsyncFunctionDef: self.check_definition,
            ast.ClassDef: self.check_definition,
            ast.MatchClass: self.check_match_class,
            ast.Constant: self.check_string,
        }
        for node in ast.walk(self.tree):
            check = checks.get(type(node))
            if check:
                check(node)
        self.check_numpy_only()
        return [self.found[key] for key in sorted(self.found)]

    # ------------------------------------------------------------------ reporting
    def add(self, node: Located, code: str, key: str, construct: str | None = None, **fields: str) -> None:
        """Record a violation at node's line, with the message _MESSAGES[key]."""
        line = node.lineno
        what = construct if construct is not None else self.snippet(node)
        text = {
            lang: tr(lang, _PREFIX).format(line=line, construct=what) + tr(lang, _MESSAGES[key]).format(**fields)
            for lang in LANGUAGES
        }
        self.found[line, code, text["en"]] = Violation(line, code, text)

    def snippet(self, node: Located) -> str:
        """node's source text on one line, shortened (ast's offsets count UTF-8 bytes)."""
        lines = [line.encode() for line in self.lines[node.lineno - 1 : node.end_lineno or node.lineno]]
        lines[-1] = lines[-1][: node.end_col_offset]
        lines[0] = lines[0][node.col_offset :]
        text = " ".join(b" ".join(lines).decode(errors="replace").split())
        return text if len(text) <= MAX_CONSTRUCT else text[: MAX_CONSTRUCT - 3] + "..."

    # ------------------------------------------------------------------ names
    def check_name_rules(self, node: Located, name: str, construct: str | None, through_module: bool) -> None:
        """An attribute-like name (x.name, from m import name, getattr(x, "name"))."""
        if name in self.rules.attributes:
            self.add(node, "module-attr", "module-attr", construct, name=name)
        elif through_module and name.startswith("_") and not _is_dunder(name):
            self.add(node, "private", "private", construct, name=name)
        self.check_dunder(node, name, construct)

    def check_dunder(self, node: Located, name: str, construct: str | None = None) -> None:
        if _is_dunder(name) and name not in self.rules.dunders:
            self.add(node, "dunder", "dunder", construct, allowed=", ".join(sorted(self.rules.dunders)))

    def through_module(self, node: ast.expr) -> bool:
        """Whether node is a module, or reached through one by attributes and subscripts."""
        root = _root(node)
        return self.reach(node) or _is_type_call(root)

    def check_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        keyword = "class" if isinstance(node, ast.ClassDef) else "def"
        self.check_dunder(node, node.name, f"{keyword} {node.name}")
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                self.check_base(base)

    def check_base(self, base: ast.expr) -> None:
        """A base class: named (Generic[T] too), and none of the lab's forbidden classes."""
        named = base.value if isinstance(base, ast.Subscript) else base
        if isinstance(named, ast.Name):
            name = self.imported.get(named.id, named.id).rpartition(".")[2]
        elif isinstance(named, ast.Attribute):
            name = named.attr
        else:
            self.add(base, "subclass", "subclass-computed")
            return
        if name in self.rules.base_classes:
            self.add(base, "subclass", "subclass", name=name)

    def check_match_class(self, node: ast.MatchClass) -> None:
        for name in node.kwd_attrs:
            self.check_name_rules(
                node, name, f"{self.snippet(node.cls)}({name}=...)", self.through_module(node.cls)
            )

    # ------------------------------------------------------------------ imports
    def check_import(self, node: ast.Import | ast.ImportFrom) -> None:
        allowed = ", ".join(sorted(self.rules.imports))
        for alias in node.names:
            bound_name = alias.asname or alias.name
            if isinstance(node, ast.Import):
                construct = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                if alias.name not in self.rules.imports:
                    self.add(node, "import", "import", construct, allowed=allowed)
                self.check_dunder(node, bound_name, construct)
                continue
            construct = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
            if node.level:
                self.add(node, "import", "import-relative", construct)
            elif node.module not in self.rules.imports:
                self.add(node, "import", "import", construct, allowed=allowed)
            if alias.name == "*":
                self.add(node, "import", "import-star", construct)
            else:
                self.check_name_rules(node, alias.name, construct, through_module=True)
                self.check_dunder(node, bound_name, construct)

    # ------------------------------------------------------------------ attributes and names
    def check_attribute(self, node: ast.Attribute) -> None:
        self.check_name_rules(node, node.attr, None, self.through_module(node.value))
        if not isinstance(node.ctx, ast.Load) and self.through_module(node.value):
            self.add(node, "assign-module", "assign-module")

    def check_name(self, node: ast.Name) -> None:
        free = node in self.free
        if free and node.id in self.rules.builtins:
            self.add(node, "builtin", "builtin", name=node.id)
            return
        self.check_dunder(node, node.id)
        parent = self.parents.get(node)
        if not free:
            return
        if node.id == "type" and not self.is_plain_type_use(node, parent):
            self.add(node, "builtin", "builtin-type")
        elif node.id in ATTRIBUTE_FUNCTIONS and not (isinstance(parent, ast.Call) and parent.func is node):
            self.add(node, "getattr", "getattr-bare", name=node.id)
        elif node.id in self.modules and not self.is_module_use(node, parent):
            self.add(node, "module-value", "module-value", name=node.id)

    def check_string(self, node: ast.Constant) -> None:
        """A string constant that is (or holds) a dunder name the rule does not allow: `"__globals__"`."""
        if not isinstance(node.value, str):  # docstrings too: a doctest runner would run them
            return
        for name in sorted(set(_DUNDER_IN_TEXT.findall(node.value)) - set(self.rules.dunders)):
            self.add(node, "dunder", "dunder-string", name=name, allowed=", ".join(sorted(self.rules.dunders)))

    @staticmethod
    def is_plain_type_use(node: ast.Name, parent: ast.AST | None) -> bool:
        """type(x) with one argument, or type[...] in an annotation."""
        if isinstance(parent, ast.Subscript):
            return parent.value is node
        return (
            isinstance(parent, ast.Call)
            and parent.func is node
            and len(parent.args) == 1
            and not parent.keywords
            and not isinstance(parent.args[0], ast.Starred)
        )

    @staticmethod
    def is_module_use(node: ast.Name, parent: ast.AST | None) -> bool:
        """module.name, or the object of getattr & co (which have their own rule)."""
        if isinstance(parent, ast.Attribute):
            return parent.value is node
        return (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Name)
            and parent.func.id in ATTRIBUTE_FUNCTIONS
            and bool(parent.args)
            and parent.args[0] is node
        )

    def check_call(self, node: ast.Call) -> None:
        """getattr, setattr, delattr, hasattr: the object and the attribute name."""
        func = node.func
        if not (isinstance(func, ast.Name) and func.id in ATTRIBUTE_FUNCTIONS and func in self.free):
            return
        if len(node.args) < 2 or any(isinstance(a, ast.Starred) for a in node.args[:2]):
            self.add(node, "getattr", "getattr-computed", name=func.id)
            return
        obj, name = node.args[0], node.args[1]
        on_module = self.through_module(obj)
        if on_module and func.id in MUTATING_FUNCTIONS:
            self.add(node, "assign-module", "assign-module")
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            self.check_name_rules(node, name.value, None, on_module)
        elif not isinstance(name, (ast.Name, ast.Attribute)):
            self.add(node, "getattr", "getattr-computed", name=func.id)
        elif on_module and func.id not in MUTATING_FUNCTIONS:
            self.add(node, "getattr", "getattr-module", name=func.id)

    # ------------------------------------------------------------------ block E: numpy only
    def check_numpy_only(self) -> None:
        """No name bound to a torch import in block E's functions, nor in what they use."""
        forbidden = {
            name
            for name, path in self.imported.items()
            if path.partition(".")[0] in self.rules.numpy_only_modules
        }
        definitions = self.module_definitions()
        fields = {
            "block": self.rules.numpy_only_block,
            "functions": ", ".join(self.rules.numpy_only_functions),
            "modules": ", ".join(sorted(self.rules.numpy_only_modules)),
        }
        for root in self.rules.numpy_only_functions:
            seen = set(self.rules.numpy_only_functions)  # each is checked as a root itself
            todo = [root]
            while todo:
                name = todo.pop()
                for definition in definitions.get(name, []):
                    for used in self.free_names_in(definition):
                        if used.id in forbidden:
                            key = "numpy-only" if name == root else "numpy-only-via"
                            self.add(used, "numpy-only", key, function=name, caller=root, **fields)
                        elif used.id in definitions and used.id not in seen:
                            seen.add(used.id)
                            todo.append(used.id)

    def module_definitions(self) -> dict[str, list[ast.stmt]]:
        """{name: the module-level statements that bind it} (def, class, assignment)."""
        found: dict[str, list[ast.stmt]] = {}
        for node in _own_nodes(self.tree.body):
            if isinstance(node, DEFINITIONS):
                found.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for n in ast.walk(target):
                        if isinstance(n, ast.Name):
                            found.setdefault(n.id, []).append(node)
        return found

    def free_names_in(self, node: ast.AST) -> Iterator[ast.Name]:
        return (n for n in ast.walk(node) if isinstance(n, ast.Name) and n in self.free)


# ----------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labkit.grading.rules", description="Check submissions against the lab's code rule."
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--lang", choices=LANGUAGES, help="language of the messages (default: from the locale)"
    )
    args = parser.parse_args(argv)
    lang = user_language(args.lang)
    found_any = False
    for path in args.files:
        try:
            source = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read {path}: {exc}")
        violations = check_source(source)
        found_any |= bool(violations)
        for line in format_violations(violations, lang).splitlines():
            print(f"{path}: {line}")
    return 1 if found_any else 0


if __name__ == "__main__":
    sys.exit(main())

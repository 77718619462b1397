"""The lab's code rule, checked statically (labkit.grading.rules): what is caught, and what must pass."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit.core.labinfo import load_lab
from labkit.core.overlay import REFERENCE, WORKBOOK_ROOT
from labkit.core.tomlread import read_toml
from labkit.grading.examples import EXAMPLES, materialize
from labkit.grading.rules import Violation, check_source, format_violations, main
from labkit.quality.zoo import Bug, load_bugs
from minituner.i18n import LANGUAGES

STUBS = WORKBOOK_ROOT / load_lab().submission

# Seven lines of allowed imports: the construct under test starts at line 8.
PRELUDE = """\
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn
"""
FIRST = PRELUDE.count("\n") + 1


def check(body: str) -> list[Violation]:
    return check_source(PRELUDE + textwrap.dedent(body))


# (id, code after the prelude, the line of the violation in that code (1 = first), its rule code)
FORBIDDEN = [
    ("import-os", "import os", 1, "import"),
    ("from-os-import", "from os import path", 1, "import"),
    ("import-importlib", "import importlib", 1, "import"),
    ("import-gc", "x = 1\nimport gc", 2, "import"),
    ("import-threading", "import threading", 1, "import"),
    ("import-signal", "import signal", 1, "import"),
    ("import-ctypes", "import ctypes", 1, "import"),
    ("import-subprocess", "import subprocess", 1, "import"),
    ("import-operator", "from operator import attrgetter", 1, "import"),
    ("import-peft", "import peft", 1, "import"),
    ("import-inside-function", "def f():\n    import sys\n    return sys", 2, "import"),
    ("relative-import", "from . import lora", 1, "import"),
    ("relative-import-module", "from .helpers import grads", 1, "import"),
    ("star-import", "from torch import *", 1, "import"),
    ("torch-sys", "x = 1\nv = torch.sys.version", 2, "module-attr"),
    ("torch-os-system", "torch.os.system('true')", 1, "module-attr"),
    ("np-os", "def f():\n    return np.os.getcwd()", 2, "module-attr"),
    ("from-torch-import-os", "from torch import os", 1, "module-attr"),
    ("getattr-sys", "m = getattr(torch, 'sys')", 1, "module-attr"),
    ("getattr-builtins", "b = getattr(torch, '__builtins__')", 1, "dunder"),
    ("getattr-variable-on-module", "def f(name):\n    return getattr(torch, name)", 2, "getattr"),
    ("getattr-concatenated", "m = getattr(torch, 's' + 'ys')", 1, "getattr"),
    ("getattr-fstring", "def f(x, a):\n    return getattr(x, f'__{a}__')", 2, "getattr"),
    # A module reached through getattr, a variable or a function's return value is still a module.
    ("getattr-variable-on-getattr", "t = getattr(F, 'torch')\nk = 'sy' + 's'\ns = getattr(t, k)", 3, "getattr"),
    ("getattr-variable-on-return", "def r():\n    return getattr(F, 'torch')\n\n\ndef g(k):\n    return getattr(r(), k)",
     6, "getattr"),
    ("getattr-variable-on-lambda", "r = lambda: F.torch\n\n\ndef g(k):\n    return getattr(r(), k)", 5, "getattr"),
    ("frame-attribute", "def f():\n    return (g for g in ()).gi_frame.f_back", 2, "module-attr"),
    ("dunder-in-a-string", "key = '__globals__'", 1, "dunder"),
    ("getattr-as-value", "g = getattr\nm = g(torch, 'nn')", 1, "getattr"),
    ("hasattr-dunder", "def f(x):\n    return hasattr(x, '__torch_function__')", 2, "dunder"),
    ("eval", "y = eval('1 + 1')", 1, "builtin"),
    ("exec", "exec('y = 1')", 1, "builtin"),
    ("compile", "c = compile('1', 'f', 'eval')", 1, "builtin"),
    ("dunder-import", "o = __import__('os')", 1, "builtin"),
    ("open", "def f():\n    return open('solutions/lora.py').read()", 2, "builtin"),
    ("globals", "g = globals()", 1, "builtin"),
    ("vars", "v = vars(torch)", 1, "builtin"),
    ("locals", "def f():\n    return locals()", 2, "builtin"),
    ("breakpoint", "breakpoint()", 1, "builtin"),
    ("exit", "exit(0)", 1, "builtin"),
    ("builtin-as-default", "def f(x, run=eval):\n    return run(x)", 1, "builtin"),
    ("system-exit", "raise SystemExit(0)", 1, "builtin"),
    ("type-three-arguments", "T = type('T', (torch.Tensor,), {})", 1, "builtin"),
    ("dunder-class", "def f(x):\n    return x.__class__", 2, "dunder"),
    ("dunder-globals", "def f(g):\n    return g.__globals__", 2, "dunder"),
    ("dunder-builtins-name", "b = __builtins__", 1, "dunder"),
    ("dunder-file", "p = __file__", 1, "dunder"),
    ("dunder-spec", "s = __spec__", 1, "dunder"),
    (
        "torch-function",
        "class T(torch.Tensor):\n    @classmethod\n    def __torch_function__(cls):\n        pass",
        3,
        "dunder",
    ),
    ("dunder-eq", "class T:\n    def __eq__(self, other):\n        return True", 2, "dunder"),
    ("dunder-class-attribute", "class T(torch.Tensor):\n    __torch_function__ = None", 2, "dunder"),
    (
        "tensor-subclass",
        "class Liar(torch.Tensor):\n    def allclose(self, *a):\n        return True",
        1,
        "subclass",
    ),
    ("parameter-subclass", "class P(nn.Parameter):\n    pass", 1, "subclass"),
    ("renamed-tensor-subclass", "from torch import Tensor as T\nclass Liar(T):\n    pass", 2, "subclass"),
    ("computed-base", "def f(t):\n    class Liar(type(t)):\n        pass", 2, "subclass"),
    ("as-subclass", "def f(t, cls):\n    return t.as_subclass(cls)", 2, "module-attr"),
    ("private-module-name", "c = torch._C", 1, "private"),
    ("from-private", "from torch import _C", 1, "private"),
    ("os-private", "import os\nos._exit(0)", 2, "private"),
    ("assign-torch-allclose", "def f(*a):\n    return True\ntorch.allclose = f", 3, "assign-module"),
    ("assign-np-testing", "np.testing.assert_allclose = print", 1, "assign-module"),
    ("assign-through-alias", "lin = nn.Linear\nlin.forward = print", 2, "assign-module"),
    ("assign-class-of-value", "def f(x):\n    type(x).add = print", 2, "assign-module"),
    ("augmented-assign-module", "F.linear += 1", 1, "assign-module"),
    ("delete-from-module", "del torch.equal", 1, "assign-module"),
    ("setattr-module", "setattr(torch, 'x', 1)", 1, "assign-module"),
    ("delattr-module", "delattr(np.testing, 'assert_allclose')", 1, "assign-module"),
    ("for-target-module", "for torch.equal in [print]:\n    pass", 1, "assign-module"),
    ("module-as-value", "def patch(m):\n    pass\npatch(torch)", 3, "module-value"),
    ("np-save", "def f(a):\n    np.save('a.npy', a)", 2, "module-attr"),
    ("torch-load", "s = torch.load('adapter.pt')", 1, "module-attr"),
    ("tensor-tofile", "def f(a):\n    a.tofile('x')", 2, "module-attr"),
    ("torch-hub", "h = torch.hub", 1, "module-attr"),
    ("torch-library", "lib = torch.library", 1, "module-attr"),
    ("get-type-hints", "import typing\nh = typing.get_type_hints", 2, "module-attr"),
    (
        "match-class-attribute",
        "def f(x):\n    match x:\n        case torch.Tensor(__class__=c):\n            return c",
        3,
        "dunder",
    ),
]

BLOCK_E_SIGNATURES = {
    "train_lora_regression": "def train_lora_regression(x, y, w_base, a0, b0, lr, n_steps):",
    "lora_regression_grads": "def lora_regression_grads(x, y, w_base, a, b):",
}
NUMPY_ONLY = [
    ("torch-in-train", "train_lora_regression", "    x = 1\n    return torch.as_tensor(x).numpy()", 2),
    ("F-linear-in-grads", "lora_regression_grads", "    return F.linear(x, a)", 1),
    ("autograd-in-grads", "lora_regression_grads", "    g = torch.autograd.grad\n    return g", 1),
    ("nn-in-train", "train_lora_regression", "    return nn.Linear(2, 2)", 1),
    ("local-import-in-grads", "lora_regression_grads", "    from torch import zeros\n    return zeros(3)", 2),
]


@pytest.mark.parametrize(("body", "line", "code"), [c[1:] for c in FORBIDDEN], ids=[c[0] for c in FORBIDDEN])
def test_forbidden_construct_is_caught_on_its_line(body: str, line: int, code: str) -> None:
    violations = check(body)
    expected_line = FIRST + line - 1
    assert (expected_line, code) in {(v.line, v.code) for v in violations}, format_violations(
        violations, "en"
    )
    assert_bilingual(violations)


@pytest.mark.parametrize(
    ("function", "body", "line"), [c[1:] for c in NUMPY_ONLY], ids=[c[0] for c in NUMPY_ONLY]
)
def test_torch_in_block_e_is_caught(function: str, body: str, line: int) -> None:
    violations = check(BLOCK_E_SIGNATURES[function] + "\n" + body + "\n")
    assert [(v.line, v.code) for v in violations] == [(FIRST + line, "numpy-only")], format_violations(
        violations, "en"
    )
    assert function in violations[0].text["en"] and function in violations[0].text["es"]
    assert_bilingual(violations)


def test_torch_in_a_helper_that_block_e_calls_is_caught_in_the_helper() -> None:
    source = """\
    def _to_tensor(a):
        return torch.as_tensor(a)

    def _prepare(a):
        return _to_tensor(a)

    def _unused(a):
        return torch.zeros(1)

    def train_lora_regression(x, y, w_base, a0, b0, lr, n_steps):
        return _prepare(x)
    """
    violations = check(source)
    assert [(v.line, v.code) for v in violations] == [(FIRST + 1, "numpy-only")], format_violations(
        violations, "en"
    )
    assert "_to_tensor" in violations[0].text["en"] and "train_lora_regression" in violations[0].text["en"]


def test_torch_constant_used_by_block_e_is_caught() -> None:
    violations = check("_W = torch.eye(2)\n\ndef lora_regression_grads(x, y, w_base, a, b):\n    return _W\n")
    assert [(v.line, v.code) for v in violations] == [(FIRST, "numpy-only")]


ALLOWED = [
    (
        "allowed-imports",
        "import math\nfrom collections.abc import Iterable, Mapping\nfrom dataclasses import dataclass",
    ),
    ("copy", "import copy\n\ndef f(m):\n    return copy.deepcopy(m)"),
    ("super-init", "class L(nn.Module):\n    def __init__(self):\n        super().__init__()"),
    ("type-name", "def f(value):\n    return type(value).__name__"),
    ("type-annotation", "def f(cls: type[nn.Module]) -> None:\n    pass"),
    (
        "setattr-variable",
        "def f(parent, child, m):\n    setattr(parent, child, m)\n    return getattr(parent, child)",
    ),
    ("load-state-dict", "def f(model, state):\n    model.load_state_dict(state)"),
    ("parameter-called-input", "def forward(self, input):\n    return F.linear(input, self.w)"),
    ("requires-grad", "def f(p):\n    p.requires_grad = False"),
    ("getattr-literal", "def f(m):\n    return getattr(m, 'weight', None)"),
    ("allowed-dunders", "__all__ = ['f']\nif __name__ == '__main__':\n    print(__doc__)"),
    ("repr", "class A:\n    def __repr__(self):\n        return 'A'"),
    ("numpy-in-block-e", "def lora_regression_grads(x, y, w_base, a, b):\n    return np.zeros(3)"),
    (
        "torch-outside-block-e",
        "def helper(x):\n    return torch.zeros(3)\n\ndef train_lora_regression(x):\n    return x",
    ),
    ("torch-shadowed-in-block-e", "def train_lora_regression(x, torch):\n    return torch"),
]


@pytest.mark.parametrize("body", [c[1] for c in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_plain_code_passes(body: str) -> None:
    violations = check(body)
    assert violations == [], format_violations(violations, "en")


def test_the_reference_and_the_stubs_pass() -> None:
    for path in (REFERENCE, STUBS):
        violations = check_source(path.read_text(encoding="utf-8-sig"))
        assert violations == [], f"{path}:\n" + format_violations(violations, "en")


@pytest.mark.parametrize("bug", load_bugs(), ids=lambda b: b.id)
def test_zoo_variants_break_the_rule_exactly_when_withheld(bug: Bug) -> None:
    violations = check_source(bug.apply(REFERENCE.read_text()))
    if bug.withheld:
        assert violations, f"{bug.id} is withheld in bugs.toml, yet breaks no rule"
    else:
        assert violations == [], format_violations(violations, "en")


@pytest.fixture(scope="module")
def example_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples written out as `grade` grades them (labkit.grading.examples)."""
    return materialize(tmp_path_factory.mktemp("class"))


def example_submission(example_class: Path, name: str) -> Path:
    """The lora.py that `grade` takes from an example: name.py, or name/<lab.toml's submission>."""
    single = example_class / f"{name}.py"
    return single if single.exists() else example_class / name / load_lab().submission


@pytest.mark.parametrize("name", sorted(read_toml(EXAMPLES / "expected.toml")))
def test_examples_violate_the_rule_exactly_when_withheld(example_class: Path, name: str) -> None:
    withheld = bool(read_toml(EXAMPLES / "expected.toml")[name].get("withheld", False))
    violations = check_source(example_submission(example_class, name).read_text(encoding="utf-8-sig"))
    if withheld:
        assert violations, f"{name} is withheld in expected.toml, yet breaks no rule"
    else:
        assert violations == [], f"{name} is not withheld, yet:\n" + format_violations(violations, "en")


def test_bom_and_crlf_are_fine() -> None:
    reference = REFERENCE.read_text().replace("\n", "\r\n")
    assert check_source(reference.encode("utf-8-sig").decode("utf-8-sig")) == []
    assert check_source("\ufeff" + reference) == []
    violations = check_source(reference + "import os\r\n")
    assert [(v.line, v.code) for v in violations] == [(reference.count("\n") + 1, "import")]


def test_a_file_that_does_not_parse_has_no_violation() -> None:
    assert check_source("import os\ndef f(:\n") == []


def test_a_file_too_deep_for_ast_is_a_violation() -> None:
    violations = check_source("x = " + "+".join(["1"] * 20_000) + "\n")
    assert [(v.line, v.code) for v in violations] == [(1, "unchecked")]
    assert_bilingual(violations)


def test_block_e_calling_block_e_reports_once() -> None:
    source = """\
    def lora_regression_grads(x, y, w_base, a, b):
        return torch.zeros(1)

    def train_lora_regression(x, y, w_base, a0, b0, lr, n_steps):
        return lora_regression_grads(x, y, w_base, a0, b0)
    """
    assert [(v.line, v.code) for v in check(source)] == [(FIRST + 1, "numpy-only")]


def test_messages_name_the_line_and_the_rule_in_both_languages() -> None:
    violations = check("import os\nx = eval('1')")
    allowed = ", ".join(sorted(load_lab().rules.imports))
    assert format_violations(violations, "en").splitlines() == [
        f"line {FIRST}: `import os`: the lab allows imports from {allowed} only",
        f"line {FIRST + 1}: `eval`: the built-in `eval` is not allowed in the lab",
    ]
    assert format_violations(violations, "es").splitlines() == [
        f"línea {FIRST}: `import os`: el laboratorio solo permite importar de {allowed}",
        f"línea {FIRST + 1}: `eval`: la función integrada `eval` no está permitida en el laboratorio",
    ]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\n")
    assert main([str(REFERENCE), "--lang", "en"]) == 0
    assert main([str(bad), "--lang", "es"]) == 1
    assert capsys.readouterr().out.startswith(f"{bad}: línea 1: `import sys`: el laboratorio solo permite")
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    run = subprocess.run(
        [sys.executable, "-m", "labkit.grading.rules", "--lang", "en", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1 and run.stdout.startswith(f"{bad}: line 1: `import sys`: the lab allows"), run


def assert_bilingual(violations: list[Violation]) -> None:
    for v in violations:
        assert set(v.text) == set(LANGUAGES)
        assert v.text["en"].startswith(f"line {v.line}: ") and v.text["es"].startswith(f"línea {v.line}: ")

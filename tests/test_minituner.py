"""The graded tests of Lab 00, "LoRA by hand".

Every test carries the marker of its block (block_a ... block_e) and a name that the lab's stop
condition selects:  pytest tests/test_minituner.py -k "lora_init_identity or param_count or merge
or freeze or roundtrip"  runs blocks A to D;  pytest -m block_e  runs block E.

Each test calls your code only through `observe(scenario, **inputs)`: the scenario (tests/scenarios.py)
says what is done with your code and records what it saw; the assertions below it are the checks,
against values the test computes itself from the inputs it chose. When a test fails, its message
names the rule that broke and the most likely cause. Shapes and values are random but seeded (the
`seed` / `rng` fixtures of conftest.py); layers are never square, because a square layer hides a
swapped transpose.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import scenarios
from conftest import Observe, judged
from minituner.i18n import _
from minituner.model import MiniGPT, MiniGPTConfig

# In a plain pytest your lora.py is imported here, at collection, so that an error in it (a syntax
# error, say) is reported once, first. When the instructor grades, this process never imports it:
# the scenarios run in a worker of their own, beside your code.
if not judged():
    import minituner.lora  # noqa: F401

block_a = pytest.mark.block_a
block_b = pytest.mark.block_b
block_c = pytest.mark.block_c
block_d = pytest.mark.block_d
block_e = pytest.mark.block_e

LORA_NAMES = scenarios.LORA_NAMES
#: The lab's default targets, as block B gives them (what DEFAULT_TARGETS must hold).
LAB_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "mlp.fc1", "mlp.fc2")
# A small MiniGPT with non-square LoRA targets (fc1 is 32 -> 128) and a short vocabulary.
SMALL_GPT = MiniGPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)


# ----------------------------------------------------------------------------- helpers
def random_linear(
    rng: np.random.Generator, *, bias: bool = True, dtype: torch.dtype = torch.float32
) -> nn.Linear:
    """An nn.Linear with random, distinct in/out sizes and random weights (non-zero bias)."""
    in_f, out_f = (int(v) for v in rng.choice(np.arange(3, 48), size=2, replace=False))
    layer = nn.Linear(in_f, out_f, bias=bias).to(dtype)
    if bias:
        with torch.no_grad():
            layer.bias.uniform_(-1.0, 1.0)  # nn.Linear's default bias is small; make it count
    return layer


def described(layer: nn.Linear) -> dict[str, torch.Tensor | None]:
    """A layer of the test's as a scenario input (scenarios.linear rebuilds it on the other side)."""
    return {"weight": layer.weight.detach().clone(),
            "bias": None if layer.bias is None else layer.bias.detach().clone()}


def random_input(rng: np.random.Generator, layer: nn.Linear) -> torch.Tensor:
    """A batch (B, T, in_features) in the layer's dtype: a 3-D input checks leading dims."""
    batch, steps = (int(v) for v in rng.integers(1, 5, size=2))
    return torch.randn(batch, steps, layer.in_features, dtype=layer.weight.dtype)


def expect_error(error: type[Exception], seen: dict[str, str] | None, what: str, hint: str) -> str:
    """The message of what a scenario's call raised (scenarios.raised), once it is error."""
    if seen is None:
        # i18n: {what} is a call or an action (LoRALinear(base, r=0) ...), {error} an exception's name
        pytest.fail(_("{what} did not raise {error}: {hint}").format(what=what, error=error.__name__, hint=hint),
                    pytrace=False)
    if seen["type"] != error.__name__:
        pytest.fail(
            # i18n: {raised}({message}) is the exception the student's code raised, {error} the one expected
            _("{what} raised {raised}({message}) instead of {error}: {hint}").format(
                what=what, raised=seen["type"], message=seen["message"], error=error.__name__, hint=hint),
            pytrace=False,
        )
    return seen["message"]


#: The exact types the tests judge: (the type's names as scenarios.type_name writes them, the type
#: named with its article, its plural, the usual cause), in the reader's language (see plain).
PLAIN_TYPES: dict[type, tuple[tuple[str, ...], str, str, str]] = {
    # i18n: the type named with its article, its plural, and the usual cause, inside the message
    # "{what} is a {type}, not {name}: the tests judge only plain {plural} ...; {hint}"
    torch.Tensor: (("torch.Tensor",), _("a torch.Tensor"), _("tensors"),
                   _("return what torch's operations give, never a subclass or a wrapper of it")),
    nn.Parameter: (("torch.nn.parameter.Parameter",), _("an nn.Parameter"), _("parameters"),
                   _("create it as nn.Parameter(tensor) and change it only in place")),
    np.ndarray: (("numpy.ndarray",), _("an np.ndarray"), _("arrays"),
                 _("return what NumPy's operations give (np.concatenate, @), not a subclass of it")),
    float: (("builtins.float", "numpy.float64"), _("a float"), _("numbers"),
            _("compute it with Python numbers or convert it with float(...)")),
    int: (("builtins.int",), _("an int"), _("numbers"), _("store it as the int it was given")),
}


def plain(seen: dict[str, Any], kind: type, what: str, hint: str = "") -> Any:
    """The value a scenario recorded (scenarios.tensor, array, number), once its type was exactly kind.

    np.float64 also counts as a float. A subclass could rig the very comparisons that judge it
    (abs, max, ==, torch.equal ...), so the tests judge only values of these exact types.
    """
    names, name, plural, cause = PLAIN_TYPES[kind]
    if seen["type"] not in names:
        pytest.fail(
            # i18n: {what}: the value judged; {type}: its exact type (module.qualname); {name}: the type
            # expected, with its article ("a torch.Tensor"); {plural}: "tensors", "numbers" ...; {hint}: what to do
            _("{what} is a {type}, not {name}: the tests judge only plain {plural} (a subclass can change how "
              "comparisons behave); {hint}").format(what=what, type=seen["type"], name=name, plural=plural,
                                                    hint=hint or cause),
            pytrace=False,
        )
    return seen["value"]


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


def output(seen: dict[str, Any], what: str = "") -> torch.Tensor:
    """A forward output (or logits) of the submission, once it is exactly a torch.Tensor (what: LoRALinear's
    forward output unless given)."""
    value: torch.Tensor = plain(seen, torch.Tensor, what or _("LoRALinear's forward output"))
    return value


def plain_parameters(seen: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Observed parameters (scenarios.parameters), once every one was exactly an nn.Parameter."""
    for name, p in seen.items():
        plain(p, nn.Parameter, _("parameter {name}").format(name=name))
    return seen


def trainable_names(seen: dict[str, dict[str, Any]]) -> set[str]:
    """The names of the observed parameters (scenarios.parameters) that require gradients."""
    return {name for name, p in plain_parameters(seen).items() if p["requires_grad"]}


def trainable_count(seen: dict[str, dict[str, Any]]) -> int:
    """How many numbers the observed parameters that require gradients hold."""
    return sum(math.prod(p["shape"]) for p in plain_parameters(seen).values() if p["requires_grad"])


def is_lora_name(name: str) -> bool:
    return name.rpartition(".")[2] in LORA_NAMES


def scale_of(seen: dict[str, Any], what: str) -> float:
    """An observed scaling (scenarios.scaling) as a float: a float, or a one-element buffer of the layer."""
    if seen["type"] == "torch.Tensor" and seen["numel"] == 1:
        if seen["buffer"]:
            return float(seen["value"])
        pytest.fail(_("{what} is a tensor but not a buffer of the layer: store alpha / r as a float, or register "
                      "it with self.register_buffer('scaling', ...)").format(what=what), pytrace=False)
    return float(plain(seen, float, what, _("store alpha / r as a float (or as a one-element buffer)")))


def small_gpt() -> MiniGPT:
    return MiniGPT(SMALL_GPT)


def gpt(model: MiniGPT) -> dict[str, Any]:
    """A MiniGPT of the test's as a scenario input (scenarios.minigpt rebuilds it on the other side)."""
    return {"config": dataclasses.asdict(model.config),
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def token_batch(rng: np.random.Generator, cfg: MiniGPTConfig = SMALL_GPT) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, cfg.vocab_size, size=(2, cfg.block_size)))


def logits(seen: dict[str, Any]) -> torch.Tensor:
    """A wrapped model's observed logits, once they were exactly a torch.Tensor."""
    return output(seen, _("the wrapped model's output (logits)"))


# ----------------------------------------------------------------------------- Block A
@block_a
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_lora_init_identity(observe: Observe, rng: np.random.Generator, dtype: torch.dtype,
                            bias: bool) -> None:
    for _attempt in range(3):
        base = random_linear(rng, bias=bias, dtype=dtype)
        x = random_input(rng, base)
        with torch.no_grad():
            expected = base(x)
        seen = observe(scenarios.forward_at_init, base=described(base), x=x, r=int(rng.integers(1, 9)),
                       alpha=16.0)
        out = output(seen["out"])
        assert out.shape == expected.shape, _(
            "output shape {shape} != base output shape {expected}: forward must keep every leading dimension "
            "of x and end with out_features"
        ).format(shape=tuple(out.shape), expected=tuple(expected.shape))
        assert out.dtype == dtype, _("output dtype {dtype} != input dtype {expected}").format(
            dtype=out.dtype, expected=dtype)
        diff = max_abs_diff(out, expected)
        assert diff == 0.0, _(
            "output differs from base(x) at init (max abs difference {diff:.3g}, must be exactly 0): is lora_B "
            "initialized to zeros, and is base(x) computed with the untouched base layer?"
        ).format(diff=diff)


def random_factors(rng: np.random.Generator, base: nn.Linear, r: int) -> dict[str, torch.Tensor]:
    """Non-zero lora_A (r, in) and lora_B (out, r) in base's dtype, as if the adapter had been trained."""
    return {"lora_A": torch.from_numpy(rng.normal(0.0, 0.5, size=(r, base.in_features))).to(base.weight.dtype),
            "lora_B": torch.from_numpy(rng.normal(0.0, 0.5, size=(base.out_features, r))).to(base.weight.dtype)}


def short_type(seen: dict[str, Any]) -> str:
    """The class name alone (type(value).__name__) of an observed value's exact type."""
    name: str = seen["type"].rpartition(".")[2]
    return name


@block_a
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_lora_init_identity_factors(observe: Observe, rng: np.random.Generator, dtype: torch.dtype) -> None:
    base = random_linear(rng, dtype=dtype)
    r = int(rng.integers(4, 9))
    seen = observe(scenarios.factors_at_init, base=described(base), r=r, alpha=16.0)
    factors = seen["factors"]
    for name in LORA_NAMES:
        p = factors[name]
        assert p["is_parameter"], (
            # i18n: {name} is lora_A or lora_B, {type} the class of what the student created (Tensor ...)
            _("{name} is a {type}, not an nn.Parameter: a plain tensor is invisible to model.parameters(), so "
              "no optimizer would ever train it (an nn.Parameter sent through .to(...) comes back as a plain "
              "tensor whenever it has to convert, here to {dtype}: create the tensor with base.weight's device "
              "and dtype first, then wrap it in nn.Parameter)")
            if p["is_tensor"] and p["grad_fn"] else
            _("{name} is a {type}, not an nn.Parameter: a plain tensor is invisible to model.parameters(), so "
              "no optimizer would ever train it")
        ).format(name=name, type=short_type(p), dtype=p["dtype"])
        plain(p, nn.Parameter, name)
        assert p["dtype"] == str(base.weight.dtype) and p["device"] == str(base.weight.device), _(
            "{name} is {dtype} on {device}, base.weight is {base_dtype} on {base_device}: create the factors "
            "with base.weight's dtype and device"
        ).format(name=name, dtype=p["dtype"], device=p["device"], base_dtype=base.weight.dtype,
                 base_device=base.weight.device)
    A, B = factors["lora_A"]["value"], factors["lora_B"]["value"]
    assert tuple(A.shape) == (r, base.in_features), _(
        "lora_A has shape {shape}, expected (r, in_features) = {expected}"
    ).format(shape=tuple(A.shape), expected=(r, base.in_features))
    assert tuple(B.shape) == (base.out_features, r), _(
        "lora_B has shape {shape}, expected (out_features, r) = {expected}"
    ).format(shape=tuple(B.shape), expected=(base.out_features, r))
    assert not B.any(), _(
        "lora_B has {count} non-zero entries at init: lora_B must start at zeros (a random lora_B makes step "
        "0 differ from the base model)"
    ).format(count=int(B.count_nonzero()))
    # kaiming_uniform_(a=sqrt(5)) on an (r, in) tensor draws from U(-1/sqrt(in), 1/sqrt(in)).
    bound = 1.0 / math.sqrt(base.in_features)
    biggest = float(A.abs().max())
    assert biggest <= bound * (1 + 1e-6), _(
        "lora_A has an entry of absolute value {biggest:.4g}, above the kaiming_uniform_(a=sqrt(5)) bound "
        "1/sqrt(in_features) = {bound:.4g}: use nn.init.kaiming_uniform_(lora_A, a=math.sqrt(5)) on a tensor "
        "of shape (r, in_features)"
    ).format(biggest=biggest, bound=bound)
    assert biggest > 0.5 * bound and float(A.std()) > 0.3 * bound, _(
        "lora_A is (nearly) constant or tiny at init (max {biggest:.3g}, bound {bound:.3g}): it must be random; "
        "with lora_A = lora_B = 0 no gradient would ever reach either factor"
    ).format(biggest=biggest, bound=bound)
    linears = seen["linears"]
    assert linears == ["base"], _(
        "nn.Linear submodules {linears}: only the wrapped layer, as self.base, may be an nn.Linear; create "
        "lora_A and lora_B as nn.Parameter directly"
    ).format(linears=linears)
    assert seen["base_is_given"], _(
        "self.base must be the very nn.Linear that was passed in, not a copy or a rebuilt layer: a copy has "
        "Parameters of its own, no longer the model's (and a rebuilt layer's new Parameters start trainable)"
    )


@block_a
def test_lora_init_identity_forward_scaling(observe: Observe, rng: np.random.Generator) -> None:
    for r, alpha in ((4, 16.0), (8, 2.0), (3, 5.0)):  # never r == alpha, so a swap shows
        base = random_linear(rng)
        x = random_input(rng, base)
        with torch.no_grad():
            base_out = base(x)
        factors = random_factors(rng, base, r)  # the test's own values, sent to the layer
        seen = observe(scenarios.forward_with_factors, base=described(base), x=x, r=r, alpha=alpha,
                       **factors)
        stored_r = plain(seen["r"], int, "lora.r")
        stored_alpha = plain(seen["alpha"], float, "lora.alpha")
        scaling = scale_of(seen["scaling"], "lora.scaling")
        assert stored_r == r and stored_alpha == alpha, _(
            "lora.r = {stored_r!r} and lora.alpha = {stored_alpha!r} for r = {r!r}, alpha = {alpha!r}: store r "
            "and alpha as given (alpha never defaults to r)"
        ).format(stored_r=stored_r, stored_alpha=stored_alpha, r=r, alpha=alpha)
        assert scaling == pytest.approx(alpha / r), _(
            "scaling is {scaling}, expected alpha / r = {expected}"
        ).format(scaling=scaling, expected=alpha / r)
        A, B = factors["lora_A"], factors["lora_B"]
        with torch.no_grad():
            expected = base_out + (alpha / r) * ((x @ A.T) @ B.T)
        out = output(seen["out"])
        diff = max_abs_diff(out, expected)
        assert diff < 1e-5 * (1 + float(expected.abs().max())), _(
            "forward differs from base(x) + (alpha/r) * x @ A.T @ B.T by {diff:.3g} (r={r}, alpha={alpha}): "
            "check the alpha / r scaling and the transposes"
        ).format(diff=diff, r=r, alpha=alpha)


def misplaced_dropout(train_update: torch.Tensor, eval_update: torch.Tensor, p: float,
                      kept: torch.Tensor, dropped: torch.Tensor) -> str:
    """Why a train-mode update of one-hot rows is not input dropout: where the dropout acts instead."""
    if bool((kept | dropped).all()):
        return _("dropout is applied to the LoRA branch's output (after lora_B): each output entry is dropped on "
                 "its own, where it must drop the branch's input, dropout(x) @ A.T @ B.T (with one-hot rows, a "
                 "row's update is then either all zero or all (eval update) / (1 - p))")
    rows_dropped = dropped.all(dim=1)
    live = ~rows_dropped & (eval_update.abs() > 1e-3).any(dim=1)
    if bool(live.any()):
        factor = float(((train_update * eval_update).sum(dim=1)[live]
                        / (eval_update * eval_update).sum(dim=1)[live]).mean())
        rows_scaled = torch.isclose(train_update, factor * eval_update, atol=1e-5).all(dim=1)
        if bool((rows_dropped | rows_scaled).all()):
            return _("the kept inputs are scaled by {factor:.4g}, expected 1 / (1 - p) = {expected:.4g} for "
                     "dropout={p}: nn.Dropout(p) drops with probability p (the dropout argument itself, not 1 - p) "
                     "and scales what it keeps by 1 / (1 - p)").format(factor=factor, expected=1 / (1 - p), p=p)
    return _("in train mode the LoRA update of a one-hot row is neither zero nor (eval update) / (1 - p), nor is "
             "each entry: dropout acts inside the branch, on the r-dim intermediate after lora_A; apply it to the "
             "branch's input instead: dropout(x) @ A.T @ B.T")


@block_a
def test_lora_init_identity_dropout_on_branch_input_only(observe: Observe, seed: int,
                                                         rng: np.random.Generator) -> None:
    p = 0.25  # not 0.5, where keeping with probability p and dropping with p look the same
    alpha, r = 8.0, 4
    base = nn.Linear(16, 24)
    x = torch.eye(16).repeat(4, 1)  # one-hot rows: input dropout keeps or drops a whole row's update
    with torch.no_grad():
        base_out = base(x)
    factors = random_factors(rng, base, r)  # the test's own values, sent to the layer
    seen = observe(scenarios.dropout_forwards, base=described(base), x=x, r=r, alpha=alpha, dropout=p,
                   **factors)

    # At init (lora_B = 0) the output is base(x): first with dropout off, then on. Eval mode first,
    # so that a non-zero lora_B is not blamed on the dropout.
    diff = max_abs_diff(output(seen["init_eval"]), base_out)
    assert diff == 0.0, _(
        "in eval mode at init the output differs from base(x) by {diff:.3g}: lora_B must start at zeros, and "
        "base(x) must be computed with the untouched base layer"
    ).format(diff=diff)
    diff = max_abs_diff(output(seen["init_train"]), base_out)
    assert diff == 0.0, _(
        "in train mode at init (lora_B = 0) the output differs from base(x) by {diff:.3g}, although it is exact "
        "in eval mode: dropout must act on the LoRA branch's input only, never on base(x) (or on x before both "
        "paths) or on the layer's whole output"
    ).format(diff=diff)

    A, B = factors["lora_A"], factors["lora_B"]
    branch = (x @ A.T) @ B.T  # the unscaled update, from the test's own copies
    eval_update = output(seen["eval"]) - base_out
    again = output(seen["eval_again"]) - base_out
    train_update = output(seen["train"]) - base_out
    assert torch.equal(eval_update, again), _(
        "two eval-mode forwards gave different outputs: in eval mode dropout must be off; use an nn.Dropout "
        "module (it follows .train() / .eval()), or F.dropout(..., training=self.training)"
    )
    expected_update = (alpha / r) * branch
    if max_abs_diff(eval_update, expected_update) >= 1e-5:
        factor = float((eval_update * branch).sum() / (branch * branch).sum())
        scaled = max_abs_diff(eval_update, factor * branch) < 1e-5
        pytest.fail(
            _("in eval mode (dropout off) the LoRA update is {factor:.4g} * x @ A.T @ B.T, expected alpha / r = "
              "{scaling:g} times it: apply the alpha / r scaling in forward").format(factor=factor, scaling=alpha / r)
            if scaled else
            _("in eval mode (dropout off) the LoRA update differs from (alpha / r) * x @ A.T @ B.T: check the "
              "alpha / r scaling and the transposes (test_lora_init_identity_forward_scaling checks them in "
              "detail)"),
            pytrace=False,
        )
    assert max_abs_diff(train_update, eval_update) > 1e-6, _(
        "in train mode with dropout={p} the LoRA update equals the eval-mode one: nothing was ever dropped; is "
        "the dropout argument stored (nn.Dropout(p=dropout)) and applied to the LoRA branch's input?"
    ).format(p=p)
    # Per entry, input dropout leaves 0 or (eval update) / (1 - p); with one-hot rows, a whole row
    # at once, and some rows of each kind.
    kept = torch.isclose(train_update, eval_update / (1 - p), atol=1e-5)
    dropped = torch.isclose(train_update, torch.zeros_like(train_update), atol=1e-6)
    rows_kept, rows_dropped = kept.all(dim=1), dropped.all(dim=1)
    if not (bool((rows_kept | rows_dropped).all()) and bool(rows_kept.any()) and bool(rows_dropped.any())):
        pytest.fail(misplaced_dropout(train_update, eval_update, p, kept, dropped), pytrace=False)


@block_a
@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"r": 0}, ValueError),
        ({"r": -2}, ValueError),
        ({"r": 2.5}, ValueError),
        ({"alpha": 0.0}, ValueError),
        ({"alpha": -16.0}, ValueError),
        ({"alpha": math.inf}, ValueError),
        ({"alpha": math.nan}, ValueError),
        ({"dropout": -0.1}, ValueError),
        ({"dropout": 1.0}, ValueError),
        ({"dropout": 1.5}, ValueError),
        # base names the thing (an nn.Conv1d(4, 4, 1), an nn.Identity(), a torch.zeros(4, 4)): the
        # scenario builds it (scenarios.NOT_LINEAR), as a module is no scenario input.
        ({"base": "Conv1d"}, TypeError),
        ({"base": "Identity"}, TypeError),
        ({"base": "Tensor"}, TypeError),
    ],
    ids=["r=0", "r=-2", "r=2.5", "alpha=0", "alpha=-16", "alpha=inf", "alpha=nan",
         "dropout=-0.1", "dropout=1.0", "dropout=1.5", "base=Conv1d", "base=Identity", "base=Tensor"],
)
def test_lora_init_identity_rejects_bad_arguments(
    observe: Observe, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    (name, value), = kwargs.items()
    if name == "base":
        seen = observe(scenarios.construct_on, kind=value)
        expect_error(error, seen["error"], f"LoRALinear({value})",
                     _("check isinstance(base, nn.Linear) first and raise TypeError otherwise"))  # fmt: skip
        return
    seen = observe(scenarios.construct_with, base=described(nn.Linear(6, 10)), kwargs=kwargs)
    expect_error(
        error, seen["error"],
        f"LoRALinear(base, {name}={value})",
        _("validate the arguments in __init__ (r a positive int, alpha positive and finite, dropout in [0, 1)) "
          "before building anything"),
    )
    assert seen["weight_requires_grad"] and seen["bias_requires_grad"], _(
        "LoRALinear(base, **{kwargs}) raised but froze base first: validate the arguments before changing "
        "anything"
    ).format(kwargs=kwargs)


@block_a
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_freeze_only_lora_learns(observe: Observe, seed: int, rng: np.random.Generator, bias: bool) -> None:
    # Invariant 2 in a LoRALinear: exactly lora_A and lora_B are trainable, through every step that
    # rebuilds or converts parameters, and training moves them and nothing else.
    steps = ["after __init__", ".to(torch.float64)", ".train()", ".eval()", ".to('cpu')", ".float()"]
    seen = observe(scenarios.freeze_through_steps, base=described(random_linear(rng, bias=bias)), r=4,
                   steps=steps)
    # A base that is not the layer given (a copy, a rebuilt nn.Linear) has Parameters of its own.
    copied = not seen["base_is_original"]
    for label, after in zip(steps, seen["after"], strict=True):
        assert trainable_names(after) == {"lora_A", "lora_B"}, (
            # i18n: {label} is the step after which the flags were read: "after __init__", ".to(torch.float64)" ...
            _("{label}: trainable parameters are {names}, expected exactly ['lora_A', 'lora_B']: freeze "
              "base.weight and base.bias with requires_grad_(False) on the Parameters themselves, and register "
              "lora_A / lora_B as nn.Parameter (self.base is not the nn.Linear you were given but a copy of it: "
              "wrap the layer itself)")
            if copied else
            _("{label}: trainable parameters are {names}, expected exactly ['lora_A', 'lora_B']: freeze "
              "base.weight and base.bias with requires_grad_(False) on the Parameters themselves, and register "
              "lora_A / lora_B as nn.Parameter")
            # i18n: the first step of the freeze test: the flags as __init__ leaves them
        ).format(label=_("after __init__") if label == "after __init__" else label,
                 names=sorted(trainable_names(after)))
    assert seen["lora_A_dtype"] == str(torch.float32), _(".to(dtype) must convert lora_A and lora_B too")

    base = random_linear(rng)
    x = random_input(rng, base)
    target = torch.randn(*x.shape[:-1], base.out_features)
    # 3 steps of plain SGD (lr 0.1) over all parameters: lora_A only gets a gradient once lora_B
    # is non-zero, from step 2 on.
    seen = observe(scenarios.sgd_steps, base=described(base), r=4, alpha=8.0, x=x, target=target,
                   steps=3, lr=0.1)
    for step in seen["steps"]:
        output(step["out"])
        for name in ("base.weight", "base.bias"):
            assert not step["base_grad"][name], _(
                "{name} received a gradient: the base must be frozen (requires_grad=False)"
            ).format(name=name)
    before = {name: p["value"] for name, p in plain_parameters(seen["before"]).items()}
    after = plain_parameters(seen["after"])
    for name in ("base.weight", "base.bias"):
        assert torch.equal(before[name], after[name]["value"]), _("{name} changed during training").format(
            name=name)
    still = [name for name in LORA_NAMES if max_abs_diff(before[name], after[name]["value"]) == 0]
    assert len(still) < 2, _(
        "neither lora_A nor lora_B changed after 3 optimizer steps: with both at zero no gradient ever reaches "
        "either; lora_B starts at zero, so lora_A must start random (kaiming_uniform_)"
    )
    assert not still, _(
        "{name} did not change after 3 optimizer steps: is it an nn.Parameter used in forward, with "
        "requires_grad=True? (lora_A moves from step 2 on, lora_B from step 1)"
    ).format(name=still and still[0])


@block_a
def test_freeze_false_keeps_base_trainable(observe: Observe, rng: np.random.Generator) -> None:
    base = random_linear(rng)
    seen = observe(scenarios.parameters_at_init, base=described(base), r=4, freeze_base=False)
    trainable = trainable_names(seen["parameters"])
    assert trainable == {"base.weight", "base.bias", "lora_A", "lora_B"}, _(
        "with freeze_base=False the trainable parameters are {names}: the base must stay trainable and lora_A / "
        "lora_B must be parameters"
    ).format(names=sorted(trainable))


@block_a
def test_param_count_linear(observe: Observe, rng: np.random.Generator) -> None:
    # The lab's own figure first, then random shapes and ranks.
    seen = observe(scenarios.parameters_at_init, base=described(nn.Linear(64, 64)), r=8)
    trainable = trainable_count(seen["parameters"])
    assert trainable == 1024, _(
        "LoRALinear(nn.Linear(64, 64), r=8) has {trainable} trainable parameters, expected r * (in + out) = "
        "8 * (64 + 64) = 1024 (base frozen, A and B trainable)"
    ).format(trainable=trainable)
    for _attempt in range(5):
        base = random_linear(rng, bias=bool(rng.integers(2)))
        r = int(rng.integers(1, 17))
        seen = observe(scenarios.parameters_at_init, base=described(base), r=r)
        params = plain_parameters(seen["parameters"]).values()
        trainable = trainable_count(seen["parameters"])
        total = sum(math.prod(p["shape"]) for p in params)
        base_total = sum(p.numel() for p in base.parameters())
        expected = r * (base.in_features + base.out_features)
        assert trainable == expected, _(
            "Linear({in_features}, {out_features}) at r={r}: {trainable} trainable parameters, expected "
            "r * (in + out) = {expected}"
        ).format(in_features=base.in_features, out_features=base.out_features, r=r, trainable=trainable,
                 expected=expected)
        assert total == base_total + expected, _(
            "{total} parameters in all, expected base ({base_total}) + adapter ({expected}): no extra parameters "
            "(no bias in the LoRA branch, no nn.Linear factors)"
        ).format(total=total, base_total=base_total, expected=expected)


# ----------------------------------------------------------------------------- Block B
def expected_targets(cfg: MiniGPTConfig) -> set[str]:
    return {
        f"blocks.{i}.{sub}"
        for i in range(cfg.n_layer)
        for sub in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj", "mlp.fc1", "mlp.fc2")
    }


@block_b
def test_freeze_wrap_minigpt_default_targets(observe: Observe) -> None:
    seen = observe(scenarios.wrap_minigpt, model=gpt(small_gpt()), kwargs={"r": 4, "alpha": 8.0})
    assert seen["returned_is_model"], _("wrap_minigpt_with_lora must wrap in place and return the same model")
    wrapped = seen["layers"]
    expected = expected_targets(SMALL_GPT)
    extra, missed = sorted(set(wrapped) - expected), sorted(expected - set(wrapped))
    rule = _("wrap every nn.Linear whose dotted name equals a target or ends with '.' + target, for "
             "DEFAULT_TARGETS = {targets}").format(targets=LAB_TARGETS)  # fmt: skip
    assert not extra, _("wrapped {extra}, which are not targets: {rule}").format(extra=extra, rule=rule)
    assert not missed, _("did not wrap {missed}, which are targets: {rule}").format(missed=missed, rule=rule)
    for name, layer in wrapped.items():
        assert layer["base_is_original"], _("{name}: LoRALinear must wrap the original layer").format(name=name)
        r = plain(layer["r"], int, f"{name}.r")
        scaling = scale_of(layer["scaling"], f"{name}.scaling")
        assert r == 4 and scaling == pytest.approx(2.0), _(
            "{name}: r={r}, scaling={scaling}; pass r and alpha on to every LoRALinear"
        ).format(name=name, r=r, scaling=scaling)


@block_b
def test_freeze_wrap_minigpt_only_lora_trainable(observe: Observe) -> None:
    # Invariant 2 after wrapping: the whole model is frozen but for the adapters.
    # Which layers are wrapped is test_freeze_wrap_minigpt_default_targets' rule, not this one's.
    seen = observe(scenarios.wrap_minigpt, model=gpt(small_gpt()), kwargs={"r": 4, "alpha": 8.0})
    assert seen["returned_is_model"], _(
        "wrap_minigpt_with_lora returned another model: wrap the model you are given in place (no copy), and "
        "return it, so that the model the caller trains is the frozen one"
    )
    trainable = trainable_names(seen["parameters"])
    not_lora = sorted(n for n in trainable if not is_lora_name(n))
    assert not not_lora, _(
        "still trainable after wrapping: {names}: freeze every parameter that is not lora_A / lora_B "
        "(embeddings, layer norms, lm_head, the wrapped bases)"
    ).format(names=not_lora[:6])
    lora_params = {n for n in seen["parameters"] if is_lora_name(n)}
    assert lora_params and trainable == lora_params, _(
        "not trainable after wrapping: {names}: every lora_A / lora_B must be a trainable nn.Parameter"
    ).format(names=sorted(lora_params - trainable)[:6] or _("no lora_A / lora_B at all"))


@block_b
def test_lora_init_identity_wrapped_minigpt(observe: Observe, rng: np.random.Generator) -> None:
    model = small_gpt().eval()
    idx = token_batch(rng)
    with torch.no_grad():
        before, _loss = model(idx)
    after = logits(observe(scenarios.logits_after_wrap, model=gpt(model), idx=idx)["logits"])
    diff = max_abs_diff(after, before)
    assert diff == 0.0, _(
        "wrapping changed the model's logits by {diff:.3g}: a freshly wrapped model must compute exactly what it "
        "computed before (lora_B = 0)"
    ).format(diff=diff)


WRAPPED_RANK = 3  # the rank test_param_count_wrapped_minigpt wraps SMALL_GPT with


@block_b
def test_param_count_wrapped_minigpt(observe: Observe) -> None:
    model = small_gpt()
    sizes = {n: (m.in_features, m.out_features) for n, m in model.named_modules()
             if isinstance(m, nn.Linear)}
    r = WRAPPED_RANK
    seen = observe(scenarios.wrap_minigpt, model=gpt(model), kwargs={"r": r})
    trainable = trainable_count(seen["parameters"])
    expected = sum(r * (i + o) for n, (i, o) in sizes.items() if n in expected_targets(SMALL_GPT))
    assert trainable == expected, _(
        "wrapped MiniGPT at r={r} has {trainable} trainable parameters, expected the sum of r * (in + out) over "
        "the wrapped layers = {expected}"
    ).format(r=r, trainable=trainable, expected=expected)


# The model these targets are matched against is scenarios.Toy: fc1, mlp.fc1, mlp.xfc1,
# xmlp.fc1, mlp.fc1_out (all nn.Linear) and norm (a LayerNorm).
@block_b
@pytest.mark.parametrize(
    "targets, expected",
    [
        (("fc1",), {"fc1", "mlp.fc1", "xmlp.fc1"}),
        (("mlp.fc1",), {"mlp.fc1"}),
        (("xfc1", "norm", "mlp"), {"mlp.xfc1"}),  # norm and mlp are not nn.Linear
    ],
    ids=["fc1", "mlp.fc1", "non_linear_targets"],
)
def test_freeze_wrap_matches_dotted_suffix(observe: Observe, targets: tuple[str, ...],
                                           expected: set[str]) -> None:
    seen = observe(scenarios.wrap_toy, kwargs={"r": 2, "target_modules": targets})
    wrapped = set(seen["layers"])
    assert wrapped == expected, _(
        "target_modules={targets} wrapped {wrapped}, expected {expected}: a name matches when it equals a target "
        "or ends with '.' + target (not a bare substring or suffix), and only nn.Linear layers are wrapped"
    ).format(targets=targets, wrapped=sorted(wrapped), expected=sorted(expected))
    assert trainable_names(seen["parameters"]) == {f"{n}.{a}" for n in expected for a in LORA_NAMES}, _(
        "only the new lora_A / lora_B may be trainable after wrapping"
    )


@block_b
def test_freeze_wrap_passes_dropout(observe: Observe, seed: int, rng: np.random.Generator) -> None:
    idx = token_batch(rng)
    torch.manual_seed(seed)
    model = gpt(small_gpt())
    outputs = {}
    for p in (0.0, 0.5):
        seen = observe(scenarios.dropout_logits, model=model, idx=idx, dropout=p)
        outputs[p] = tuple(logits(out) for out in seen["logits"])
    assert torch.equal(*outputs[0.0]), _("with dropout=0.0 two train-mode forwards must agree")
    assert not torch.equal(*outputs[0.5]), _(
        "with dropout=0.5 two train-mode forwards gave the same logits: pass dropout on to every LoRALinear"
    )


@block_b
def test_freeze_wrap_rejects_bad_calls(observe: Observe) -> None:
    seen = observe(scenarios.wrap_bad_calls, model=gpt(small_gpt()))
    expect_error(
        ValueError, seen["no_match"],
        "wrap_minigpt_with_lora(model, target_modules=('no_such_layer',))",
        _("when no nn.Linear matches a target, raise ValueError instead of silently wrapping nothing"),
    )
    assert not seen["after_no_match"], _("a rejected call must not wrap anything")
    expect_error(
        ValueError, seen["again"],
        # i18n: the action that must raise, in "{what} did not raise {error}: {hint}"
        _("wrapping an already wrapped model again (first q_proj, then k_proj)"),
        _("check for existing LoRALinear layers first: a second wrap would nest adapters"),
    )
    assert seen["after_again"] == seen["layers"] and seen["same_layers"], _(
        "wrapping an already wrapped model must raise ValueError before changing anything (no LoRALinear inside "
        "a LoRALinear)"
    )


# ----------------------------------------------------------------------------- Block C
ROUNDTRIP_TOLERANCE = 1e-5  # save -> reload: the largest absolute change of the logits
TRAINED_RANK, TRAINED_ALPHA = 4, 8.0  # the wrapping of trained_wrapped_gpt (dropout 0)


def trained_wrapped_gpt(seed: int) -> dict[str, Any]:
    """A "trained" wrapped MiniGPT, as the input `trained` of a scenario (scenarios.trained_wrapped_gpt builds it).

    {"model": gpt(...), "r", "alpha", "dropout", "adapter": {name: tensor}}: the scenario wraps the
    model with r, alpha and dropout = 0, then copies in the adapter, values the test chose as
    randomize_lora would (normal(0, 0.5)), so that the test knows what the model holds.
    """
    torch.manual_seed(seed)
    model = small_gpt()
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    adapter: dict[str, torch.Tensor] = {}
    for name in sorted(expected_targets(SMALL_GPT)):
        layer = linears[name]
        adapter[f"{name}.lora_A"] = torch.empty(TRAINED_RANK, layer.in_features).normal_(0.0, 0.5)
        adapter[f"{name}.lora_B"] = torch.empty(layer.out_features, TRAINED_RANK).normal_(0.0, 0.5)
    return {"model": gpt(model), "r": TRAINED_RANK, "alpha": TRAINED_ALPHA, "dropout": 0.0,
            "adapter": adapter}


def saved_adapter(seen: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The observed lora_state_dict(model) (scenarios.saved), once every value in it was exactly a torch.Tensor."""
    return {
        name: plain(value, torch.Tensor, f"lora_state_dict(model)[{name!r}]",
                    _("save detached copies, p.detach().clone(): plain tensors that no longer belong to the model "
                      "(an nn.Parameter is a subclass too)"))
        for name, value in seen.items()
    }


@block_c
def test_roundtrip_state_dict_keys_and_copies(observe: Observe, seed: int) -> None:
    trained = trained_wrapped_gpt(seed)
    seen = observe(scenarios.save_adapter, trained=trained)
    state = saved_adapter(seen["state"])
    expected = {n for n in seen["parameters"] if is_lora_name(n)}
    # a scale kept as a buffer may be saved too, one per layer
    buffers = {n: b["value"] for n, b in seen["buffers"].items()}
    extra = set(state) - expected
    assert expected <= set(state) and extra <= set(buffers), _(
        "unexpected keys {unexpected}, missing {missing}: the adapter state dict holds exactly the lora_A / "
        "lora_B parameters, named as in model.named_parameters() (plus the scale, if a LoRALinear registers it "
        "as a buffer)"
    ).format(unexpected=sorted(extra - set(buffers))[:4], missing=sorted(expected - set(state))[:4])
    per_layer = sorted(name.rpartition(".")[0] for name in extra)
    doubled = sorted({layer for layer in per_layer if per_layer.count(layer) > 1})
    assert not doubled, _("{layers}: at most one scale buffer per LoRALinear may be saved").format(
        layers=doubled[:3])
    params = plain_parameters(seen["parameters"])
    # What the model holds: the test's adapter values (those of the observed shape: the others the
    # scenario could not set, as observed), and the scale buffers as observed.
    adapter = trained["adapter"]
    live = {**{n: adapter[n] if n in adapter and list(adapter[n].shape) == p["shape"] else p["value"]
               for n, p in params.items()}, **buffers}
    for name, tensor in state.items():
        assert torch.equal(tensor, live[name]), _(
            "{name}: the saved tensor does not equal the model's"
        ).format(name=name)
        assert not seen["state"][name]["requires_grad"], _("{name}: save detached tensors (tensor.detach())").format(
            name=name)
    # The scenario then added 1.0 to every parameter and scale buffer of the model, in place.
    after = {n: t["value"] for n, t in seen["state_after_change"].items()}
    changed = [n for n, t in after.items() if torch.equal(t, live[n] + 1.0)]
    assert not changed, _(
        "{names} changed with the model: save copies (detach().clone()), not views of the live parameters"
    ).format(names=changed[:3])


@block_c
def test_roundtrip_same_model(observe: Observe, seed: int, rng: np.random.Generator) -> None:
    trained = trained_wrapped_gpt(seed)
    idx = token_batch(rng)
    seen = observe(scenarios.reload_same_model, trained=trained, idx=idx)
    expected = logits(seen["before"])
    saved_adapter(seen["state"])
    # Between saving and loading, the scenario randomized the adapter (training on, or another one).
    out = logits(seen["after"])
    diff = max_abs_diff(out, expected)
    assert diff < ROUNDTRIP_TOLERANCE, _(
        "save -> reload changed the logits by {diff:.3g} (must be < {tolerance:g})"
    ).format(diff=diff, tolerance=ROUNDTRIP_TOLERANCE)
    params = seen["parameters"]
    for n, same in seen["same_parameter"].items():
        assert same and params[n]["requires_grad"], _(
            "{name}: load must copy into the existing parameters (an optimizer holds them) and keep them trainable"
        ).format(name=n)
    # The scenario then zeroed the state dict's tensors in place.
    assert max_abs_diff(logits(seen["after_zeroing"]), expected) < ROUNDTRIP_TOLERANCE, _(
        "the model changed when the state dict's tensors were modified: copy the values in"
    )


@block_c
def test_roundtrip_into_fresh_model(observe: Observe, seed: int, rng: np.random.Generator) -> None:
    idx = token_batch(rng)
    # The scenario loads the adapter into the same base weights, freshly wrapped with another adapter.
    seen = observe(scenarios.reload_into_fresh_model, trained=trained_wrapped_gpt(seed), idx=idx)
    expected = logits(seen["before"])
    diff = max_abs_diff(logits(seen["after"]), expected)
    assert diff < ROUNDTRIP_TOLERANCE, _(
        "a freshly wrapped model loaded with the adapter differs by {diff:.3g} from the original"
    ).format(diff=diff)


@block_c
def test_roundtrip_only_lora_trainable_after_loading(observe: Observe, seed: int) -> None:
    # Invariant 2 after loading: loading copies values, it never changes what trains. Whether the
    # adapter saved and loaded right is the other round-trip rules' business; a load that raised
    # must have changed nothing.
    seen = observe(scenarios.trainable_through_loading, trained=trained_wrapped_gpt(seed))
    before, after = seen["before"], seen["after"]
    assert set(after) == set(before) and trainable_names(after) == trainable_names(before), _(
        "load_lora_state_dict changed what trains: trainable {after}..., before {before}... (parameters gone: "
        "{gone}): copy the values into the existing Parameters with param.copy_(value) under torch.no_grad(), "
        "never replace them or change their requires_grad"
    ).format(after=sorted(trainable_names(after))[:4], before=sorted(trainable_names(before))[:4],
             gone=sorted(set(before) - set(after))[:4])


def corrupt(state: dict[str, torch.Tensor], how: str) -> tuple[dict[str, object], list[str]]:
    """A broken copy of an adapter state dict, and the key names its error must mention."""
    bad: dict[str, object] = dict(state)
    names = sorted(state)
    a_name = next((n for n in names if n.endswith("lora_A")), None)
    b_name = next((n for n in names if n.endswith("lora_B")), None)
    if a_name is None or b_name is None:
        pytest.fail(_("lora_state_dict(model) holds no lora_A / lora_B keys (it holds {names}), so there is no "
                      "adapter to break: save every parameter named ...lora_A / ...lora_B").format(names=names[:4]),
                    pytrace=False)  # fmt: skip
    if how == "missing":
        del bad[a_name]
        return bad, [a_name]
    if how == "unexpected":
        bad["lm_head.weight"] = torch.zeros(SMALL_GPT.vocab_size, SMALL_GPT.n_embd)
        return bad, ["lm_head.weight"]
    if how == "transposed":
        bad[a_name] = state[a_name].T.contiguous()
        return bad, [a_name]
    if how == "broadcastable":
        bad[b_name] = state[b_name][:1].clone()  # (1, r) would broadcast into (out, r)
        return bad, [b_name]
    if how == "not_a_tensor":
        bad[a_name] = state[a_name].tolist()
        return bad, [a_name]
    if how == "several":
        del bad[a_name]
        bad[b_name] = state[b_name][:, :1].clone()
        bad["blocks.0.attn.q_proj.lora_C"] = torch.zeros(1)
        return bad, [a_name, b_name, "blocks.0.attn.q_proj.lora_C"]
    raise AssertionError(how)


@block_c
@pytest.mark.parametrize(
    "how", ["missing", "unexpected", "transposed", "broadcastable", "not_a_tensor", "several"]
)
def test_roundtrip_rejects_bad_state(observe: Observe, seed: int, how: str) -> None:
    trained = trained_wrapped_gpt(seed)
    # The bad state is built from independent tensors (a saved state that shares memory with the
    # model would make an early copy a no-op: what a scenario observes is always a copy), holding
    # other values than the model will have (the scenario randomizes its adapter before loading).
    state = saved_adapter(observe(scenarios.saved_state, trained=trained)["state"])
    bad, names = corrupt(state, how)
    seen = observe(scenarios.load_bad_state, trained=trained, state=bad)
    message = expect_error(
        ValueError, seen["error"],
        # i18n: {how} names how the state dict is broken (the test's case): missing, unexpected, transposed,
        # broadcastable, not_a_tensor or several
        _("load_lora_state_dict with a {how} state").format(how=how),
        _("be strict: check for missing and unexpected keys, non-tensor values and exact shapes (no "
          "broadcasting), and raise ValueError naming them all"),
    )
    snapshot, now = seen["state_before"], seen["state_after"]
    touched = [n for n, t in now.items()
               if n not in snapshot or t is None or snapshot[n] is None or not torch.equal(t, snapshot[n])]
    assert not touched, _(
        "a rejected load ({how} state) changed {names}: nothing may be copied until every key and shape is "
        "checked; validate the whole state first, then copy"
    ).format(how=how, names=touched[:3])
    unnamed = [n for n in names if n not in message]
    assert not unnamed, _(
        "the ValueError for a {how} state does not name {names}: name every problem key (message was: "
        "{message!r})"
    ).format(how=how, names=unnamed, message=message[:200])
    assert seen["flags_before"] == seen["flags_after"], _(
        "a rejected load changed requires_grad flags"
    )


# ----------------------------------------------------------------------------- Block D
MERGE_TOLERANCE = 1e-5


def merge_tolerance(out: torch.Tensor) -> float:
    """The merge rule: MERGE_TOLERANCE * max(1, largest |out|) (float32 rounding is relative)."""
    return MERGE_TOLERANCE * max(1.0, float(out.abs().max()))


@block_d
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("freeze_base", [True, False], ids=["frozen", "trainable_base"])
def test_merge_equivalence(observe: Observe, rng: np.random.Generator, bias: bool,
                           freeze_base: bool) -> None:
    # Invariant 3 for one layer: merging, and merging again, leave the forward output as it was.
    for r, alpha in ((4, 16.0), (6, 3.0)):
        base = random_linear(rng, bias=bias)
        w0 = base.weight.detach().clone()
        seen = observe_merge(observe, rng, base, r, alpha, freeze_base)
        before = output(seen["before"])
        tol = merge_tolerance(before)
        after = output(seen["after"], _("the merged LoRALinear's forward output"))
        diff = max_abs_diff(after, before)
        assert diff < tol, (
            # i18n: {diagnosis} is what the merge most likely did wrong, then the rule (one of merge_diagnosis')
            _("merged forward differs from the unmerged one by {diff:.3g} (tolerance {tol:.3g}; r={r}, "
              "alpha={alpha}): {diagnosis}").format(diff=diff, tol=tol, r=r, alpha=alpha,
                                                    diagnosis=merge_diagnosis(seen, w0, alpha / r))
        )
        diff = max_abs_diff(output(seen["after_twice"], _("the twice-merged LoRALinear's forward output")), before)
        assert diff < tol, _(
            "a second merge_ changed the output by {diff:.3g} (tolerance {tol:.3g}): zero lora_A and lora_B once "
            "they are folded in, or each merge adds the update again"
        ).format(diff=diff, tol=tol)


def merge_diagnosis(seen: dict[str, Any], w0: torch.Tensor, scaling: float) -> str:
    """What a merge that changed the output most likely did, from the weight and factors it left."""
    weight, A_after, B_after = (seen[k]["value"] for k in ("weight", "lora_A", "lora_B"))
    update = seen["B"] @ seen["A"]
    rule = _("merge must add scaling * lora_B @ lora_A to base.weight (the weight the layer uses), then zero both "
             "factors")

    def near(w: torch.Tensor) -> bool:
        return isinstance(weight, torch.Tensor) and weight.shape == w.shape and max_abs_diff(weight, w) < merge_tolerance(w)

    if near(w0):
        # i18n: each diagnosis ends with {rule}: "merge must add scaling * lora_B @ lora_A to base.weight ..."
        return _("base.weight did not change: the update went into a copy, or nowhere; {rule}").format(rule=rule)
    if isinstance(A_after, torch.Tensor) and isinstance(B_after, torch.Tensor) and (A_after.any() or B_after.any()):
        return _("lora_A / lora_B are not zero after merge_, so the update counts twice; {rule}").format(rule=rule)
    if near(w0 + update):
        return _("base.weight gained lora_B @ lora_A without the scaling alpha / r = {scaling:g}; {rule}").format(
            scaling=scaling, rule=rule)
    if near(w0 - scaling * update):
        return _("base.weight lost the update instead of gaining it (a subtraction); {rule}").format(rule=rule)
    return rule


def observe_merge(observe: Observe, rng: np.random.Generator, base: nn.Linear, r: int, alpha: float,
                  freeze_base: bool) -> dict[str, Any]:
    """scenarios.merge_equivalence on base, with an adapter the test draws (as if trained) and keeps."""
    A = torch.randn(r, base.in_features) * 0.5
    B = torch.randn(base.out_features, r) * 0.5
    x = random_input(rng, base)
    seen = observe(scenarios.merge_equivalence, base=described(base), x=x, r=r, alpha=alpha,
                   freeze_base=freeze_base, lora_A=A, lora_B=B)
    return {**seen, "A": A, "B": B}


@block_d
@pytest.mark.parametrize("freeze_base", [True, False], ids=["frozen", "trainable_base"])
def test_merge_folds_adapter_into_weight(observe: Observe, rng: np.random.Generator, freeze_base: bool) -> None:
    for r, alpha in ((4, 16.0), (6, 3.0)):
        base = random_linear(rng)
        w0 = base.weight.detach().clone()
        seen = observe_merge(observe, rng, base, r, alpha, freeze_base)
        expected_w = w0 + (alpha / r) * seen["B"] @ seen["A"]
        weight = plain(seen["weight"], nn.Parameter, _("base.weight after merge_"))
        A_after = plain(seen["lora_A"], nn.Parameter, _("lora_A after merge_"))
        B_after = plain(seen["lora_B"], nn.Parameter, _("lora_B after merge_"))
        w_diff = max_abs_diff(weight, expected_w)
        assert w_diff < merge_tolerance(expected_w), _(
            "base.weight after merge differs from W + (alpha/r) * B @ A by {diff:.3g} (r={r}, alpha={alpha})"
        ).format(diff=w_diff, r=r, alpha=alpha)
        assert not A_after.any() and not B_after.any(), _(
            "lora_A and lora_B must be zero after merge_, or the update is counted twice"
        )
        assert seen["flags"] == {n: p["requires_grad"] for n, p in plain_parameters(seen["parameters"]).items()}, _(
            "merge_ changed requires_grad flags: every parameter keeps its flag"
        )
        assert seen["weight"]["is_leaf"] and not seen["weight"]["grad_fn"], _(
            "merge_ recorded the update in autograd: do it under torch.no_grad()"
        )


@block_d
def test_merge_twice_and_reinit_then_train(observe: Observe, rng: np.random.Generator) -> None:
    base = random_linear(rng)
    x = random_input(rng, base)
    # Invariant 2 after merging: the base stays frozen, the adapter's Parameters stay the ones an
    # optimizer holds, and they train again. The scenario merges twice, then re-initializes lora_A
    # with kaiming_uniform_ (the user starting a new adapter) and runs backward on the sum of the
    # output. (What merging does to the output is test_merge_equivalence's rule.)
    seen = observe(scenarios.merge_twice_and_reinit, base=described(base), x=x)
    assert seen["lora_A_is_same"] and seen["lora_A_is_parameter"], _(
        "after merge_, lora_A must still be the same nn.Parameter (an optimizer holds it): zero it in place "
        "instead of replacing it"
    )
    assert seen["lora_A_requires_grad"], _(
        "merge_ turned off lora_A's requires_grad: every parameter keeps its flag")
    trainable = trainable_names(seen["merged_parameters"])
    assert trainable == {"lora_A", "lora_B"}, _(
        "after merge_ the trainable parameters are {names}, expected exactly ['lora_A', 'lora_B']: fold the "
        "update into base.weight in place (add_), never replace it with a new Parameter, and keep every "
        "requires_grad flag"
    ).format(names=sorted(trainable))
    output(seen["reinit"], _("the merged LoRALinear's forward output"))
    failed = seen["backward"]
    assert failed is None, _(
        "backward through the merged, re-initialized LoRALinear raised {raised}({message})"
    ).format(raised=failed and failed["type"], message=failed and failed["message"])
    grad = seen["lora_B_grad"]
    assert grad is not None and bool(grad["value"].any()), _(
        "after merge and re-init the adapter must train again: lora_B got no gradient"
    )


#: The wrapped-model merge test: SMALL_GPT at this rank and alpha, its adapter drawn N(0, std²) per
#: factor entry, so that the update scaling * B @ A is of the size of the base weights (about 0.1),
#: as a trained adapter's is. A much larger adapter (std 0.5) makes attention sharp, and sharp
#: attention amplifies float32 rounding by orders of magnitude: over 200 seeds a correct merge then
#: changed the logits by up to 3.3e-5 (6.5e-5 with an exact float64 update), against 7.3e-7 at 0.1.
WRAPPED_MERGE = {"r": 4, "alpha": 8.0, "adapter_std": 0.1}
UNIT_ROUNDOFF = 2.0**-24  # float32: a rounded result is within a relative 2^-24 of the exact one


def wrapped_merge_tolerance(cfg: MiniGPTConfig, r: int, logits_before: torch.Tensor) -> float:
    """How far float32 rounding alone may move a wrapped MiniGPT's logits when its adapters are merged.

    A float32 sum of n products is off by at most about n * u relative to the size of its terms
    (u = UNIT_ROUNDOFF). One forward pass rounds in every wrapped layer (n_in products, plus the
    adapter's branch, r more, and two additions) and in lm_head (n_embd products); merging rounds
    each merged weight once, which the same count covers. Each layer norm rescales what comes in, so
    the rounding of each layer reaches the logits relative to their own size: to first order, the
    logits of one pass are off by u * S * max(1, largest |logit|), with S the sum of those counts,
    and the difference of two passes (before and after merging) by twice that. For SMALL_GPT at
    r = 4, S = 680 and the bound is 8.1e-5, 100 times the largest difference a correct merge made
    over 200 seeds (tools/tests/test_tolerances.py) and 2000 times below the smallest a merge bug
    made.
    """
    C = cfg.n_embd
    per_block = 5 * (C + r + 2) + (4 * C + r + 2)  # q, k, v, o and fc1 read C inputs; fc2 reads 4 C
    count = cfg.n_layer * per_block + C  # + lm_head
    return 2 * UNIT_ROUNDOFF * count * max(1.0, float(logits_before.abs().max()))


@block_d
def test_merge_wrapped_minigpt(observe: Observe, rng: np.random.Generator) -> None:
    # The scenario wraps this MiniGPT (WRAPPED_MERGE, dropout=0.0), gives the adapter random values
    # (as if trained), and records the logits before and after merging every LoRALinear.
    seen = observe(scenarios.merge_wrapped_minigpt, model=gpt(small_gpt()), idx=token_batch(rng), **WRAPPED_MERGE)
    before, after = logits(seen["before"]), logits(seen["after"])
    diff = max_abs_diff(after, before)
    tol = wrapped_merge_tolerance(SMALL_GPT, int(WRAPPED_MERGE["r"]), before)
    assert diff < tol, _(
        "merging every LoRALinear of a MiniGPT changed its logits by {diff:.3g} (tolerance {tol:.3g}, what "
        "float32 rounding through the model can explain): merge must add scaling * lora_B @ lora_A to every "
        "base.weight, then zero lora_A and lora_B"
    ).format(diff=diff, tol=tol)


# ----------------------------------------------------------------------------- Block E
def regression_problem(
    rng: np.random.Generator, dtype: type = np.float64
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x (N, d_in), y (N, d_out), w_base (d_in, d_out), a (d_in, r), b (r, d_out): all distinct."""
    n, d_in, d_out, r = (int(v) for v in rng.choice(np.arange(2, 12), size=4, replace=False))
    x = rng.normal(size=(n, d_in))
    y = rng.normal(size=(n, d_out))
    w_base = rng.normal(size=(d_in, d_out))
    a = rng.normal(scale=0.5, size=(d_in, r))
    b = rng.normal(scale=0.5, size=(r, d_out))
    return tuple(v.astype(dtype) for v in (x, y, w_base, a, b))  # type: ignore[return-value]


def loop_oracle(x: np.ndarray, y: np.ndarray, w_base: np.ndarray, a: np.ndarray, b: np.ndarray,
                lr: float, n_steps: int) -> np.ndarray:
    """The block E algorithm, written out plainly."""
    n = x.shape[0]
    for _step in range(n_steps):
        g = (2.0 / n) * x.T @ (x @ (w_base + a @ b) - y)
        a, b = a - lr * (g @ b.T), b - lr * (a.T @ g)
    return np.concatenate([a.ravel(), b.ravel()])


def sequential_oracle(x: np.ndarray, y: np.ndarray, w_base: np.ndarray, a: np.ndarray, b: np.ndarray,
                      lr: float, n_steps: int, *, fresh_g: bool) -> np.ndarray:
    """The usual update-order mistake: b's gradient taken with the a of this step already updated."""
    n = x.shape[0]
    for _step in range(n_steps):
        g = (2.0 / n) * x.T @ (x @ (w_base + a @ b) - y)
        a = a - lr * (g @ b.T)
        if fresh_g:
            g = (2.0 / n) * x.T @ (x @ (w_base + a @ b) - y)
        b = b - lr * (a.T @ g)
    return np.concatenate([a.ravel(), b.ravel()])


def training_diagnosis(out: np.ndarray, expected: np.ndarray, inputs: dict[str, np.ndarray],
                       lr: float, n_steps: int) -> str:
    """Which usual mistake turns the inputs (copies taken before the call) into out, in words."""
    x, y, w_base, a0, b0 = inputs.values()
    d_in, r = a0.shape
    a_end, b_end = expected[: d_in * r].reshape(d_in, r), expected[d_in * r:].reshape(r, -1)
    # i18n: {steps} is n_steps + 1 or n_steps - 1, the number of steps the student's loop ran
    wrong_steps = _("that is the result of n_steps = {steps}; run exactly n_steps = {n_steps} (for _ in range(n_steps))")
    readings = [
        (loop_oracle(x, y, w_base, a0, b0, -lr, n_steps),
         _("the parameters moved along the gradient; subtract lr * gradient (descent, not ascent)")),
        (loop_oracle(x, y, w_base, a0, b0, lr, n_steps + 1), wrong_steps.format(steps=n_steps + 1, n_steps=n_steps)),
        (loop_oracle(x, y, w_base, a0, b0, lr, n_steps - 1), wrong_steps.format(steps=n_steps - 1, n_steps=n_steps)),
        (sequential_oracle(x, y, w_base, a0, b0, lr, n_steps, fresh_g=True),
         _("grad_b was computed from the already updated a; compute grad_a and grad_b from the same (a, b) "
           "before updating either")),
        (sequential_oracle(x, y, w_base, a0, b0, lr, n_steps, fresh_g=False),
         _("b's update used the already updated a (a.T @ G with the new a); compute grad_a and grad_b from the "
           "same (a, b) before updating either")),
        (np.concatenate([a_end.ravel(order="F"), b_end.ravel(order="F")]),
         _("a and b were flattened column by column; ravel() them in C order, row by row")),
        (np.concatenate([b_end.ravel(), a_end.ravel()]),
         _("b comes first; return np.concatenate([a.ravel(), b.ravel()]), a first")),
    ]
    for candidate, cause in readings:
        if candidate.shape == out.shape and np.allclose(out, candidate, rtol=1e-9, atol=1e-12):
            return cause
    return _("compute grad_a and grad_b from the same (a, b) before updating either, use "
             "G = (2 / N) * x.T @ (x @ W - y), and return np.concatenate([a.ravel(), b.ravel()])")


def regression_loss(x: np.ndarray, y: np.ndarray, w_base: np.ndarray, a: np.ndarray,
                    b: np.ndarray) -> float:
    """The block E loss, written out plainly: sum((x @ (w_base + a @ b) - y) ** 2) / N."""
    return float(np.sum((x @ (w_base + a @ b) - y) ** 2) / x.shape[0])


#: Scale factors (mine / autograd) that a gradient off by a constant usually shows, and their cause
#: (in the reader's language).
_FACTOR_CAUSES: tuple[tuple[str, Callable[[int, int], float], str], ...] = (
    ("1/d_out", lambda n, d_out: 1 / d_out,
     # i18n: why a gradient is off by a constant factor, after "(best scale factor mine/autograd = 0.2 = 1/d_out: "
     _("did you average over the output dimension too? (np.mean over all N * d_out elements instead of sum / N)")),
    ("d_out", lambda n, d_out: d_out, _("the gradient is multiplied by the output dimension")),
    ("1/N", lambda n, d_out: 1 / n,
     _("the gradient is divided by N once too often (or by N squared in all)")),
    ("N", lambda n, d_out: n, _("the division by N is missing: the loss is sum / N")),
    ("1/2", lambda n, d_out: 0.5, _("the 2 of the square's derivative is missing: d(e**2)/de = 2 e")),
    ("2", lambda n, d_out: 2.0, _("the gradient is doubled: the 2 of the square's derivative is counted twice")),
    ("-1", lambda n, d_out: -1.0, _("the sign is flipped: the residual is x @ W - y, not y - x @ W")),
)


def scale_factor_words(ratio: float, *, n: int, d_out: int) -> str:
    """" = 1/d_out: <cause>" (and any other reading) when ratio is one of the usual factors, else ""."""
    causes = [f" = {label}: {cause}" for label, factor, cause in _FACTOR_CAUSES
              if math.isclose(ratio, factor(n, d_out), rel_tol=1e-4)]
    return ";".join(causes)


#: What to do instead of changing the caller's arrays, per function of block E (in the reader's language).
_IN_PLACE_HINTS = {
    "train_lora_regression": _("copy a0 and b0 (np.array(a0)) and update the copies with a = a - lr * grad_a, not "
                               "a -= ... on the caller's array"),
    "lora_regression_grads": _("build new arrays (W = w_base + a @ b, not w = w_base; w += a @ b, which adds into "
                               "the caller's w_base)"),
}


def assert_unmodified(arrays: dict[str, np.ndarray], copies: dict[str, np.ndarray], call: str) -> None:
    """Fail, naming them, when call changed any of its input arrays (copies: taken before it)."""
    changed = [k for k, v in arrays.items() if not np.array_equal(v, copies[k])]
    assert not changed, _(
        "{call} modified its inputs {changed} in place: the caller's arrays must stay as they were; {hint}"
    ).format(call=call, changed=changed, hint=_IN_PLACE_HINTS[call])


@block_e
def test_regression_grads_match_autograd(observe: Observe, rng: np.random.Generator) -> None:
    for _attempt in range(3):
        x, y, w_base, a, b = regression_problem(rng)
        # The expectation on torch copies; the call under test gets copies of the arrays.
        ta = torch.tensor(a, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True)
        tx, ty = torch.tensor(x), torch.tensor(y)
        t_loss = ((tx @ (torch.tensor(w_base) + ta @ tb) - ty) ** 2).sum() / x.shape[0]
        t_loss.backward()
        expected_loss = t_loss.item()
        arrays = {"x": x, "y": y, "w_base": w_base, "a": a, "b": b}
        copies = {k: v.copy() for k, v in arrays.items()}
        seen = observe(scenarios.regression_grads, **arrays)
        assert_unmodified(seen["inputs"], copies, "lora_regression_grads")
        loss = plain(seen["loss"], float, _("the loss returned by lora_regression_grads"))
        grad_a = plain(seen["grad_a"], np.ndarray, _("grad_a returned by lora_regression_grads"))
        grad_b = plain(seen["grad_b"], np.ndarray, _("grad_b returned by lora_regression_grads"))
        assert np.shape(grad_a) == a.shape and np.shape(grad_b) == b.shape, _(
            "grad_a {grad_a} / grad_b {grad_b} must have the shapes of a {a} and b {b}: grad_a = G @ b.T, "
            "grad_b = a.T @ G"
        ).format(grad_a=np.shape(grad_a), grad_b=np.shape(grad_b), a=a.shape, b=b.shape)
        if loss != pytest.approx(expected_loss, rel=1e-10):
            mean = expected_loss / y.shape[1]
            pytest.fail(
                # i18n: {cause} is why the loss differs (one of the two messages that follow this one)
                _("loss {loss:.6g} != sum((x @ W - y)**2) / N = {expected:.6g} with W = w_base + a @ b: {cause}").format(
                    loss=loss, expected=expected_loss,
                    cause=_("{loss:.6g} is the element-wise mean (np.mean over all N * d_out entries), d_out times "
                            "smaller; block E's loss sums over outputs and divides by N only").format(loss=loss)
                    if loss == pytest.approx(mean, rel=1e-6) else
                    _("compute the residual with the whole effective weight W = w_base + a @ b, square it, sum over "
                      "every entry and divide by N (not by N * d_out: not the element-wise mean)")),
                pytrace=False,
            )
        for name, mine, ref in (("grad_a", grad_a, ta.grad), ("grad_b", grad_b, tb.grad)):
            assert ref is not None
            ratio = float(np.sum(mine * ref.numpy()) / np.sum(ref.numpy() ** 2))
            assert np.allclose(mine, ref.numpy(), rtol=1e-9, atol=1e-12), (
                # i18n: {name} is grad_a or grad_b; "mine" is the student's gradient; {causes} is empty or
                # " = 1/d_out: <why>" for a usual wrong factor
                _("{name} differs from autograd's (best scale factor mine/autograd = {ratio:.4g}{causes}): check "
                  "G = (2 / N) * x.T @ (x @ W - y) with W = w_base + a @ b, then grad_a = G @ b.T and "
                  "grad_b = a.T @ G").format(name=name, ratio=ratio,
                                             causes=scale_factor_words(ratio, n=x.shape[0], d_out=y.shape[1]))
            )


@block_e
def test_regression_train_matches_loop(observe: Observe, rng: np.random.Generator) -> None:
    for _attempt in range(3):
        x, y, w_base, a0, b0 = regression_problem(rng)
        n_steps = int(rng.integers(1, 20))
        expected = loop_oracle(x, y, w_base, a0, b0, 0.01, n_steps)  # the test's own, on its arrays
        arrays = {"x": x, "y": y, "w_base": w_base, "a0": a0, "b0": b0}
        copies = {k: v.copy() for k, v in arrays.items()}
        seen = observe(scenarios.regression_train, **arrays, lr=0.01, n_steps=n_steps)
        out = plain(seen["out"], np.ndarray, _("train_lora_regression's result"))
        assert_unmodified(seen["inputs"], copies, "train_lora_regression")
        assert out.shape == expected.shape, _(
            "output shape {shape}, expected (d_in*r + r*d_out,) = {expected}: return "
            "np.concatenate([a.ravel(), b.ravel()])"
        ).format(shape=np.shape(out), expected=expected.shape)
        assert out.dtype == np.float64, _("output dtype {dtype}, expected float64").format(dtype=out.dtype)
        if not np.allclose(out, expected, rtol=1e-9, atol=1e-12):
            pytest.fail(
                # i18n: {diagnosis} is the most likely mistake and what to do (one of training_diagnosis')
                _("with n_steps = {n_steps}, the parameters differ from the block E algorithm by {diff:.3g}: "
                  "{diagnosis}").format(n_steps=n_steps, diff=float(np.abs(out - expected).max()),
                                        diagnosis=training_diagnosis(out, expected, copies, 0.01, n_steps)),
                pytrace=False,
            )


@block_e
def test_regression_loss_decreases(observe: Observe, rng: np.random.Generator) -> None:
    x, y, w_base, a0, b0 = regression_problem(rng)
    d_in, r = a0.shape
    start = regression_loss(x, y, w_base, a0, b0)  # the test's own loss, on arrays it keeps
    seen = observe(scenarios.regression_train, x=x, y=y, w_base=w_base, a0=a0, b0=b0, lr=0.005,
                   n_steps=50)
    out = plain(seen["out"], np.ndarray, _("train_lora_regression's result"))
    a, b = out[: d_in * r].reshape(d_in, r), out[d_in * r:].reshape(r, -1)
    end = regression_loss(x, y, w_base, a, b)
    assert end < start, _(
        "50 gradient-descent steps raised the loss from {start:.4g} to {end:.4g}: subtract lr * gradient "
        "(descent, not ascent)"
    ).format(start=start, end=end)


@block_e
def test_regression_zero_steps_and_zero_lr(observe: Observe, rng: np.random.Generator) -> None:
    x, y, w_base, a0, b0 = regression_problem(rng)
    initial = np.concatenate([a0.ravel(), b0.ravel()])
    for kwargs in ({"lr": 0.01, "n_steps": 0}, {"lr": 0.0, "n_steps": 5}):
        seen = observe(scenarios.regression_train, x=x, y=y, w_base=w_base, a0=a0, b0=b0, **kwargs)
        out = plain(seen["out"], np.ndarray, _("train_lora_regression's result"))
        assert np.shape(out) == initial.shape and np.array_equal(out, initial), _(
            "with {kwargs} the output must be np.concatenate([a0.ravel(), b0.ravel()]) unchanged (a first, then b)"
        ).format(kwargs=kwargs)


@block_e
def test_regression_does_not_modify_inputs(observe: Observe, rng: np.random.Generator) -> None:
    x, y, w_base, a0, b0 = regression_problem(rng)
    arrays = {"x": x, "y": y, "w_base": w_base, "a0": a0, "b0": b0}
    copies = {k: v.copy() for k, v in arrays.items()}
    seen = observe(scenarios.regression_train, **arrays, lr=0.05, n_steps=3)
    assert_unmodified(seen["inputs"], copies, "train_lora_regression")
    seen = observe(scenarios.regression_grads, x=x, y=y, w_base=w_base, a=a0, b=b0)
    after = seen["inputs"]
    assert_unmodified({"x": after["x"], "y": after["y"], "w_base": after["w_base"], "a0": after["a"],
                       "b0": after["b"]}, copies, "lora_regression_grads")


@block_e
@pytest.mark.parametrize(
    "which", ["y_rows", "y_one_row", "w_base", "w_base_one_row", "a0", "b0", "n_steps"]
)
def test_regression_rejects_bad_input(observe: Observe, rng: np.random.Generator, which: str) -> None:
    x, y, w_base, a0, b0 = regression_problem(rng)
    n_steps = 3
    if which == "y_rows":
        y = y[:-1]
    elif which == "y_one_row":
        y = y[:1]  # would broadcast silently against x @ W
    elif which == "w_base":
        w_base = w_base.T.copy()
    elif which == "w_base_one_row":
        w_base = w_base[:1]  # would broadcast silently against a @ b
    elif which == "a0":
        a0 = np.vstack([a0, a0[:1]])
    elif which == "b0":
        b0 = b0[:-1]
    else:
        n_steps = -1
    shapes = f"x {x.shape}, y {y.shape}, w_base {w_base.shape}, a0 {a0.shape}, b0 {b0.shape}"
    seen = observe(scenarios.regression_train_raised, x=x, y=y, w_base=w_base, a0=a0, b0=b0, lr=0.01,
                   n_steps=n_steps)
    expect_error(
        ValueError, seen["error"],
        # i18n: {shapes} lists the arrays' shapes: "x (4, 3), y (3, 2), w_base (3, 2), a0 (3, 5), b0 (5, 2)"
        _("train_lora_regression with {shapes}, n_steps={n_steps}").format(shapes=shapes, n_steps=n_steps),
        _("check every shape against x (N, d_in), y (N, d_out), w_base (d_in, d_out), a0 (d_in, r), b0 (r, d_out) "
          "before computing (NumPy broadcasting hides some mismatches), and reject n_steps < 0"),
    )

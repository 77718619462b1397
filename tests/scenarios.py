"""What the graded tests do with your code: one scenario per kind of experiment.

Each graded test in test_minituner.py chooses its inputs (weights, data, hyperparameters), runs a
scenario from this file on them, and then checks what the scenario observed. A scenario calls your
lora.py and records what it saw: tensors, parameter names, shapes, dtypes, requires_grad flags,
gradients, the exceptions your code raised. It never decides whether any of that is right; the
checks in the test do, against values the test computes itself from the inputs it kept.

When you run pytest, scenario and checks run in your own process, one after the other. When the
instructor grades, the scenarios run in a sandbox beside your code and the checks run in another
process that never imports it: so a scenario only ever returns data (tensors, arrays, numbers,
strings, lists and dicts of them), never an object of yours.

A scenario is `def name(lora, **inputs) -> dict`: lora is your module (minituner.lora), inputs are
copies of what the test chose (the scenario may change them freely).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from minituner.model import MiniGPT, MiniGPTConfig

#: Every scenario, by name: what the grader's worker may be asked to run.
SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {}
LORA_NAMES = ("lora_A", "lora_B")

Scenario = Callable[..., dict[str, Any]]


def scenario(function: Scenario) -> Scenario:
    """Register function as a scenario under its own name."""
    SCENARIOS[function.__name__] = function
    return function


def run(name: str, inputs: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run scenario name on copies of inputs, torch, numpy and random seeded with seed.

    Your code's exceptions are not caught here (pytest shows them with their traceback); the
    scenarios catch those that a test expects.
    """
    lora = importlib.import_module("minituner.lora")  # only now: the checks' process never imports it

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)
    return SCENARIOS[name](lora, **clone(inputs))


def clone(value: Any) -> Any:
    """A deep copy of an input tree: the test's own tensors and arrays never reach your code."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(clone(v) for v in value)
    return value


# ----------------------------------------------------------------------------- what is recorded
def type_name(value: object) -> str:
    """The exact type of value, as module.qualname: torch.Tensor, torch.nn.parameter.Parameter ..."""
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def tensor(value: object) -> dict[str, Any]:
    """A tensor your code returned or holds, as data: its exact type, and a plain copy when it is a tensor.

    {"type", "value" (a plain tensor or None), "requires_grad", "is_leaf", "grad_fn" (whether it
    was recorded by autograd), "device"}.
    """
    if not isinstance(value, torch.Tensor):
        return {"type": type_name(value), "value": None, "requires_grad": False, "is_leaf": True,
                "grad_fn": False, "device": ""}
    return {
        "type": type_name(value),
        "value": value.detach().as_subclass(torch.Tensor).clone(),
        "requires_grad": bool(value.requires_grad),
        "is_leaf": bool(value.is_leaf),
        "grad_fn": value.grad_fn is not None,
        "device": str(value.device),
    }


def array(value: object) -> dict[str, Any]:
    """A NumPy result of yours as data: {"type", "value" (a plain ndarray or None)}."""
    plain = np.array(value, copy=True) if isinstance(value, np.ndarray) else None
    return {"type": type_name(value), "value": plain}


def number(value: object) -> dict[str, Any]:
    """A Python number of yours as data: {"type", "value" (a float, or None when not a real number)}."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    return {"type": type_name(value), "value": float(value) if ok else None}  # type: ignore[arg-type]


def parameters(module: nn.Module, *, values: bool = True) -> dict[str, dict[str, Any]]:
    """module.named_parameters(), each as tensor(...) plus its gradient (a tensor(...) or None).

    values=False leaves out the values (for a large model where only names and flags matter).
    """
    observed = {}
    for name, p in module.named_parameters():
        entry = tensor(p)
        if not values:
            entry["value"] = None
        entry["shape"] = list(p.shape)
        entry["dtype"] = str(p.dtype)
        entry["grad"] = None if p.grad is None else tensor(p.grad)
        observed[name] = entry
    return observed


def scaling(layer: nn.Module) -> dict[str, Any]:
    """layer.scaling as data: {"type", "value" (a float, a one-element tensor, or None), "numel", "buffer"}.

    buffer: whether it is a one-element tensor registered as a buffer of the layer itself.
    """
    value = getattr(layer, "scaling", None)
    if isinstance(value, torch.Tensor):
        buffer = any(value is b for b in layer.buffers(recurse=False))
        return {"type": type_name(value), "value": value.detach().as_subclass(torch.Tensor).clone(),
                "numel": value.numel(), "buffer": buffer}
    return {**number(value), "numel": 0, "buffer": False}


def lora_layers(lora: ModuleType, model: nn.Module) -> dict[str, nn.Module]:
    """The LoRALinear layers of model, by dotted name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, lora.LoRALinear)}


def randomize_lora(module: nn.Module, std: float = 0.5) -> None:
    """Give every lora_A and lora_B non-zero values N(0, std²), as if the adapter had been trained."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.rpartition(".")[2] in LORA_NAMES:
                p.normal_(0.0, std)


def raised(call: Callable[[], object]) -> dict[str, str] | None:
    """Run call; None if it returned, else {"type", "message"} of what it raised.

    NotImplementedError is not caught: an unfinished stub stops the scenario, with its own message.
    """
    try:
        call()
    except NotImplementedError:
        raise
    except Exception as exc:  # which exception it was is the observation
        return {"type": type(exc).__name__, "message": str(exc)}
    return None


# ----------------------------------------------------------------------------- building inputs
def linear(state: dict[str, Any]) -> nn.Linear:
    """The nn.Linear a test described as {"weight": (out, in) tensor, "bias": (out,) tensor or None}."""
    weight, bias = state["weight"], state["bias"]
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def minigpt(config: dict[str, Any], state: dict[str, torch.Tensor]) -> MiniGPT:
    """The MiniGPT a test described: its config (as a dict) and its state dict."""
    model = MiniGPT(MiniGPTConfig(**config))
    model.load_state_dict(state)
    return model


# ----------------------------------------------------------------------------- Block A
@scenario
def forward_at_init(lora: ModuleType, base: dict[str, Any], x: torch.Tensor, r: int, alpha: float) -> dict[str, Any]:
    """LoRALinear(base, r, alpha) straight after __init__, and its forward on x."""
    layer = lora.LoRALinear(linear(base), r=r, alpha=alpha)
    return {"out": tensor(layer(x))}


@scenario
def factors_at_init(lora: ModuleType, base: dict[str, Any], r: int, alpha: float) -> dict[str, Any]:
    """LoRALinear(base, r, alpha) straight after __init__: its factors, nn.Linear submodules and base."""
    given = linear(base)
    layer = lora.LoRALinear(given, r=r, alpha=alpha)
    factors = {}
    for name in LORA_NAMES:
        p = getattr(layer, name)
        is_tensor = isinstance(p, torch.Tensor)
        factors[name] = {**tensor(p), "is_parameter": isinstance(p, nn.Parameter),
                         "is_tensor": is_tensor, "dtype": str(p.dtype) if is_tensor else "",
                         "shape": list(p.shape) if is_tensor else []}
    return {"factors": factors,
            "linears": [name for name, m in layer.named_modules() if isinstance(m, nn.Linear)],
            "base_is_given": layer.base is given}


def set_factors(layer: nn.Module, lora_A: torch.Tensor, lora_B: torch.Tensor) -> None:
    """Copy the test's chosen values into layer.lora_A and layer.lora_B, in place."""
    with torch.no_grad():
        for name, value in zip(LORA_NAMES, (lora_A, lora_B), strict=True):
            factor: torch.Tensor = getattr(layer, name)
            factor.copy_(value)


@scenario
def forward_with_factors(lora: ModuleType, base: dict[str, Any], x: torch.Tensor, r: int, alpha: float,
                         lora_A: torch.Tensor, lora_B: torch.Tensor) -> dict[str, Any]:
    """LoRALinear(base, r, alpha): its stored r, alpha, scaling, then its forward on x once lora_A / lora_B are set."""
    layer = lora.LoRALinear(linear(base), r=r, alpha=alpha)
    seen = {"r": number(layer.r), "alpha": number(layer.alpha), "scaling": scaling(layer)}
    set_factors(layer, lora_A, lora_B)
    with torch.no_grad():
        seen["out"] = tensor(layer(x))
    return seen


@scenario
def dropout_forwards(lora: ModuleType, base: dict[str, Any], x: torch.Tensor, r: int, alpha: float,
                     dropout: float, lora_A: torch.Tensor, lora_B: torch.Tensor) -> dict[str, Any]:
    """LoRALinear(base, r, alpha, dropout) on x: at init in eval then train mode; with lora_A / lora_B set, eval twice then train."""
    layer = lora.LoRALinear(linear(base), r=r, alpha=alpha, dropout=dropout)
    seen = {}
    with torch.no_grad():
        seen["init_eval"] = tensor(layer.eval()(x))
        seen["init_train"] = tensor(layer.train()(x))
    set_factors(layer, lora_A, lora_B)
    with torch.no_grad():
        layer.eval()
        seen["eval"] = tensor(layer(x))
        seen["eval_again"] = tensor(layer(x))
        layer.train()
        seen["train"] = tensor(layer(x))
    return seen


@scenario
def construct_with(lora: ModuleType, base: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """LoRALinear(base, **kwargs): what it raised, and base's requires_grad flags after it."""
    given = linear(base)
    error = raised(lambda: lora.LoRALinear(given, **kwargs))
    return {"error": error, "weight_requires_grad": bool(given.weight.requires_grad),
            "bias_requires_grad": bool(given.bias is not None and given.bias.requires_grad)}


#: The things that are not an nn.Linear that a test may ask LoRALinear to wrap, by name.
NOT_LINEAR: dict[str, Callable[[], object]] = {
    "Conv1d": lambda: nn.Conv1d(4, 4, 1),
    "Identity": lambda: nn.Identity(),
    "Tensor": lambda: torch.zeros(4, 4),
}


@scenario
def construct_on(lora: ModuleType, kind: str) -> dict[str, Any]:
    """LoRALinear(thing), thing built from its name in NOT_LINEAR: what it raised."""
    thing = NOT_LINEAR[kind]()
    return {"error": raised(lambda: lora.LoRALinear(thing))}


#: The module steps a test may ask freeze_through_steps to take, by label.
MODULE_STEPS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "after __init__": lambda m: m,
    ".to(torch.float64)": lambda m: m.to(torch.float64),
    ".train()": lambda m: m.train(),
    ".eval()": lambda m: m.eval(),
    ".to('cpu')": lambda m: m.to("cpu"),
    ".float()": lambda m: m.float(),
}


@scenario
def freeze_through_steps(lora: ModuleType, base: dict[str, Any], r: int, steps: list[str]) -> dict[str, Any]:
    """LoRALinear(base, r) taken through steps (MODULE_STEPS) in order: its parameters after each,
    whether its base is the layer it was given, and lora_A's dtype at the end (None if it has none)."""
    original = linear(base)
    layer = lora.LoRALinear(original, r=r)
    base_is_original = getattr(layer, "base", None) is original
    after = []
    for label in steps:
        layer = MODULE_STEPS[label](layer)
        after.append(parameters(layer, values=False))
    dtype = getattr(getattr(layer, "lora_A", None), "dtype", None)
    return {"after": after, "base_is_original": base_is_original, "lora_A_dtype": str(dtype)}


@scenario
def parameters_at_init(lora: ModuleType, base: dict[str, Any], r: int, freeze_base: bool = True) -> dict[str, Any]:
    """LoRALinear(base, r, freeze_base=freeze_base) straight after __init__: its parameters (no values)."""
    layer = lora.LoRALinear(linear(base), r=r, freeze_base=freeze_base)
    return {"parameters": parameters(layer, values=False)}


@scenario
def sgd_steps(lora: ModuleType, base: dict[str, Any], r: int, alpha: float, x: torch.Tensor,
              target: torch.Tensor, steps: int, lr: float) -> dict[str, Any]:
    """LoRALinear(base, r, alpha) trained for steps of plain SGD on the mean squared error to target.

    Records its parameters before and after, and at each step the forward output and whether
    base.weight and base.bias received a gradient.
    """
    layer = lora.LoRALinear(linear(base), r=r, alpha=alpha)
    seen: dict[str, Any] = {"before": parameters(layer), "steps": []}
    for _ in range(steps):
        layer.zero_grad()
        out = layer(x)
        step: dict[str, Any] = {"out": tensor(out)}
        loss = ((out - target) ** 2).mean()
        torch.autograd.backward(loss)  # (Tensor.backward is untyped for mypy)
        step["base_grad"] = {name: layer.get_parameter(name).grad is not None
                             for name in ("base.weight", "base.bias")}
        seen["steps"].append(step)
        # Plain SGD over *all* parameters, as an optimizer given model.parameters() would do
        # (torch.optim itself takes seconds to import): frozen ones have no gradient to apply.
        with torch.no_grad():
            for p in layer.parameters():
                if p.grad is not None:
                    p.sub_(lr * p.grad)
    seen["after"] = parameters(layer)
    return seen


# ----------------------------------------------------------------------------- Block B
def integer(value: object) -> dict[str, Any]:
    """A Python int of yours as data: {"type", "value" (the int, or None when not exactly an int)}."""
    return {"type": type_name(value), "value": value if type(value) is int else None}


def wrapped_layers(lora: ModuleType, model: nn.Module,
                   originals: dict[str, nn.Module] | None = None) -> dict[str, dict[str, Any]]:
    """The LoRALinear layers of model by dotted name: their r, scaling, and whether base is the original."""
    originals = originals or {}
    return {
        name: {"base_is_original": getattr(layer, "base", None) is originals.get(name),
               "r": integer(getattr(layer, "r", None)), "scaling": scaling(layer)}
        for name, layer in lora_layers(lora, model).items()
    }


@scenario
def wrap_minigpt(lora: ModuleType, model: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """wrap_minigpt_with_lora(model, **kwargs) on the test's MiniGPT: what it returned, its LoRA layers and parameters."""
    built = minigpt(**model)
    originals: dict[str, nn.Module] = {name: m for name, m in built.named_modules() if isinstance(m, nn.Linear)}
    returned = lora.wrap_minigpt_with_lora(built, **kwargs)
    return {"returned_is_model": returned is built, "layers": wrapped_layers(lora, built, originals),
            "parameters": parameters(built, values=False)}


@scenario
def logits_after_wrap(lora: ModuleType, model: dict[str, Any], idx: torch.Tensor) -> dict[str, Any]:
    """The test's MiniGPT in eval mode, wrapped with the defaults under no_grad, and its logits on idx."""
    built = minigpt(**model).eval()
    with torch.no_grad():
        lora.wrap_minigpt_with_lora(built)
        out = built(idx)[0]
    return {"logits": tensor(out)}


class Toy(nn.Module):
    """Names that test dotted-suffix matching: fc1, mlp.fc1, mlp.xfc1, xmlp.fc1, mlp.fc1_out."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(6, 5)
        self.mlp.xfc1 = nn.Linear(5, 7)
        self.mlp.fc1_out = nn.Linear(7, 3)
        self.xmlp = nn.Module()
        self.xmlp.fc1 = nn.Linear(3, 2)
        self.norm = nn.LayerNorm(4)


@scenario
def wrap_toy(lora: ModuleType, kwargs: dict[str, Any]) -> dict[str, Any]:
    """wrap_minigpt_with_lora(Toy(), **kwargs): the names of its LoRA layers and its parameters."""
    model = Toy()
    lora.wrap_minigpt_with_lora(model, **kwargs)
    return {"layers": list(lora_layers(lora, model)), "parameters": parameters(model, values=False)}


@scenario
def dropout_logits(lora: ModuleType, model: dict[str, Any], idx: torch.Tensor, dropout: float) -> dict[str, Any]:
    """The test's MiniGPT wrapped with dropout, its adapter randomized, and two train-mode forwards on idx."""
    built = lora.wrap_minigpt_with_lora(minigpt(**model), dropout=dropout)
    randomize_lora(built)
    built.train()
    with torch.no_grad():
        first, second = built(idx)[0], built(idx)[0]
    return {"logits": [tensor(first), tensor(second)]}


@scenario
def wrap_bad_calls(lora: ModuleType, model: dict[str, Any]) -> dict[str, Any]:
    """Wrap with a target nothing matches, then wrap q_proj, then try wrapping k_proj on top of it."""
    built = minigpt(**model)
    no_match = raised(lambda: lora.wrap_minigpt_with_lora(built, target_modules=("no_such_layer",)))
    after_no_match = list(lora_layers(lora, built))
    lora.wrap_minigpt_with_lora(built, r=2, target_modules=("q_proj",))
    layers = lora_layers(lora, built)
    again = raised(lambda: lora.wrap_minigpt_with_lora(built, r=2, target_modules=("k_proj",)))
    after = lora_layers(lora, built)
    return {
        "no_match": no_match, "after_no_match": after_no_match,
        "layers": list(layers), "again": again, "after_again": list(after),
        # the same LoRALinear objects, by name, as before the second call
        "same_layers": after.keys() == layers.keys() and all(after[n] is m for n, m in layers.items()),
    }


# ----------------------------------------------------------------------------- Block C
def trained_wrapped_gpt(lora: ModuleType, trained: dict[str, Any]) -> nn.Module:
    """The test's "trained" wrapped MiniGPT, in eval mode (not a scenario: the scenarios below start with it).

    trained = {"model": a MiniGPT as minigpt(...) takes it, "r", "alpha", "dropout", "adapter": {name:
    tensor}}: the model is wrapped with r, alpha and dropout, then every lora_A / lora_B named in
    adapter gets the test's values; one that adapter misses, or whose shape differs, gets random
    values (randomize_lora), as before the test chose them.
    """
    model: nn.Module = lora.wrap_minigpt_with_lora(minigpt(**trained["model"]), r=trained["r"],
                                                   alpha=trained["alpha"], dropout=trained["dropout"])
    adapter = trained["adapter"]
    randomize_lora(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in adapter and p.shape == adapter[name].shape:
                p.copy_(adapter[name])
    return model.eval()


def scale_buffers(lora: ModuleType, model: nn.Module) -> dict[str, torch.Tensor]:
    """The one-element buffers registered directly on the LoRALinear layers, by full name.

    An implementation may keep its scale as such a buffer; the adapter state dict may then hold it.
    """
    return {
        f"{layer_name}.{name}": buffer
        for layer_name, layer in lora_layers(lora, model).items()
        for name, buffer in layer.named_buffers(recurse=False)
        if buffer.numel() == 1
    }


def saved(state: Any) -> dict[str, dict[str, Any]]:
    """What lora_state_dict returned, each value as tensor(...)."""
    return {name: tensor(value) for name, value in state.items()}


def model_logits(model: nn.Module, idx: torch.Tensor) -> dict[str, Any]:
    """model(idx)'s logits as tensor(...)."""
    return tensor(model(idx)[0])


@scenario
def save_adapter(lora: ModuleType, trained: dict[str, Any]) -> dict[str, Any]:
    """lora_state_dict of the trained model; then every parameter and scale buffer gets + 1 in place, and the saved state again."""
    model = trained_wrapped_gpt(lora, trained)
    state = lora.lora_state_dict(model)
    observed = {"state": saved(state), "parameters": parameters(model),
                "buffers": {n: tensor(b) for n, b in scale_buffers(lora, model).items()}}
    with torch.no_grad():
        for t in [*model.parameters(), *scale_buffers(lora, model).values()]:
            t.add_(1.0)
    observed["state_after_change"] = saved(state)
    return observed


@scenario
def reload_same_model(lora: ModuleType, trained: dict[str, Any], idx: torch.Tensor) -> dict[str, Any]:
    """Save the trained model's adapter, randomize it, load the saved one back; then zero the saved tensors."""
    model = trained_wrapped_gpt(lora, trained)
    with torch.no_grad():
        before = model_logits(model, idx)
    state = lora.lora_state_dict(model)
    observed = {"before": before, "state": saved(state)}
    lora_before = {n: p for n, p in model.named_parameters() if n.rpartition(".")[2] in LORA_NAMES}
    randomize_lora(model)  # training on, or another adapter
    lora.load_lora_state_dict(model, state)
    with torch.no_grad():
        observed["after"] = model_logits(model, idx)
    observed["same_parameter"] = {n: lora_before.get(n) is p for n, p in model.named_parameters()
                                  if n.rpartition(".")[2] in LORA_NAMES}
    observed["parameters"] = parameters(model, values=False)
    with torch.no_grad():
        for t in state.values():
            if isinstance(t, torch.Tensor):
                t.zero_()
    observed["after_zeroing"] = model_logits(model, idx)
    return observed


@scenario
def reload_into_fresh_model(lora: ModuleType, trained: dict[str, Any], idx: torch.Tensor) -> dict[str, Any]:
    """Save the trained model's adapter, load it into the same model freshly wrapped with another adapter."""
    model = trained_wrapped_gpt(lora, trained)
    with torch.no_grad():
        before = model_logits(model, idx)
    state = lora.lora_state_dict(model)
    fresh = trained_wrapped_gpt(lora, trained)  # the same base weights ...
    randomize_lora(fresh)  # ... but another adapter
    lora.load_lora_state_dict(fresh, state)
    return {"before": before, "state": saved(state), "after": model_logits(fresh, idx),
            "parameters": parameters(fresh, values=False)}


@scenario
def trainable_through_loading(lora: ModuleType, trained: dict[str, Any]) -> dict[str, Any]:
    """The trained model's adapter loaded into the same model freshly wrapped: the fresh model's
    parameters (no values) before and after, and what saving or loading raised."""
    fresh = trained_wrapped_gpt(lora, trained)
    randomize_lora(fresh)
    before = parameters(fresh, values=False)
    saving: dict[str, Any] = {}
    problem = raised(lambda: saving.update(state=lora.lora_state_dict(trained_wrapped_gpt(lora, trained))))
    if problem is None:
        problem = raised(lambda: lora.load_lora_state_dict(fresh, saving["state"]))
    return {"before": before, "raised": problem, "after": parameters(fresh, values=False)}


@scenario
def saved_state(lora: ModuleType, trained: dict[str, Any]) -> dict[str, Any]:
    """lora_state_dict of the trained model."""
    return {"state": saved(lora.lora_state_dict(trained_wrapped_gpt(lora, trained)))}


def model_state(model: nn.Module) -> dict[str, torch.Tensor | None]:
    """model.state_dict() as plain tensor copies (None for a value that is not a tensor)."""
    return {n: t.detach().as_subclass(torch.Tensor).clone() if isinstance(t, torch.Tensor) else None
            for n, t in model.state_dict().items()}


@scenario
def load_bad_state(lora: ModuleType, trained: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """load_lora_state_dict(model, state) on the trained model with its adapter randomized: what it raised, the model before and after."""
    model = trained_wrapped_gpt(lora, trained)
    randomize_lora(model)
    before = model_state(model)
    flags = {n: bool(p.requires_grad) for n, p in model.named_parameters()}
    error = raised(lambda: lora.load_lora_state_dict(model, state))
    return {"error": error, "state_before": before, "state_after": model_state(model),
            "flags_before": flags, "flags_after": {n: bool(p.requires_grad) for n, p in model.named_parameters()}}


# ----------------------------------------------------------------------------- Block D
@scenario
def merge_equivalence(lora: ModuleType, base: dict[str, Any], x: torch.Tensor, r: int, alpha: float,
                      freeze_base: bool, lora_A: torch.Tensor, lora_B: torch.Tensor) -> dict[str, Any]:
    """LoRALinear(base, r, alpha, freeze_base) given lora_A / lora_B: forward on x, merge_(), forward
    again (and the layer as it is then), merge_() a second time, forward again."""
    given = linear(base)
    layer = lora.LoRALinear(given, r=r, alpha=alpha, freeze_base=freeze_base)
    with torch.no_grad():
        layer.lora_A.copy_(lora_A)
        layer.lora_B.copy_(lora_B)
    flags = {n: bool(p.requires_grad) for n, p in layer.named_parameters()}
    with torch.no_grad():
        before = tensor(layer(x))
    layer.merge_()
    with torch.no_grad():
        after = tensor(layer(x))
    seen = {"before": before, "after": after, "flags": flags, "weight": tensor(given.weight),
            "lora_A": tensor(layer.lora_A), "lora_B": tensor(layer.lora_B),
            "parameters": parameters(layer, values=False)}
    layer.merge_()  # the factors are zero now: a second merge changes nothing
    with torch.no_grad():
        seen["after_twice"] = tensor(layer(x))
    return seen


@scenario
def merge_twice_and_reinit(lora: ModuleType, base: dict[str, Any], x: torch.Tensor) -> dict[str, Any]:
    """LoRALinear(base, r=4, alpha=8.0) randomized, merged twice (its parameters then), lora_A
    re-initialized, one forward and backward.

    The kaiming re-initialization of lora_A stands for the user starting a new adapter.
    """
    import math

    layer = lora.LoRALinear(linear(base), r=4, alpha=8.0)
    randomize_lora(layer)
    first_a = layer.lora_A
    layer.merge_()
    layer.merge_()
    observed: dict[str, Any] = {
        "lora_A_is_same": layer.lora_A is first_a,
        "lora_A_is_parameter": isinstance(first_a, nn.Parameter),
        "lora_A_requires_grad": bool(first_a.requires_grad),
        "merged_parameters": parameters(layer, values=False),
    }
    nn.init.kaiming_uniform_(layer.lora_A, a=math.sqrt(5))  # start a new adapter
    out = layer(x)
    observed["reinit"] = tensor(out)
    observed["backward"] = raised(lambda: torch.autograd.backward(out.sum()))
    grad = layer.lora_B.grad
    observed["lora_B_grad"] = None if grad is None else tensor(grad)
    return observed


@scenario
def merge_wrapped_minigpt(lora: ModuleType, model: dict[str, Any], idx: torch.Tensor, r: int, alpha: float,
                          adapter_std: float) -> dict[str, Any]:
    """The MiniGPT wrapped (r, alpha, dropout=0.0), its adapter drawn N(0, adapter_std²), eval: logits, merge every layer, logits."""
    wrapped = lora.wrap_minigpt_with_lora(minigpt(**model), r=r, alpha=alpha, dropout=0.0)
    randomize_lora(wrapped, adapter_std)
    wrapped.eval()
    with torch.no_grad():
        before = tensor(wrapped(idx)[0])
        layers: dict[str, Any] = lora_layers(lora, wrapped)  # LoRALinear, as your module defines it
        for layer in layers.values():
            layer.merge_()
        after = tensor(wrapped(idx)[0])
    return {"before": before, "after": after}




# ----------------------------------------------------------------------------- Block E
def regression_inputs(**arrays: np.ndarray) -> dict[str, np.ndarray]:
    """The input arrays as they are after your call (copies), to see whether it changed them."""
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


@scenario
def regression_grads(lora: ModuleType, x: np.ndarray, y: np.ndarray, w_base: np.ndarray, a: np.ndarray,
                     b: np.ndarray) -> dict[str, Any]:
    """lora_regression_grads(x, y, w_base, a, b): the loss, both gradients, and the inputs after the call."""
    loss, grad_a, grad_b = lora.lora_regression_grads(x, y, w_base, a, b)
    return {"loss": number(loss), "grad_a": array(grad_a), "grad_b": array(grad_b),
            "inputs": regression_inputs(x=x, y=y, w_base=w_base, a=a, b=b)}


@scenario
def regression_train(lora: ModuleType, x: np.ndarray, y: np.ndarray, w_base: np.ndarray, a0: np.ndarray,
                     b0: np.ndarray, lr: float, n_steps: int) -> dict[str, Any]:
    """train_lora_regression(x, y, w_base, a0, b0, lr, n_steps): its result and the inputs after the call."""
    out = lora.train_lora_regression(x, y, w_base, a0, b0, lr=lr, n_steps=n_steps)
    return {"out": array(out), "inputs": regression_inputs(x=x, y=y, w_base=w_base, a0=a0, b0=b0)}


@scenario
def regression_train_raised(lora: ModuleType, x: np.ndarray, y: np.ndarray, w_base: np.ndarray,
                            a0: np.ndarray, b0: np.ndarray, lr: float, n_steps: int) -> dict[str, Any]:
    """train_lora_regression(...) on inputs a test made inconsistent: what it raised, if anything."""
    return {"error": raised(lambda: lora.train_lora_regression(x, y, w_base, a0, b0, lr=lr, n_steps=n_steps))}


# ----------------------------------------------------------------------------- The notes file
@scenario
def notes_measurement(lora: ModuleType, base: dict[str, Any], x: torch.Tensor, lora_B: torch.Tensor) -> dict[str, Any]:
    """The notes file's values, measured as the lab asks: LoRALinear(base, r=8, alpha=16) on x.

    Each step records what it saw, or {"error": ...} when your code raised; a later step still runs
    when it can. lora_B: the non-zero adapter merge_ folds in (it stands for some training).
    """
    seen: dict[str, Any] = {}
    try:
        layer = lora.LoRALinear(linear(base), r=8, alpha=16.0)
    except Exception as exc:  # the error is the observation
        return dict.fromkeys(("out_at_init", "trainable_params", "gradient_flow", "merged"), _error(exc))
    for key, step in (
        ("out_at_init", lambda: _plain_tensor(layer(x))),
        ("trainable_params", lambda: sum(p.numel() for p in layer.parameters() if p.requires_grad)),
        ("gradient_flow", lambda: _gradient_flow(layer, x)),
        ("merged", lambda: _merged(layer, x, lora_B)),
    ):
        try:
            seen[key] = step()
        except Exception as exc:
            seen[key] = _error(exc)
    return seen


def _error(exc: Exception) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {exc}"}


def _plain_tensor(value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"forward returned a {type_name(value)}, not a tensor")
    return value.detach().as_subclass(torch.Tensor).clone()


def _gradient_flow(layer: nn.Module, x: torch.Tensor) -> list[str]:
    """The names of the parameters that hold a gradient after one backward pass."""
    torch.autograd.backward(layer(x).pow(2).sum())
    return sorted(n for n, p in layer.named_parameters() if p.grad is not None)


def _merged(layer: Any, x: torch.Tensor, lora_B: torch.Tensor) -> list[torch.Tensor]:
    """[output before merge_, output after], with lora_B set to the given values first."""
    with torch.no_grad():
        layer.get_parameter("lora_B").copy_(lora_B)
        before = _plain_tensor(layer(x))
        layer.merge_()
        return [before, _plain_tensor(layer(x))]

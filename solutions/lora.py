"""Reference solution of Lab 00, "LoRA by hand" (blocks A to E).

Instructors and maintainers only: students write their own in src/minituner/lora.py. The public API
is exactly the one of the student stubs; src/minituner/BLUEPRINT.md explains the design.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

__all__ = [
    "DEFAULT_TARGETS",
    "LoRALinear",
    "wrap_minigpt_with_lora",
    "lora_state_dict",
    "load_lora_state_dict",
    "lora_regression_grads",
    "train_lora_regression",
]

DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "mlp.fc1", "mlp.fc2")
_LORA_NAMES = ("lora_A", "lora_B")


# ----------------------------------------------------------------------------- Block A
def _check_hyperparameters(r: int, alpha: float, dropout: float) -> None:
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise ValueError(f"r must be a positive int, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
        math.isfinite(alpha) and alpha > 0
    ):
        raise ValueError(f"alpha must be a positive finite number, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
        0.0 <= dropout < 1.0
    ):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")


class LoRALinear(nn.Module):
    """y = base(x) + (alpha / r) * dropout(x) @ lora_A.T @ lora_B.T.

    Shapes (PyTorch's (out, in) layout): base.weight (out_features, in_features),
    lora_A (r, in_features), lora_B (out_features, r); x (..., in_features) -> (..., out_features).
    """

    def __init__(
        self,
        base: nn.Linear,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        freeze_base: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        # Validate everything before touching base, so a rejected call changes nothing.
        _check_hyperparameters(r, alpha, dropout)

        self.base = base
        self.r = r
        self.alpha = float(alpha)
        # The alpha / r factor keeps the update's size independent of r: doubling r without it
        # would double the effective learning rate of the adapter.
        self.scaling = self.alpha / r
        weight = base.weight
        self.lora_A = nn.Parameter(
            torch.empty(r, base.in_features, device=weight.device, dtype=weight.dtype)
        )
        # lora_B starts at zero, so the adapter adds exactly nothing until it is trained.
        self.lora_B = nn.Parameter(
            torch.zeros(base.out_features, r, device=weight.device, dtype=weight.dtype)
        )
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear inits its weight
        # nn.Dropout follows module.train() / module.eval(), so it is off at inference.
        self.dropout = nn.Dropout(p=dropout)
        if freeze_base:
            # requires_grad is a flag on the Parameter objects; .to(), .train() and .eval() keep
            # the same objects (or copy the flag), so the freeze holds.
            for p in base.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) -> (..., out_features)."""
        # Two thin matmuls, r * (in + out) FLOPs per row; never form lora_B @ lora_A here.
        # scaling multiplies the thin (..., r) intermediate rather than the (..., out) result:
        # the same value, for a pass over r columns instead of out_features.
        update = F.linear(self.scaling * F.linear(self.dropout(x), self.lora_A), self.lora_B)
        base_out: torch.Tensor = self.base(x)  # nn.Module.__call__ is untyped for mypy
        return base_out + update

    @torch.no_grad()
    def merge_(self) -> None:
        """Fold the adapter into base.weight in place, then zero lora_A and lora_B.

        The forward output is unchanged up to float rounding; every parameter keeps its
        requires_grad flag, and a later re-initialization of lora_A starts a fresh adapter.
        """
        self.base.weight.add_(self.lora_B @ self.lora_A, alpha=self.scaling)
        self.lora_A.zero_()
        self.lora_B.zero_()

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling}"


# ----------------------------------------------------------------------------- Block B
def _matches(name: str, targets: Iterable[str]) -> bool:
    """Whether a dotted module name is a target, or ends with "." + a target."""
    return any(name == t or name.endswith("." + t) for t in targets)


def wrap_minigpt_with_lora(
    model: nn.Module,
    r: int = 8,
    alpha: float = 16.0,
    target_modules: Iterable[str] = DEFAULT_TARGETS,
    dropout: float = 0.05,
) -> nn.Module:
    """Replace every target nn.Linear of model by a LoRALinear around it; freeze the rest."""
    _check_hyperparameters(r, alpha, dropout)
    targets = tuple(target_modules)
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("model already contains LoRALinear layers; wrap it only once")
    found = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and _matches(name, targets)
    ]
    if not found:
        raise ValueError(f"no nn.Linear in model matches target_modules={targets!r}")

    for p in model.parameters():  # embeddings, norms, lm_head and the bases to be wrapped
        p.requires_grad_(False)
    for name in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    return model


# ----------------------------------------------------------------------------- Block C
def _is_lora_name(name: str) -> bool:
    return name.rpartition(".")[2] in _LORA_NAMES


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter alone: {name: detached copy} for every lora_A / lora_B parameter of model."""
    return {
        name: p.detach().clone() for name, p in model.named_parameters() if _is_lora_name(name)
    }


def load_lora_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy an adapter into model's lora_A / lora_B parameters, strictly.

    Raises ValueError naming every missing key, unexpected key, non-tensor value and shape
    mismatch; nothing is copied unless all of them check out.
    """
    params = {name: p for name, p in model.named_parameters() if _is_lora_name(name)}
    problems = [f"missing key {name!r}" for name in params if name not in state]
    for name, value in state.items():
        if name not in params:
            problems.append(f"unexpected key {name!r}")
        elif not isinstance(value, torch.Tensor):
            problems.append(f"{name!r} is a {type(value).__name__}, expected a torch.Tensor")
        elif value.shape != params[name].shape:
            problems.append(
                f"shape mismatch for {name!r}: got {tuple(value.shape)}, "
                f"expected {tuple(params[name].shape)}"
            )
    if problems:
        raise ValueError("cannot load LoRA state dict: " + "; ".join(problems))
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name])


# ----------------------------------------------------------------------------- Block E
# Block E is from scratch: NumPy only, no torch and no autograd (the lab's code rule).
# It uses the math layout y = x @ W: w_base (d_in, d_out), a (d_in, r), b (r, d_out).
def _regression_shapes(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    w_base: NDArray[np.float64],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
) -> None:
    if x.ndim != 2 or y.ndim != 2 or w_base.ndim != 2 or a.ndim != 2 or b.ndim != 2:
        raise ValueError("x, y, w_base, a and b must all be 2-D arrays")
    n, d_in = x.shape
    d_out = w_base.shape[1]
    r = a.shape[1]
    expected = {"y": (n, d_out), "w_base": (d_in, d_out), "a": (d_in, r), "b": (r, d_out)}
    actual = {"y": y.shape, "w_base": w_base.shape, "a": a.shape, "b": b.shape}
    wrong = [f"{k} has shape {actual[k]}, expected {v}" for k, v in expected.items() if actual[k] != v]
    if n == 0:
        wrong.append("x has no rows")
    if wrong:
        raise ValueError("inconsistent shapes: " + "; ".join(wrong))


def lora_regression_grads(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    w_base: NDArray[np.float64],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """loss = sum((x @ (w_base + a @ b) - y) ** 2) / N and its gradients (grad_a, grad_b).

    Shapes: x (N, d_in), y (N, d_out), w_base (d_in, d_out), a (d_in, r), b (r, d_out).
    """
    _regression_shapes(x, y, w_base, a, b)
    n = x.shape[0]
    residual = x @ (w_base + a @ b) - y  # (N, d_out)
    loss = float(np.sum(residual**2) / n)
    g = (2.0 / n) * x.T @ residual  # (d_in, d_out): d loss / d W
    return loss, g @ b.T, a.T @ g


def train_lora_regression(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    w_base: NDArray[np.float64],
    a0: NDArray[np.float64],
    b0: NDArray[np.float64],
    lr: float,
    n_steps: int,
) -> NDArray[np.float64]:
    """n_steps of plain gradient descent on (a, b); returns concat(a.ravel(), b.ravel())."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative int, got {n_steps!r}")
    x, y, w_base = (np.asarray(v, dtype=np.float64) for v in (x, y, w_base))
    a = np.array(a0, dtype=np.float64)  # copies: the caller's arrays are never modified
    b = np.array(b0, dtype=np.float64)
    _regression_shapes(x, y, w_base, a, b)
    for _ in range(n_steps):
        # Both gradients come from the same (a, b); only then are both updated.
        _, grad_a, grad_b = lora_regression_grads(x, y, w_base, a, b)
        a = a - lr * grad_a
        b = b - lr * grad_b
    return np.concatenate([a.ravel(), b.ravel()])

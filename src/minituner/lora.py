"""Lab 00, "LoRA by hand": the file you write.

Fill in every function that raises NotImplementedError, block by block, until
`pytest` is green. Read BLUEPRINT.md (next to this file) first; the lab text in labs/ walks you
through each block and its notebook shows what your code does.

Rules of the lab: torch, torch.nn, torch.nn.functional and numpy only (no peft), and block E numpy
alone; imports from the list in labs/lab.toml ([rules]) and nothing that reaches outside the lab
(os, sys, files, eval, dunder attributes): the grader checks this without running your file, and
`check` shows any line that breaks it. Create lora_A and lora_B as nn.Parameter directly (not as
nn.Linear layers). Never seed anything here: the tests seed torch, numpy and Python (the `seed`
fixture of conftest.py) before they build a layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
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

# The MiniGPT layers that get an adapter unless the caller says otherwise.
DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "mlp.fc1", "mlp.fc2")


# ----------------------------------------------------------------------------- Block A
class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update.

    forward(x) = base(x) + scaling * (dropout(x) @ lora_A.T) @ lora_B.T,  scaling = alpha / r

    Shapes (PyTorch's (out, in) layout), with in = base.in_features, out = base.out_features:
        base.weight (out, in), lora_A (r, in), lora_B (out, r);
        x (..., in) -> (..., out), for any number of leading dimensions.

    What __init__ must set up:
        self.base     the nn.Linear you were given, kept as a submodule (do not copy it)
        self.r        r, the int you were given
        self.alpha    alpha as a float (float(alpha))
        self.scaling  alpha / r, a float (or a one-element buffer, see lora_state_dict)
        self.lora_A   nn.Parameter (r, in), nn.init.kaiming_uniform_(..., a=math.sqrt(5))
        self.lora_B   nn.Parameter (out, r), all zeros, so that at init the output is exactly base(x)
        both on base.weight's device and dtype; dropout on the LoRA branch's input only, and
        off in eval mode (an nn.Dropout module does that for you).
    freeze_base=True sets requires_grad=False on base.weight and base.bias (if there is one), and
    that must survive .to(...), .train() and .eval(). freeze_base=False leaves them trainable.

    Raises (before changing anything): TypeError if base is not an nn.Linear; ValueError if r is
    not a positive int, if alpha is not a positive finite number, or if dropout is not in [0, 1).
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
        raise NotImplementedError("Block A: LoRALinear.__init__ is not implemented yet")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) -> (..., out_features). Two thin matmuls; never form B @ A here.

        For mypy --strict, calling a module (self.base(x), self.dropout(x)) gives Any, and so
        does any expression built from it: give both their type before you use them
        (dropped: torch.Tensor = self.dropout(x); base_out: torch.Tensor = self.base(x)), or
        `return ...` is "Returning Any". F.linear is typed: it returns a Tensor.
        """
        raise NotImplementedError("Block A: LoRALinear.forward is not implemented yet")

    def merge_(self) -> None:
        """Block D. Fold the adapter into the base weight, in place and outside autograd:

            base.weight += scaling * (lora_B @ lora_A)      # (out, r) @ (r, in) = (out, in)

        then zero lora_A and lora_B. Afterwards forward(x) equals the forward before the merge up
        to float rounding: the largest difference is below 1e-5 * max(1, largest |output|) (the
        lab's Block D has the rule). Every parameter keeps its requires_grad flag, it works with
        freeze_base=False, and re-initializing lora_A later must not break anything.
        """
        raise NotImplementedError("Block D: LoRALinear.merge_ is not implemented yet")


# ----------------------------------------------------------------------------- Block B
def wrap_minigpt_with_lora(
    model: nn.Module,
    r: int = 8,
    alpha: float = 16.0,
    target_modules: Iterable[str] = DEFAULT_TARGETS,
    dropout: float = 0.05,
) -> nn.Module:
    """Put a LoRALinear around every target nn.Linear of model, in place; return model itself.

    A module is a target when its dotted name (from model.named_modules()) equals a target or
    ends with "." + target: "fc1" matches "blocks.0.mlp.fc1" but not "blocks.0.mlp.xfc1".
    Afterwards exactly the lora_A / lora_B parameters are trainable; everything else
    (embeddings, norms, lm_head, the wrapped bases) has requires_grad=False.

    Raises ValueError if no nn.Linear matches, if model already contains a LoRALinear, or if r,
    alpha or dropout is one that LoRALinear rejects (checked before model is changed).
    """
    raise NotImplementedError("Block B: wrap_minigpt_with_lora is not implemented yet")


# ----------------------------------------------------------------------------- Block C
def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter alone, ready for torch.save.

    Returns {name: tensor} for exactly the lora_A / lora_B parameters, keyed by their names in
    model.named_parameters() (e.g. "blocks.0.attn.q_proj.lora_A"); if your LoRALinear keeps its
    scale as a one-element buffer, that buffer may be saved too (one per layer, by its full name).
    The tensors are detached copies: training the model afterwards must not change them.
    """
    raise NotImplementedError("Block C: lora_state_dict is not implemented yet")


def load_lora_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy an adapter (as returned by lora_state_dict) into model's lora_A / lora_B, in place.

    Strict: raises ValueError naming every missing key, every unexpected key, every value that
    is not a tensor and every shape mismatch (no broadcasting). Validate everything first: when
    it raises, the model must be exactly as it was. requires_grad flags are left as they are.
    """
    raise NotImplementedError("Block C: load_lora_state_dict is not implemented yet")


# ----------------------------------------------------------------------------- Block E
# Block E is from scratch: these two functions, and any helper they call, use NumPy only, with
# no torch and no autograd (the grader checks it on the source). It uses the math layout
# y = x @ W, the transpose of blocks A-D:
#     x (N, d_in), y (N, d_out), w_base (d_in, d_out), a (d_in, r), b (r, d_out)
def lora_regression_grads(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    w_base: NDArray[np.float64],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Return (loss, grad_a, grad_b) of the LoRA regression, by hand (no autograd).

        W      = w_base + a @ b                      (d_in, d_out)
        loss   = sum((x @ W - y) ** 2) / N           a sum over outputs, divided by N only
        G      = (2 / N) * x.T @ (x @ W - y)         (d_in, d_out), d loss / d W
        grad_a = G @ b.T                             (d_in, r)
        grad_b = a.T @ G                             (r, d_out)

    Careful: this loss is d_out times the element-wise mean of the squared error. The 2 / N
    in G is the gradient of this loss, not of the mean; the algorithm is what is graded.
    """
    raise NotImplementedError("Block E: lora_regression_grads is not implemented yet")


def train_lora_regression(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    w_base: NDArray[np.float64],
    a0: NDArray[np.float64],
    b0: NDArray[np.float64],
    lr: float,
    n_steps: int,
) -> NDArray[np.float64]:
    """Run n_steps of plain gradient descent on (a, b) with w_base frozen.

    Each step computes both gradients from the same (a, b), then updates both:
        a, b = a - lr * grad_a, b - lr * grad_b
    Returns np.concatenate([a.ravel(), b.ravel()]) (C order) as float64, shape
    (d_in * r + r * d_out,). n_steps=0 returns the initial values; lr=0 leaves them unchanged.
    Never modifies its input arrays. Raises ValueError on inconsistent shapes or n_steps < 0.
    """
    raise NotImplementedError("Block E: train_lora_regression is not implemented yet")

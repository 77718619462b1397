"""LoRA in numbers: what an adapter saves on MiniGPT, and what its forward pass costs.

    python -m labkit.bench             measure (about 2 minutes here), print the tables, write
                                       build/bench/lora.json and build/bench/lora-bench.png
    python -m labkit.bench --publish   the same, then put them on the site (docs/benchmarks/)
    python -m labkit.bench --quick     a smoke run of a few seconds (lab size, two ranks)

Measured with the reference solution (or --candidate PATH, a lora.py with the lab's API):

- per MiniGPT size, for full fine-tuning and r in RANKS: trainable parameters and AdamW's state,
  counted from the objects (the optimizer's own state tensors after a step), and the time of one
  training step (forward, backward, optimizer step), each LoRA step divided by the full step of the
  same round;
- per layer width: the inference forward of a LoRALinear, unmerged and after merge_, divided by the
  forward of its base nn.Linear in the same round.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from labkit.bench import page as benchpage
from labkit.bench.timing import Stat, interleaved, machine, ratios
from labkit.core.overlay import REFERENCE, WORKBOOK_ROOT, import_file
from minituner.model import MiniGPT, MiniGPTConfig

SEED = 0
RANKS = (1, 2, 4, 8, 16, 32)
#: wrap_minigpt_with_lora's default dropout, measured at one rank beside the dropout-free variants.
DEFAULT_DROPOUT = 0.05
DROPOUT_RANK = 8
BATCH = 8  # sequences per training step, each block_size tokens long
LAYER_TOKENS = 1024  # rows of x in the single-layer forward: 8 sequences of 128 tokens
BUILD_DIR = WORKBOOK_ROOT / "build" / "bench"


Variant = tuple[int | None, float]  # (rank or None for full fine-tuning, LoRA dropout)


@dataclass(frozen=True)
class Plan:
    """What one run measures, and how many times."""

    sizes: dict[str, MiniGPTConfig]
    ranks: tuple[int, ...]
    widths: tuple[int, ...]
    rounds: int
    warmup: int


FULL_PLAN = Plan(
    sizes={
        "lab": MiniGPTConfig(),  # the configuration of the lab and its tests
        "small": MiniGPTConfig(n_layer=4, n_head=4, n_embd=256, block_size=64),
        "medium": MiniGPTConfig(n_layer=4, n_head=8, n_embd=512, block_size=64),
    },
    ranks=RANKS,
    widths=(512, 1024, 2048, 4096),
    rounds=12,
    warmup=2,
)
QUICK_PLAN = Plan(sizes={"lab": MiniGPTConfig()}, ranks=(1, 8), widths=(64,), rounds=3, warmup=1)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor the optimizer keeps between steps (AdamW: exp_avg, exp_avg_sq, step)."""
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )


def _training_step(
    config: MiniGPTConfig, variant: Variant, lora: ModuleType
) -> tuple[Callable[[], None], dict[str, int]]:
    """A ready-to-time training step for full fine-tuning (r None) or LoRA at rank r, and its counts."""
    torch.manual_seed(SEED)  # every variant starts from the same MiniGPT and sees the same batch
    model = MiniGPT(config)
    data = torch.randint(config.vocab_size, (BATCH, config.block_size + 1))  # drawn before any adapter
    idx, targets = data[:, :-1], data[:, 1:]
    r, dropout = variant
    if r is not None:
        lora.wrap_minigpt_with_lora(model, r=r, dropout=dropout)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(idx, targets)
        assert loss is not None
        loss.backward()
        optimizer.step()

    step()  # AdamW creates its state at the first step: count it from the objects after one
    counts = {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in trainable),
        "optimizer_bytes": optimizer_state_bytes(optimizer),
    }
    return step, counts


def _variants(plan: Plan) -> list[Variant]:
    """Full fine-tuning, every rank without dropout (like for like: the MiniGPT has none), then the
    wrapping's default dropout at one rank, to show what the adapter's dropout costs."""
    return [(None, 0.0), *((r, 0.0) for r in plan.ranks), (DROPOUT_RANK, DEFAULT_DROPOUT)]


def _name(variant: Variant) -> str:
    r, dropout = variant
    return "full" if r is None else f"r={r}, dropout={dropout:g}"


def measure_model(name: str, config: MiniGPTConfig, plan: Plan, lora: ModuleType) -> dict[str, Any]:
    """Counts and step times of full fine-tuning and of LoRA at every rank, timed side by side."""
    steps: dict[str, Callable[[], None]] = {}
    counts: dict[str, dict[str, int]] = {}
    for variant in _variants(plan):
        steps[_name(variant)], counts[_name(variant)] = _training_step(config, variant, lora)
    samples = interleaved(steps, rounds=plan.rounds, warmup=plan.warmup)
    full = counts["full"]
    variants = []
    for variant in _variants(plan):
        v = _name(variant)
        variants.append({
            "r": variant[0],
            "dropout": variant[1],
            **counts[v],
            "trainable_fraction": counts[v]["trainable"] / full["total"],
            "optimizer_fraction": counts[v]["optimizer_bytes"] / full["optimizer_bytes"],
            "step_s": Stat.of(samples[v]).to_json(),
            "step_ratio": Stat.of(ratios(samples[v], samples["full"])).to_json(),
        })  # fmt: skip
    return {
        "name": name,
        "config": dataclasses.asdict(config),
        "tokens_per_step": BATCH * config.block_size,
        "variants": variants,
    }


def measure_layer(width: int, plan: Plan, lora: ModuleType) -> dict[str, Any]:
    """Inference forward of LoRALinear(nn.Linear(width, width)), unmerged and merged, against the base."""
    torch.manual_seed(SEED)
    base = nn.Linear(width, width)
    x = torch.randn(LAYER_TOKENS, width)
    candidates: dict[str, Callable[[], object]] = {"linear": functools.partial(base, x)}
    for r in plan.ranks:
        unmerged = lora.LoRALinear(copy.deepcopy(base), r=r)
        with torch.no_grad():
            unmerged.lora_B.normal_(0.0, 0.02)  # a trained adapter is not zero
        merged = copy.deepcopy(unmerged)
        merged.merge_()
        for layer in (unmerged, merged):
            layer.eval()
        candidates[f"unmerged r={r}"] = functools.partial(unmerged, x)
        candidates[f"merged r={r}"] = functools.partial(merged, x)
    with torch.inference_mode():
        base(x)
        probe = interleaved({"linear": candidates["linear"]}, rounds=3, warmup=1)["linear"]
        inner = max(1, round(0.02 / min(probe)))  # samples of at least ~20 ms: timer noise stays small
        samples = interleaved(candidates, rounds=plan.rounds, warmup=plan.warmup, inner=inner)
    ranks = []
    for r in plan.ranks:
        ranks.append({
            "r": r,
            "extra_flops": r * 2 * width / (width * width),  # r (in + out) against in * out
            "unmerged_ratio": Stat.of(ratios(samples[f"unmerged r={r}"], samples["linear"])).to_json(),
            "merged_ratio": Stat.of(ratios(samples[f"merged r={r}"], samples["linear"])).to_json(),
        })  # fmt: skip
    return {"width": width, "tokens": LAYER_TOKENS, "linear_s": Stat.of(samples["linear"]).to_json(), "ranks": ranks}


def run(plan: Plan, candidate: Path = REFERENCE, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every measurement of plan, as the JSON-ready results the page and the plot are made from."""
    lora = import_file(candidate, "labkit_bench_lora")
    models = []
    for name, config in plan.sizes.items():
        log(f"training steps: {name} (n_embd={config.n_embd}, n_layer={config.n_layer})")
        models.append(measure_model(name, config, plan, lora))
    layers = []
    for width in plan.widths:
        log(f"single layer: nn.Linear({width}, {width})")
        layers.append(measure_layer(width, plan, lora))
    return {
        "machine": machine(),
        "candidate": (str(candidate.resolve().relative_to(WORKBOOK_ROOT))
                      if candidate.resolve().is_relative_to(WORKBOOK_ROOT) else str(candidate)),
        "settings": {"rounds": plan.rounds, "warmup": plan.warmup, "batch": BATCH, "seed": SEED},
        "models": models,
        "layers": layers,
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: lab size, two ranks")
    parser.add_argument("--publish", action="store_true", help=f"also update the site ({benchpage.PAGE_DIR.relative_to(WORKBOOK_ROOT)})")
    parser.add_argument("--candidate", type=Path, default=REFERENCE, help="the lora.py to measure (default: the reference)")
    parser.add_argument("--out", type=Path, default=BUILD_DIR, help="where the JSON and the plot go")
    args = parser.parse_args(argv)
    if args.publish and (args.quick or args.candidate.resolve() != REFERENCE):
        parser.error("--publish takes the full run of the reference (no --quick, no --candidate)")
    results = run(QUICK_PLAN if args.quick else FULL_PLAN, args.candidate, log=lambda line: print(line, file=sys.stderr))
    print(benchpage.render_lora_tables(results, "en"))
    print(f"wrote {' and '.join(map(str, benchpage.write_lora(results, args.out)))}")
    if args.publish:
        for path in benchpage.publish_lora(results):
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The measured figures on the site: generated blocks in hand-written pages, in both languages.

The benchmark page (docs/benchmarks/index.md and its Spanish twin) and the parameter-count theory
page carry blocks between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``; the
prose around them is written by hand. The blocks are rendered from the committed results
(docs/benchmarks/lora.json from labkit.bench, workbook.json from labkit.bench.speed), so the pages say
exactly what the last published run measured. Both languages are regenerated together; a Spanish
page that was in step with its English page before stays recorded as in step after. The plot
(docs/benchmarks/lora-bench.png) is drawn here too, from the same results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labkit.bench.timing import Stat
from labkit.content.site import (
    HASH_KEY,
    split_front_matter,
    text_hash,
    with_translation_hash,
)
from labkit.core.overlay import WORKBOOK_ROOT

PAGE_DIR = WORKBOOK_ROOT / "docs" / "benchmarks"
RESULTS_NAME = "lora.json"
PLOT_NAME = "lora-bench.png"  # one language-neutral image: both pages show the same file
LORA_RESULTS = PAGE_DIR / RESULTS_NAME
WORKBOOK_RESULTS = PAGE_DIR / "workbook.json"
#: English page -> the blocks it carries (its Spanish twin carries the same ones).
PAGES = {
    PAGE_DIR / "index.md": ("lora-machine", "lora-summary", "lora-models", "lora-layers", "workbook"),
    WORKBOOK_ROOT / "docs" / "theory" / "02-parameter-count.md": ("merged-cost",),
}
#: The model and layer the summary quotes: the largest MiniGPT and the narrowest layer >= 512 (the
#: widest there is, in a quick run), at r = 8.
SUMMARY_RANK = 8
SUMMARY_WIDTH = 512

_BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)", re.S)

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "machine": "Measured on {cpu} ({cpus} CPUs, torch {torch} with {torch_threads} threads, Python {python}, {system}) "
                   "on {date}; {rounds} timed rounds after {warmup} untimed warm-up round(s), batch of {batch} sequences.",
        "summary_head": "| figure | value |\n|---|---|\n",
        "step": "training step, LoRA r = {r} / full fine-tuning ({model}, n_embd = {n_embd})",
        "step_dropout": "the same, with the wrapping's default LoRA dropout, {dropout}",
        "trainable": "trainable parameters, LoRA r = {r} / full fine-tuning ({model})",
        "optimizer": "AdamW state, LoRA r = {r} / full fine-tuning ({model})",
        "unmerged": "forward, unmerged LoRALinear / nn.Linear ({width} x {width}, r = {r})",
        "merged": "forward, merged LoRALinear / nn.Linear ({width} x {width}, r = {r})",
        "models_head": "| model | fine-tuning | trainable | of all parameters | AdamW state | step time | step / full step |\n"
                       "|---|---|---|---|---|---|---|\n",
        "full": "full",
        "layers_head": "| layer | r | extra FLOPs | unmerged / nn.Linear | merged / nn.Linear |\n|---|---|---|---|---|\n",
        "merged_head": "| layer | nn.Linear forward | unmerged / nn.Linear | merged / nn.Linear |\n|---|---|---|---|\n",
        "workbook_head": "| what | command | time | runs |\n|---|---|---|---|\n",
        "workbook_machine": "Measured on {cpu} ({cpus} CPUs) on {date}.",
        "import_torch": "a bare `import torch` (Python start included)",
        "graded_suite": "the graded tests on the reference, through the overlay ({ratio} x `import torch`)",
        "nbval": "nbval on the 10 notebooks, reference solution",
        "site": "the site's strict build (both languages)",
        "grade_one": "grading one complete submission (tests, mypy, notes)",
        "grade_examples": "grading the {count} example submissions with 1 job",
    },
    "es": {
        "machine": "Medido en {cpu} ({cpus} CPU, torch {torch} con {torch_threads} hilos, Python {python}, {system}) el "
                   "{date}; {rounds} rondas cronometradas tras {warmup} ronda(s) de calentamiento sin cronometrar, "
                   "lotes de {batch} secuencias.",
        "summary_head": "| cifra | valor |\n|---|---|\n",
        "step": "paso de entrenamiento, LoRA r = {r} / ajuste completo ({model}, n_embd = {n_embd})",
        "step_dropout": "lo mismo, con el dropout de LoRA que `wrap_minigpt_with_lora` usa por defecto, {dropout}",
        "trainable": "parámetros entrenables, LoRA r = {r} / ajuste completo ({model})",
        "optimizer": "estado de AdamW, LoRA r = {r} / ajuste completo ({model})",
        "unmerged": "pasada hacia delante, LoRALinear sin fusionar / nn.Linear ({width} x {width}, r = {r})",
        "merged": "pasada hacia delante, LoRALinear fusionado / nn.Linear ({width} x {width}, r = {r})",
        "models_head": "| modelo | ajuste | entrenables | del total de parámetros | estado de AdamW | tiempo por paso | "
                       "paso / paso completo |\n|---|---|---|---|---|---|---|\n",
        "full": "completo",
        "layers_head": "| capa | r | FLOPs extra | sin fusionar / nn.Linear | fusionado / nn.Linear |\n|---|---|---|---|---|\n",
        "merged_head": "| capa | pasada hacia delante de nn.Linear | sin fusionar / nn.Linear | fusionado / nn.Linear |\n"
                       "|---|---|---|---|\n",
        "workbook_head": "| qué | comando | tiempo | ejecuciones |\n|---|---|---|---|\n",
        "workbook_machine": "Medido en {cpu} ({cpus} CPU) el {date}.",
        "import_torch": "un `import torch` sin más (con el arranque de Python)",
        "graded_suite": "los tests evaluables con la referencia, por superposición ({ratio} x `import torch`)",
        "nbval": "nbval sobre los 10 notebooks, solución de referencia",
        "site": "la construcción estricta del sitio (los dos idiomas)",
        "grade_one": "calificar una entrega completa (tests, mypy, notas)",
        "grade_examples": "calificar las {count} entregas de ejemplo con 1 proceso",
    },
}


# ----------------------------------------------------------------------------------------------
# Formatting


def _local(number: str, lang: str) -> str:
    """Spanish writes a decimal comma, as the Spanish pages do."""
    return number.replace(".", ",") if lang == "es" else number


def count(n: int, lang: str) -> str:
    if n >= 1_000_000:
        return _local(f"{n / 1e6:.2f} M", lang)
    if n >= 10_000:
        return _local(f"{n / 1e3:.1f} k", lang)
    return str(n)


def size(n_bytes: int, lang: str) -> str:
    if n_bytes >= 1 << 20:
        return _local(f"{n_bytes / (1 << 20):.1f} MiB", lang)
    return _local(f"{n_bytes / (1 << 10):.1f} KiB", lang)


def percent(fraction: float, lang: str) -> str:
    return _local(f"{100 * fraction:.3g} %", lang)


def ratio(data: Mapping[str, float], lang: str) -> str:
    s = Stat.from_json(data)
    return _local(f"{s.median:.2f} ({s.q1:.2f}-{s.q3:.2f})", lang)


def seconds(data: Mapping[str, float], lang: str) -> str:
    s = Stat.from_json(data)
    if s.n == 1:  # a single run has no spread to show
        return _local(f"{s.median:.3g} s", lang)
    if s.median < 1.0:
        return _local(f"{1e3 * s.median:.3g} ms ({1e3 * s.q1:.3g}-{1e3 * s.q3:.3g})", lang)
    return _local(f"{s.median:.3g} s ({s.q1:.3g}-{s.q3:.3g})", lang)


# ----------------------------------------------------------------------------------------------
# Blocks


def _summary_rows(results: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(largest model, its r = SUMMARY_RANK row, the quoted layer, its r = SUMMARY_RANK row)."""
    model = max(results["models"], key=lambda m: m["config"]["n_embd"])
    variant = next(v for v in model["variants"] if v["r"] == SUMMARY_RANK and v["dropout"] == 0.0)
    wide = [la for la in results["layers"] if la["width"] >= SUMMARY_WIDTH]
    layer = min(wide, key=lambda la: la["width"]) if wide else max(results["layers"], key=lambda la: la["width"])
    row = next(r for r in layer["ranks"] if r["r"] == SUMMARY_RANK)
    return model, variant, layer, row


def main_ratios(results: Mapping[str, Any]) -> dict[str, float]:
    """The four figures the benchmark exists for (medians)."""
    _, variant, _, row = _summary_rows(results)
    return {
        "step_ratio": variant["step_ratio"]["median"],
        "unmerged_forward_ratio": row["unmerged_ratio"]["median"],
        "merged_forward_ratio": row["merged_ratio"]["median"],
        "trainable_fraction": variant["trainable_fraction"],
        "optimizer_fraction": variant["optimizer_fraction"],
    }


def _machine(results: Mapping[str, Any], lang: str) -> str:
    return _TEXT[lang]["machine"].format(**results["machine"], **results["settings"]) + "\n"


def _summary(results: Mapping[str, Any], lang: str) -> str:
    t = _TEXT[lang]
    model, variant, layer, row = _summary_rows(results)
    names = {"r": SUMMARY_RANK, "model": model["name"], "n_embd": model["config"]["n_embd"], "width": layer["width"]}
    with_dropout = [v for v in model["variants"] if v["dropout"] > 0]
    lines = [
        (t["step"], ratio(variant["step_ratio"], lang)),
        *((t["step_dropout"].replace("{dropout}", _local(f"{v['dropout']:g}", lang)), ratio(v["step_ratio"], lang))
          for v in with_dropout),
        (t["trainable"], percent(variant["trainable_fraction"], lang)),
        (t["optimizer"], percent(variant["optimizer_fraction"], lang)),
        (t["unmerged"], ratio(row["unmerged_ratio"], lang)),
        (t["merged"], ratio(row["merged_ratio"], lang)),
    ]
    return t["summary_head"] + "".join(f"| {label.format(**names)} | {value} |\n" for label, value in lines)


def _models(results: Mapping[str, Any], lang: str) -> str:
    t = _TEXT[lang]
    rows = []
    for model in results["models"]:
        c = model["config"]
        name = f"{model['name']} ({c['n_layer']} x {c['n_embd']})"
        for v in model["variants"]:
            kind = t["full"] if v["r"] is None else f"LoRA r = {v['r']}"
            if v["dropout"] > 0:
                kind += ", dropout " + _local(f"{v['dropout']:g}", lang)
            rows.append(
                f"| {name} | {kind} | {count(v['trainable'], lang)} | {percent(v['trainable_fraction'], lang)} | "
                f"{size(v['optimizer_bytes'], lang)} | {seconds(v['step_s'], lang)} | {ratio(v['step_ratio'], lang)} |\n"
            )
    return t["models_head"] + "".join(rows)


def _layers(results: Mapping[str, Any], lang: str) -> str:
    rows = [
        f"| {la['width']} x {la['width']} | {r['r']} | {percent(r['extra_flops'], lang)} | "
        f"{ratio(r['unmerged_ratio'], lang)} | {ratio(r['merged_ratio'], lang)} |\n"
        for la in results["layers"]
        for r in la["ranks"]
    ]
    return _TEXT[lang]["layers_head"] + "".join(rows)


def _merged_cost(results: Mapping[str, Any], lang: str) -> str:
    rows = []
    for la in results["layers"]:
        r = next(r for r in la["ranks"] if r["r"] == SUMMARY_RANK)
        rows.append(
            f"| {la['width']} x {la['width']}, r = {SUMMARY_RANK} | {seconds(la['linear_s'], lang)} | "
            f"{ratio(r['unmerged_ratio'], lang)} | {ratio(r['merged_ratio'], lang)} |\n"
        )
    return _TEXT[lang]["merged_head"] + "".join(rows)


def _workbook(results: Mapping[str, Any], lang: str) -> str:
    t = _TEXT[lang]
    by_id = {m["id"]: m for m in results["measurements"]}
    bare = Stat.from_json(by_id["import_torch"]["seconds"]).median
    rows = []
    for m in results["measurements"]:
        label = t[m["id"]].format(
            ratio=_local(f"{Stat.from_json(m['seconds']).median / bare:.1f}", lang), count=m.get("count", 0)
        )
        rows.append(f"| {label} | `{m['command']}` | {seconds(m['seconds'], lang)} | {m['seconds']['n']} |\n")
    return t["workbook_machine"].format(**results["machine"]) + "\n\n" + t["workbook_head"] + "".join(rows)


_RENDER: dict[str, tuple[Path, Callable[[Mapping[str, Any], str], str]]] = {
    "lora-machine": (LORA_RESULTS, _machine),
    "lora-summary": (LORA_RESULTS, _summary),
    "lora-models": (LORA_RESULTS, _models),
    "lora-layers": (LORA_RESULTS, _layers),
    "merged-cost": (LORA_RESULTS, _merged_cost),
    "workbook": (WORKBOOK_RESULTS, _workbook),
}


def render_lora_tables(results: Mapping[str, Any], lang: str) -> str:
    """The benchmark's tables, as the terminal and the page show them."""
    return "\n".join(render(name, results, lang) for name in ("lora-machine", "lora-summary", "lora-models", "lora-layers"))


def render(name: str, results: Mapping[str, Any], lang: str) -> str:
    return _RENDER[name][1](results, lang)


# ----------------------------------------------------------------------------------------------
# Plot


def write_plot(results: Mapping[str, Any], path: Path) -> None:
    """Three panels, language-neutral (the pages' captions explain them): counts, steps, layers."""
    ranks = sorted({row["r"] for layer in results["layers"] for row in layer["ranks"]})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    for model in results["models"]:
        lora_rows = [v for v in model["variants"] if v["r"] is not None and v["dropout"] == 0.0]
        rs = [v["r"] for v in lora_rows]
        label = f"{model['name']} (n_embd={model['config']['n_embd']})"
        ax_a.plot(rs, [100 * v["trainable_fraction"] for v in lora_rows], "o-", label=label)
        med = [v["step_ratio"]["median"] for v in lora_rows]
        err = [[m - v["step_ratio"]["q1"] for m, v in zip(med, lora_rows, strict=True)],
               [v["step_ratio"]["q3"] - m for m, v in zip(med, lora_rows, strict=True)]]  # fmt: skip
        line = ax_b.errorbar(rs, med, yerr=err, fmt="o-", capsize=3, label=label)
        for v in model["variants"]:
            if v["dropout"] > 0:  # the wrapping's default dropout, at one rank: a cross above the line
                ax_b.plot([v["r"]], [v["step_ratio"]["median"]], "x", ms=9, color=line.lines[0].get_color())
    for i, layer in enumerate(results["layers"]):
        rs = [row["r"] for row in layer["ranks"]]
        for key, style in (("unmerged_ratio", "o-"), ("merged_ratio", "s--")):
            kind = key.partition("_")[0]
            ax_c.plot(rs, [row[key]["median"] for row in layer["ranks"]], style, color=f"C{i}",
                      label=f"{layer['width']}, {kind}")  # fmt: skip
    ax_a.set(title="(a) trainable / total parameters (%)", yscale="log")
    ax_a.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax_b.set(title="(b) training step: LoRA / full fine-tuning (x: dropout)")
    ax_b.axhline(1.0, color="grey", lw=0.8)
    ax_c.set(title="(c) forward: LoRALinear / nn.Linear")
    ax_c.axhline(1.0, color="grey", lw=0.8)
    for ax in (ax_a, ax_b, ax_c):
        ax.set(xscale="log", xlabel="r")
        ax.set_xticks(ranks, [str(r) for r in ranks])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version stamp: diffs show data only
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# Pages


def spanish(english: Path) -> Path:
    return english.with_suffix(".es.md")


def blocks_of(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}


def fill(text: str, bodies: Mapping[str, str], page: Path) -> str:
    """text with each generated block's body replaced; every block of bodies must be present."""
    missing = sorted(set(bodies) - set(blocks_of(text)))
    if missing:
        raise ValueError(f"{page}: no generated block named {', '.join(missing)}")
    return _BLOCK.sub(lambda m: m.group(1) + bodies.get(m.group("name"), m.group("body")) + m.group(4), text)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def expected_pages(overrides: Mapping[Path, Any] | None = None) -> dict[Path, str]:
    """Every page that carries generated blocks, as it should read with the committed results."""
    data = {path: _load(path) for path in (LORA_RESULTS, WORKBOOK_RESULTS) if path.exists()}
    data.update(overrides or {})
    pages: dict[Path, str] = {}
    for english, names in PAGES.items():
        old_en = english.read_text(encoding="utf-8")
        for lang, page in (("en", english), ("es", spanish(english))):
            bodies = {n: render(n, data[_RENDER[n][0]], lang) for n in names if _RENDER[n][0] in data}
            pages[page] = fill(page.read_text(encoding="utf-8"), bodies, page)
        # The Spanish page stays recorded as in step if it was: only the generated figures changed.
        es = spanish(english)
        meta, _ = split_front_matter(es.read_text(encoding="utf-8"))
        if meta.get(HASH_KEY) == text_hash(old_en.encode("utf-8")):
            pages[es] = with_translation_hash(pages[es], text_hash(pages[english].encode("utf-8")))
    return pages


def stale_pages() -> list[str]:
    """Pages whose generated blocks differ from the committed results (empty when all are current)."""
    return [
        f"{page.relative_to(WORKBOOK_ROOT)} is not generated from the committed results: run python -m labkit.bench.page"
        for page, text in expected_pages().items()
        if page.read_text(encoding="utf-8") != text
    ]


def _write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def write_lora(results: Mapping[str, Any], directory: Path) -> list[Path]:
    """labkit.bench's results and their plot, into directory (build/bench, or the site's)."""
    plot = directory / PLOT_NAME
    write_plot(results, plot)
    return [_write_json(directory / RESULTS_NAME, results), plot]


def _update_pages() -> list[Path]:
    """Rewrite every page whose generated blocks differ from the results on disk."""
    written = []
    for page, text in expected_pages().items():
        if page.read_text(encoding="utf-8") != text:
            page.write_text(text, encoding="utf-8")
            written.append(page)
    return written


def publish_lora(results: Mapping[str, Any]) -> list[Path]:
    """Commit-ready: the results, the plot and every page block that shows them."""
    return [*write_lora(results, PAGE_DIR), *_update_pages()]


def publish_workbook(results: Mapping[str, Any]) -> list[Path]:
    return [_write_json(WORKBOOK_RESULTS, results), *_update_pages()]


def main() -> int:
    """Re-render the plot and the pages from the committed results (after editing the prose around
    the blocks, or the plot's code)."""
    write_plot(_load(LORA_RESULTS), PAGE_DIR / PLOT_NAME)
    for page in _update_pages():
        print(f"updated {page.relative_to(WORKBOOK_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

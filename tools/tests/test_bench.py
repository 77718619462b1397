"""The benchmarks: their counts are right, their page says what the committed results say, in both
languages, and the documented unwrapping of a merged model works.

Timings are not asserted (this machine is shared): a benchmark prints figures, tests check the
counting, the bookkeeping and the publishing.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from labkit.bench import lora as bench
from labkit.bench import page as benchpage
from labkit.bench.timing import Stat, interleaved, ratios
from labkit.content import site
from labkit.core.overlay import REFERENCE, WORKBOOK_ROOT, import_file
from torch import nn

from minituner.model import MiniGPT, MiniGPTConfig

LAB_TOTAL = 118528  # the lab MiniGPT's parameters (theory/02-parameter-count)


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return import_file(REFERENCE, "reference_lora")


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    return bench.run(bench.QUICK_PLAN, log=lambda line: None)


def _adamw_bytes(params: list[nn.Parameter]) -> int:
    """exp_avg and exp_avg_sq like each parameter, plus a float32 step counter per tensor."""
    return sum(2 * p.numel() * p.element_size() + 4 for p in params)


# ----------------------------------------------------------------------------- timing
def test_stat_is_median_and_quartiles() -> None:
    s = Stat.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.q1, s.q3, s.n) == (3.0, 2.0, 4.0, 5)
    assert Stat.from_json(s.to_json()) == s
    with pytest.raises(ValueError, match="samples"):
        Stat.of([])


def test_interleaved_rounds_rotate_and_ratios_pair_rounds() -> None:
    order: list[str] = []
    samples = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3, warmup=1)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up round first, then rotating
    assert [len(v) for v in samples.values()] == [3, 3]
    assert ratios([2.0, 6.0], [1.0, 3.0]) == [2.0, 2.0]
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="rounds"):
        interleaved({"a": lambda: None}, rounds=0)


# ----------------------------------------------------------------------------- counting
def test_optimizer_state_is_counted_from_adamw_objects() -> None:
    layer = nn.Linear(8, 4)
    optimizer = torch.optim.AdamW(layer.parameters())
    assert bench.optimizer_state_bytes(optimizer) == 0  # AdamW creates its state lazily
    layer(torch.randn(2, 8)).sum().backward()
    optimizer.step()
    assert bench.optimizer_state_bytes(optimizer) == _adamw_bytes(list(layer.parameters()))


def test_quick_run_counts_match_the_theory(quick: dict[str, Any], reference: ModuleType) -> None:
    (model,) = quick["models"]
    by_r = {v["r"]: v for v in model["variants"] if v["dropout"] == 0.0}
    assert [(v["r"], v["dropout"]) for v in model["variants"]] == [
        (None, 0.0), *((r, 0.0) for r in bench.QUICK_PLAN.ranks), (bench.DROPOUT_RANK, bench.DEFAULT_DROPOUT)
    ]
    assert by_r[None]["total"] == by_r[None]["trainable"] == LAB_TOTAL
    assert by_r[None]["optimizer_bytes"] == _adamw_bytes(list(MiniGPT(MiniGPTConfig()).parameters()))
    for r in bench.QUICK_PLAN.ranks:
        wrapped = reference.wrap_minigpt_with_lora(MiniGPT(MiniGPTConfig()), r=r)
        trainable = [p for p in wrapped.parameters() if p.requires_grad]
        assert by_r[r]["trainable"] == 2304 * r == sum(p.numel() for p in trainable)
        assert by_r[r]["optimizer_bytes"] == _adamw_bytes(trainable)
        assert by_r[r]["trainable_fraction"] == pytest.approx(2304 * r / LAB_TOTAL)
    for v in model["variants"]:
        for key in ("step_s", "step_ratio"):
            s = Stat.from_json(v[key])
            assert 0 < s.q1 <= s.median <= s.q3 and s.n == bench.QUICK_PLAN.rounds, (v["r"], key, s)
    assert by_r[None]["step_ratio"]["median"] == 1.0  # full over itself, round by round
    (layer,) = quick["layers"]
    for row in layer["ranks"]:
        assert row["extra_flops"] == row["r"] * 2 / layer["width"]
        assert Stat.from_json(row["unmerged_ratio"]).median > 0 and Stat.from_json(row["merged_ratio"]).median > 0


def test_quick_run_tables_and_plot(quick: dict[str, Any], tmp_path: Path) -> None:
    for lang in ("en", "es"):
        tables = benchpage.render_lora_tables(quick, lang)
        rows = [line for line in tables.splitlines() if line.startswith("| lab (2 x 64) |")]
        assert len(rows) == 1 + len(bench.QUICK_PLAN.ranks) + 1, tables  # full, each rank, with dropout
        total = "118,5 k" if lang == "es" else "118.5 k"
        assert "2304" in tables and total in tables, tables
    data, plot = benchpage.write_lora(quick, tmp_path)
    assert json.loads(data.read_text(encoding="utf-8")) == json.loads(json.dumps(quick))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_runs_a_student_file_and_refuses_to_publish_it(tmp_path: Path) -> None:
    stubs = WORKBOOK_ROOT / "src" / "minituner" / "lora.py"
    command = [sys.executable, "-m", "labkit.bench", "--quick", "--candidate", str(stubs), "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=WORKBOOK_ROOT)
    assert result.returncode != 0 and "Block B" in result.stderr  # the stubs' own NotImplementedError
    result = subprocess.run([*command, "--publish"], capture_output=True, text=True, cwd=WORKBOOK_ROOT)
    assert result.returncode == 2 and "--publish takes the full run of the reference" in result.stderr


# ----------------------------------------------------------------------------- the page
def _committed() -> dict[str, Any]:
    return json.loads(benchpage.LORA_RESULTS.read_text(encoding="utf-8"))


def test_published_results_cover_what_the_benchmark_promises() -> None:
    results = _committed()
    widths = [m["config"]["n_embd"] for m in results["models"]]
    assert MiniGPTConfig().n_embd in widths and max(widths) >= 512, widths
    for model in results["models"]:
        assert [v["r"] for v in model["variants"]] == [None, *bench.RANKS, bench.DROPOUT_RANK]
    assert any(layer["width"] >= 512 for layer in results["layers"])
    assert results["candidate"] == "solutions/lora.py"
    assert results["settings"]["rounds"] == bench.FULL_PLAN.rounds
    assert set(benchpage.main_ratios(results)) == {
        "step_ratio", "unmerged_forward_ratio", "merged_forward_ratio", "trainable_fraction", "optimizer_fraction",
    }  # fmt: skip
    workbook = json.loads(benchpage.WORKBOOK_RESULTS.read_text(encoding="utf-8"))
    assert [m["id"] for m in workbook["measurements"]] == [
        "import_torch", "graded_suite", "nbval", "site", "grade_one", "grade_examples",
    ]  # fmt: skip


def test_pages_show_the_committed_results() -> None:
    assert benchpage.stale_pages() == []
    for english, names in benchpage.PAGES.items():
        for page in (english, benchpage.spanish(english)):
            blocks = benchpage.blocks_of(page.read_text(encoding="utf-8"))
            assert sorted(blocks) == sorted(names), page
            assert all(body.strip() for body in blocks.values()), f"{page}: an empty generated block"


def test_plot_is_one_image_for_both_languages() -> None:
    page = benchpage.PAGE_DIR / "index.md"
    images = site.markdown_structure(page.read_text(encoding="utf-8")).images
    es_images = site.markdown_structure(benchpage.spanish(page).read_text(encoding="utf-8")).images
    assert images == es_images == [benchpage.PLOT_NAME]
    assert (benchpage.PAGE_DIR / benchpage.PLOT_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_new_results_change_the_pages_and_keep_the_translation_in_step() -> None:
    results = copy.deepcopy(_committed())
    results["machine"]["cpu"] = "a different CPU"
    results["models"][-1]["variants"][4]["step_ratio"]["median"] = 0.123456
    pages = benchpage.expected_pages({benchpage.LORA_RESULTS: results})
    english = benchpage.PAGE_DIR / "index.md"
    spanish = benchpage.spanish(english)
    assert "a different CPU" in pages[english] and "a different CPU" in pages[spanish]
    assert "0.12 (" in pages[english] and "0,12 (" in pages[spanish]
    assert pages[english] != english.read_text(encoding="utf-8")
    meta, _ = site.split_front_matter(pages[spanish])
    assert meta[site.HASH_KEY] == site.text_hash(pages[english].encode("utf-8"))


def test_a_missing_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="no generated block named lora-summary"):
        benchpage.fill("# a page\n", {"lora-summary": "x\n"}, Path("page.md"))


# ----------------------------------------------------------------------------- the extension
def _write_up_function(name: str) -> str:
    text = (WORKBOOK_ROOT / "solutions" / "00-lora-by-hand-ref.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (block,) = [b for b in blocks if f"def {name}(" in b]
    return block


def test_unwrap_extension_of_the_write_up_gives_a_plain_minigpt(
    reference: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "minituner.lora", reference)  # the write-up imports the lab's API
    namespace: dict[str, Any] = {}
    exec(_write_up_function("unwrap_merged"), namespace)
    torch.manual_seed(0)
    model = reference.wrap_minigpt_with_lora(MiniGPT(MiniGPTConfig()), r=4).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, reference.LoRALinear):
                module.lora_B.normal_(0.0, 0.02)
    idx = torch.randint(128, (2, 16))
    before, _ = model(idx)
    unwrapped = namespace["unwrap_merged"](model)
    after, _ = unwrapped(idx)
    assert not any(isinstance(m, reference.LoRALinear) for m in unwrapped.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    fresh = MiniGPT(MiniGPTConfig())
    fresh.load_state_dict(unwrapped.state_dict())  # strict: the original key names
    torch.testing.assert_close(fresh.eval()(idx)[0], after, atol=0, rtol=0)


# ----------------------------------------------------------------------------- the workbook's speed
def test_speed_suite_prints_the_suite_against_import_torch() -> None:
    command = [sys.executable, "-m", "labkit.bench.speed", "suite", "--repeat", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=WORKBOOK_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"graded_suite +median +\d+\.\d+ s", result.stdout), result.stdout
    assert re.search(r"graded suite / import torch: \d+\.\d", result.stdout), result.stdout
    refused = subprocess.run([*command, "--publish"], capture_output=True, text=True, cwd=WORKBOOK_ROOT)
    assert refused.returncode == 2 and "--publish needs 'all'" in refused.stderr

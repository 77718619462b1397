"""The bilingual site: strict build, parity and drift of the sources, and a real browser on the result.

The browser is Debian's chromium (/usr/bin/chromium, installed by .ci/run), driven by playwright;
every request to a host other than 127.0.0.1 is recorded and refused.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from labkit.content import site

ROOT = site.ROOT
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    print(f"mkdocs build --strict: {time.perf_counter() - start:.1f} s")
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def _pages(site_dir: Path) -> list[Path]:
    return sorted(site_dir.rglob("*.html"))


def test_every_page_is_built_in_both_languages(built_site: Path) -> None:
    english = {p.relative_to(built_site) for p in _pages(built_site) if p.parts[len(built_site.parts)] != "es"}
    spanish = {p.relative_to(built_site / "es") for p in _pages(built_site / "es")}
    english.discard(Path("404.html"))
    assert english == spanish, f"only English: {english - spanish}; only Spanish: {spanish - english}"
    names = ["lab/00-lora-by-hand", "theory/02-parameter-count", "solutions/00-lora-by-hand-ref", "design/BLUEPRINT"]
    for name in names:
        assert Path(name, "index.html") in english


def test_blueprint_page_in_both_languages(built_site: Path) -> None:
    """src/minituner/BLUEPRINT.md and its twin are pages, with working links both ways."""
    for lang, title in [("", "minituner: the blueprint"), ("es/", "minituner: diseño del paquete")]:
        html = (built_site / lang / "design" / "BLUEPRINT" / "index.html").read_text(encoding="utf-8")
        assert f'<html lang="{lang.rstrip("/") or "en"}"' in html
        assert f">{title}<" in html, f"{lang}design/BLUEPRINT: the title {title!r} is not on the page"
        assert "translation_of" not in html, "the front matter is shown as text"
        # Its repository links (../../labs/..., ../../docs/theory/...) point at the site's pages.
        for target in ["../../lab/00-lora-by-hand/", "../../theory/03-init-and-scaling/"]:
            assert f'href="{target}"' in html, f"{lang}design/BLUEPRINT: no link to {target}"
        # Pages that link to src/minituner/BLUEPRINT.md in the repository link to it on the site.
        for page, target in [("lab/00-lora-by-hand", "../../design/BLUEPRINT/"),
                             ("instructors", "../design/BLUEPRINT/")]:
            linking = (built_site / lang / page / "index.html").read_text(encoding="utf-8")
            assert f'href="{target}"' in linking, f"{lang}{page}: no link to the BLUEPRINT page"


def test_blueprint_pair_is_checked_and_staged(tmp_path: Path) -> None:
    """The BLUEPRINT.md pair is a page pair of the parity and drift check; lora.py is no page."""
    pairs, orphans = site.pairs_and_orphans()
    package = ROOT / "src" / "minituner"
    assert site.Pair(package / "BLUEPRINT.md", package / "BLUEPRINT.es.md") in pairs, orphans
    assert not [p for p in site.site_sources() if p.suffix == ".py"]
    blueprint = site.Pair(package / "BLUEPRINT.md", package / "BLUEPRINT.es.md")
    # The Spanish twin is present, in step with the English page, and translates its current text.
    assert site.parity_problems(blueprint) == [] and site.drift_problems(blueprint) == []

    for tree in site.STAGED:
        (tmp_path / tree).mkdir(parents=True)
    source = tmp_path / "src" / "minituner"
    english = source / "BLUEPRINT.md"
    english.write_text(
        "# Blueprint\n\nSee [the lab](../../labs/00-lora-by-hand.md#block-a) and "
        "[the theory](../../docs/theory/03-init-and-scaling.md).\n",
        encoding="utf-8",
    )
    (source / "lora.py").write_text("x = 1\n", encoding="utf-8")
    assert site.site_problems(tmp_path) == ["src/minituner/BLUEPRINT.md: no Spanish twin (BLUEPRINT.es.md)"]
    spanish = source / "BLUEPRINT.es.md"
    spanish.write_text(
        "# Diseño\n\nVer [el laboratorio](../../labs/00-lora-by-hand.md#block-a) y "
        "[la teoría](../../docs/theory/03-init-and-scaling.md).\n",
        encoding="utf-8",
    )
    site.record_translation(english)
    assert site.site_problems(tmp_path) == []
    english.write_text(english.read_text(encoding="utf-8") + "\nOne more sentence.\n", encoding="utf-8")
    problems = site.site_problems(tmp_path)
    assert len(problems) == 1 and "src/minituner/BLUEPRINT.md changed since" in problems[0], problems

    site.stage_external_pages(tmp_path)
    staged = tmp_path / "docs" / "design"
    assert sorted(p.name for p in staged.iterdir()) == ["BLUEPRINT.es.md", "BLUEPRINT.md"]
    text = (staged / "BLUEPRINT.md").read_text(encoding="utf-8")
    assert "](../lab/00-lora-by-hand.md#block-a)" in text and "](../theory/03-init-and-scaling.md)" in text
    assert site.site_problems(tmp_path) == problems, "the staged copies must not count as pages"


def test_site_links_for_pages_in_docs() -> None:
    """A page in docs/ may link to a staged page by its repository path; the site gets the copy."""
    text = "[a](../../src/minituner/BLUEPRINT.md#x) [b](../benchmarks/index.md) [c](../../tests/t.py) [d](#y)"
    assert site.site_links(text, "docs/instructors", "docs/instructors") == (
        "[a](../design/BLUEPRINT.md#x) [b](../benchmarks/index.md) [c](../../tests/t.py) [d](#y)"
    )


def test_links_read_right_in_the_repository(tmp_path: Path) -> None:
    """A Spanish page links the Spanish twins, and every page links pages where the repository has them."""
    for tree in ("docs", "labs"):
        (tmp_path / tree).mkdir()
    docs = tmp_path / "docs"
    for name, text in [("a.md", "# A\n\n[b](b.md#x) [lab](../labs/l.md)\n"), ("b.md", "# B\n"),
                       ("b.es.md", "# B\n"), ("../labs/l.md", "# L\n"), ("../labs/l.es.md", "# L\n")]:
        (docs / name).write_text(text, encoding="utf-8")
    spanish = docs / "a.es.md"
    spanish.write_text("# A\n\n[b](b.es.md#x) [laboratorio](../labs/l.es.md)\n", encoding="utf-8")
    for english in [docs / "a.md", docs / "b.md", tmp_path / "labs" / "l.md"]:
        site.record_translation(english)
    assert site.site_problems(tmp_path) == [], "the twins' links are the same links for the parity check"

    spanish.write_text(spanish.read_text(encoding="utf-8").replace("b.es.md#x", "b.md#x"), encoding="utf-8")
    problems = site.site_problems(tmp_path)
    assert problems == ["docs/a.es.md: the link b.md#x does not lead to the right page in the repository; "
                        "link b.es.md#x"], problems
    (docs / "a.md").write_text("# A\n\n[b](b.md#x) [lab](lab/l.md)\n", encoding="utf-8")
    assert any("the link lab/l.md" in p and "link ../labs/l.md" in p for p in site.site_problems(tmp_path))
    assert site.english_target("../labs/l.es.md#top") == "../labs/l.md#top"
    assert site.english_target("block_a.es.ipynb") == "block_a.ipynb"


def test_spanish_pages_link_spanish_pages_on_the_site(built_site: Path) -> None:
    """Links written for the repository (x.es.md, ../labs/x.es.ipynb) lead to the Spanish pages."""
    for page, targets in [("", ['href="lab/00-lora-by-hand/"', 'href="lab/block_a_identity/"',
                                     'href="theory/02-parameter-count/"']),
                          ("lab/00-lora-by-hand", ['href="../block_a_identity/"', 'href="../../theory/03-init-and-scaling/"',
                                                   'href="../../design/BLUEPRINT/"'])]:
        for lang in ("", "es/"):
            html = (built_site / lang / page / "index.html").read_text(encoding="utf-8")
            for target in targets:
                assert target in html, f"{lang}{page}: no {target}"
            twins = [href for href in re.findall(r'href="([^"]*)"', html) if ".es.md" in href or ".es/" in href]
            assert not twins, f"{lang}{page}: links to a twin's file name: {twins}"


def test_notebook_pages_are_rendered_not_raw_json(built_site: Path) -> None:
    notebooks = sorted((ROOT / "labs").glob("*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        name = notebook.name.removesuffix(".ipynb")
        lang = "es/" if name.endswith(".es") else ""
        page = built_site / lang / "lab" / name.removesuffix(".es") / "index.html"
        html = page.read_text(encoding="utf-8")
        assert html.count('class="jp-Cell') >= 3, f"{page}: no rendered notebook cells"
        assert '"cell_type"' not in html, f"{page}: raw notebook JSON in the page"
        assert "Load mathjax" not in html and "cdnjs" not in html, f"{page}: nbconvert's CDN scripts left in"


_EXTERNAL_ASSET = re.compile(
    r"<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc=\"(?:https?:)?//"
    r"|<link\b[^>]*\bhref=\"(?:https?:)?//"
    r"|url\(\s*['\"]?(?:https?:)?//"
    r"|@import\s+['\"]?(?:https?:)?//",
    re.I,
)


def test_no_page_or_stylesheet_loads_from_another_host(built_site: Path) -> None:
    offenders = []
    for path in [*_pages(built_site), *built_site.rglob("*.css")]:
        match = _EXTERNAL_ASSET.search(path.read_text(encoding="utf-8", errors="replace"))
        if match:
            offenders.append(f"{path.relative_to(built_site)}: {match.group(0)}")
    assert offenders == []


def test_sources_are_bilingual_in_step() -> None:
    assert site.site_problems() == []


def test_parity_and_drift_checks_can_fail(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    english = docs / "page.md"
    english.write_text("# Title\n\n```python\nx = 1\n```\n\n[next](other.md)\n", encoding="utf-8")
    spanish = docs / "page.es.md"
    spanish.write_text("# Título\n\n```python\nx = 2\n```\n", encoding="utf-8")
    (docs / "alone.md").write_text("# Alone\n", encoding="utf-8")
    problems = site.site_problems(tmp_path)
    assert any("alone.md: no Spanish twin" in p for p in problems), problems
    assert any("page.md: code differ" in p for p in problems), problems
    assert any("page.md: links differ" in p for p in problems), problems
    assert any("records no 'translation_of'" in p for p in problems), problems

    spanish.write_text("# Título\n\n```python\nx = 1\n```\n\n[siguiente](other.md)\n", encoding="utf-8")
    (docs / "alone.md").unlink()
    site.record_translation(english)
    assert site.site_problems(tmp_path) == []
    english.write_text(english.read_text(encoding="utf-8") + "\nOne more sentence.\n", encoding="utf-8")
    problems = site.site_problems(tmp_path)
    assert len(problems) == 1 and "docs/page.md changed since its Spanish twin" in problems[0], problems
    site.record_translation(english)
    assert site.site_problems(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# The browser


@pytest.fixture(scope="module")
def served(built_site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_browser_math_notebooks_and_language_switch(served: str) -> None:
    assert CHROMIUM.exists(), "the browser test needs Debian's chromium: apt-get install chromium (as .ci/run does)"
    from playwright.sync_api import sync_playwright

    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    foreign: list[str] = []
    errors: list[str] = []

    def route(r):  # type: ignore[no-untyped-def]
        if urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    start = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", route)
        page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        page.on("response", lambda r: errors.append(f"{page.url}: {r.status} for {r.url}") if r.status >= 400 else None)

        def visit_and_check(url_path: str | None, shot: str, lang: str) -> None:
            if url_path is not None:
                page.goto(served + url_path)
            page.wait_for_selector("html[data-mathjax=done]", timeout=30_000)
            assert page.get_attribute("html", "lang") == lang, page.url
            _assert_math_typeset(page)
            page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=False)

        visit_and_check("/lab/00-lora-by-hand/", "lab-en", "en")
        _switch_language(page, "es")
        assert page.url.endswith("/es/lab/00-lora-by-hand/"), page.url
        visit_and_check(None, "lab-es", "es")

        for lang_prefix, lang in [("", "en"), ("/es", "es")]:
            visit_and_check(f"{lang_prefix}/lab/block_e_regression/", f"notebook-e-{lang}", lang)
            cells = page.locator(".jp-Cell").count()
            outputs = page.locator(".jp-OutputArea-output").count()
            assert cells >= 3 and outputs >= 1, f"{page.url}: {cells} cells, {outputs} outputs rendered"
            assert page.locator(".jp-MarkdownOutput .MathJax, .jp-MarkdownOutput .MathJax_Display").count() > 0
        _switch_language(page, "en")
        assert page.url.endswith("/lab/block_e_regression/") and "/es/" not in page.url, page.url
        for name in ["theory/02-parameter-count", "theory/03-init-and-scaling", "solutions/00-lora-by-hand-ref"]:
            visit_and_check(f"/{name}/", name.replace("/", "-") + "-en", "en")
            visit_and_check(f"/es/{name}/", name.replace("/", "-") + "-es", "es")
        for lang_prefix, lang in [("", "en"), ("/es", "es")]:  # no math there: the plot must load
            page.goto(f"{served}{lang_prefix}/benchmarks/")
            assert page.get_attribute("html", "lang") == lang, page.url
            plot = page.locator('article img[src$="lora-bench.png"]')
            assert plot.evaluate("img => img.complete && img.naturalWidth > 0"), f"{page.url}: the plot did not load"
            page.screenshot(path=str(SCREENSHOTS / f"benchmarks-{lang}.png"), full_page=False)
        browser.close()
    print(f"browser checks: {time.perf_counter() - start:.1f} s; screenshots in {SCREENSHOTS}")
    assert foreign == [], f"requests to other hosts: {foreign}"
    assert errors == [], f"console errors: {errors}"


def _switch_language(page, lang: str) -> None:  # type: ignore[no-untyped-def]
    page.hover(".md-header__option .md-select")
    with page.expect_navigation():
        page.click(f"a.md-select__link[hreflang={lang}]")


def _assert_math_typeset(page) -> None:  # type: ignore[no-untyped-def]
    text = page.inner_text("article")
    for raw in ("$$", "\\(", "\\["):
        assert raw not in text, f"{page.url}: raw {raw!r} left in the page text"
    pending = page.locator('script[type^="math/tex"]:not([id^="MathJax-Element"])').count()
    assert pending == 0, f"{page.url}: {pending} formulas not typeset"
    assert page.locator(".MathJax, .MathJax_Display").count() > 0, f"{page.url}: no typeset formula"


def test_parameter_count_page_matches_the_model() -> None:
    """The worked tables of theory/02-parameter-count are what the reference actually counts."""
    from labkit.core.overlay import REFERENCE, import_file

    from minituner.model import MiniGPT, MiniGPTConfig

    reference = import_file(REFERENCE, "reference_lora")
    total = sum(p.numel() for p in MiniGPT(MiniGPTConfig()).parameters())
    for page in ["docs/theory/02-parameter-count.md", "docs/theory/02-parameter-count.es.md"]:
        text = (ROOT / page).read_text(encoding="utf-8")
        assert f" {total} " in text, f"{page}: the MiniGPT's total, {total}, is not on the page"
        for r in (1, 2, 4, 8, 16, 32):
            model = reference.wrap_minigpt_with_lora(MiniGPT(MiniGPTConfig()), r=r)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            percent = f"{100 * trainable / total:.2f}"
            if page.endswith(".es.md"):
                percent = percent.replace(".", ",")
            row = f"| {r} | {trainable} | {percent} % |"
            assert row in text, f"{page}: expected the row {row!r}"

"""MkDocs hooks of the workbook's site (registered in mkdocs.yml under ``hooks:``).

- Stage the pages that live outside ``docs/`` (the lab and its notebooks in ``labs/``, the solutions
  write-up in ``solutions/``, the package's ``BLUEPRINT.md`` in ``src/minituner/``) into
  ``docs/lab/``, ``docs/solutions/`` and ``docs/design/`` before the files are collected (see
  ``labkit.content.site.STAGED``). mkdocs-static-i18n drops files that a plugin adds from outside
  ``docs_dir``, so they are copied in; the copies are generated, git-ignored, and rewritten only
  when their content changes (so ``mkdocs serve`` does not rebuild forever).
- Point the links of the pages in ``docs/`` that are written for the repository, such as
  ``../../src/minituner/BLUEPRINT.md``, at the staged copy (``../design/BLUEPRINT.md``), so that one
  link works both on GitHub and on the site.
- Re-wrap notebooks for mkdocs-jupyter after mkdocs-static-i18n has rebuilt the file list; without
  that, the notebook pages are written out as raw JSON.
- Serve MathJax from the site itself (the copy that jupyter-server-mathjax ships) and remove the CDN
  MathJax and Mermaid scripts that nbconvert's template puts into notebook pages: the site must work
  offline.
"""

from __future__ import annotations

import copy
import posixpath
import re
import shutil
from pathlib import Path
from typing import Any

import jupyter_server_mathjax
from mkdocs.plugins import event_priority
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from mkdocs_jupyter.plugin import NotebookFile

from labkit.content.site import site_links, stage_external_pages

# MathJax 2.7, as the Jupyter server ships it (with its STIX-Web fonts): served from the site itself.
MATHJAX_DIR = Path(jupyter_server_mathjax.__file__).parent / "static"
_HEAD_ALTERNATE = re.compile(r'<link rel="alternate" href="[^"]*" hreflang="[^"]*">\s*')
_NBCONVERT_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_NBCONVERT_MERMAID = re.compile(
    r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?</script>', re.S
)


def on_pre_build(config: Any) -> None:
    stage_external_pages(Path(config["config_file_path"]).parent)


def on_page_markdown(markdown: str, page: Page, config: Any, files: Files) -> str:
    # The staged pages' links were rewritten when they were staged; this leaves them as they are.
    if page.file.src_uri.endswith(".ipynb"):
        return markdown
    page_dir = posixpath.dirname(page.file.src_uri)
    docs_dir = posixpath.join("docs", page_dir) if page_dir else "docs"
    return site_links(markdown, docs_dir, docs_dir)


def on_config(config: Any) -> Any:
    # mkdocs-jupyter wraps notebooks in its own on_files (priority 0), before mkdocs-static-i18n
    # (-100) rebuilds every file from its path; that rebuild forgets the wrapping and mangles the
    # page's path. Let i18n see plain .ipynb files, and wrap them afterwards (on_files below).
    jupyter = config["plugins"]["mkdocs-jupyter"]
    events = config["plugins"].events["files"]
    events[:] = [e for e in events if getattr(e, "__self__", None) is not jupyter]
    return config


@event_priority(-200)  # after mkdocs-static-i18n's on_files (-100)
def on_files(files: Files, config: Any) -> Files:
    jupyter = config["plugins"]["mkdocs-jupyter"]
    for file in list(files):
        if jupyter.should_include(file) and not isinstance(file, NotebookFile):
            # i18n has given the notebook its language's path, e.g. es/lab/name.ipynb; make that a
            # page, es/lab/name/. The list stays i18n's own (I18nFiles), whose lookups find the
            # Spanish page behind an English path.
            _as_page(file, config)
            files.remove(file)
            page = NotebookFile(file, **config)
            page.dest_path, page.abs_dest_path, page.url = file.dest_uri, file.abs_dest_path, file.url
            files.append(page)
    return files


def _as_page(file: Any, config: Any) -> None:
    """Give a notebook (and its other-language alternates) the URL of a page: lab/name/."""
    i18n = config["plugins"]["i18n"]
    for alternate in [file, *file.alternates.values()]:
        if alternate.dest_uri.endswith(".ipynb"):
            stem = alternate.dest_uri[: -len(".ipynb")]
            alternate.dest_uri = stem + "/index.html"
            alternate.url = stem + "/"
            alternate.abs_dest_path = str(Path(config["site_dir"]) / alternate.dest_uri)
    # i18n records alternates of pages only, so a notebook would switch language to the home page.
    norm_stem = file.norm_src_uri[: -len(".ipynb")]
    for lang in i18n.build_languages:
        if lang not in file.alternates:
            alternate = copy.copy(file)
            prefix = "" if lang == i18n.default_language else f"{lang}/"
            alternate.url = f"{prefix}{norm_stem}/"
            file.alternates[lang] = alternate


def on_post_page(output: str, page: Page, config: Any) -> str:
    # Material's script fetches "sitemap.xml" below every <link rel="alternate"> of the page, taking
    # them for language roots; i18n makes them point at the page's twin, so each fetch is a 404. The
    # language switcher's own links (and sitemap.xml's alternates) already map page to page.
    output = _HEAD_ALTERNATE.sub("", output)
    if not page.file.src_uri.endswith(".ipynb"):
        return output
    output, n_mathjax = _NBCONVERT_MATHJAX.subn("", output)
    output = _NBCONVERT_MERMAID.sub("", output)
    if n_mathjax != 1:
        raise RuntimeError(f"{page.file.src_uri}: nbconvert's MathJax block not found; update site_hooks")
    return output


def on_post_build(config: Any) -> None:
    target = Path(config["site_dir"]) / "assets" / "mathjax"
    shutil.copytree(MATHJAX_DIR, target, dirs_exist_ok=True)

"""The workbook's messages in the reader's language, through gettext.

The graded tests, `check` and the notebooks write their messages in English in the code, as
`_("...")`; the Spanish ones are in locale/es/LC_MESSAGES/minituner.po, the catalog kept in the
repository (maintainers update it with `python -m labkit.content.catalog --update`). It is compiled
in memory, with Babel, the first time a Spanish message is asked for, so there is no compiled file
to go stale. The language follows gettext's rule: the first of LANGUAGE, LC_ALL, LC_MESSAGES and
LANG that is set decides (LANGUAGE may list several, as in es:en), and English is the fallback.
"""

from __future__ import annotations

import functools
import gettext
import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path

#: The languages the workbook is written in; English is the language of the code and the fallback.
LANGUAGES = ("en", "es")
DOMAIN = "minituner"
LOCALE_DIR = Path(__file__).with_name("locale")
#: The environment variables gettext reads, in its order.
LANGUAGE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def language(environ: Mapping[str, str] = os.environ) -> str:
    """The language environ asks for, by gettext's rule: "es" for es, es_ES.UTF-8, es:en ...; else "en"."""
    for variable in LANGUAGE_VARIABLES:
        value = environ.get(variable, "")
        if not value:
            continue
        for entry in value.split(":"):  # only LANGUAGE lists several; the first one we have wins
            code = entry.split(".")[0].split("@")[0].split("_")[0].lower()
            if code in ("c", "posix"):
                return "en"
            if code in LANGUAGES:
                return code
        return "en"
    return "en"


def catalog_path(lang: str) -> Path:
    """Where lang's catalog (.po) lives."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """lang's messages: its catalog compiled (fuzzy entries left out, as msgfmt does); none for English."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    if lang == "en":
        return gettext.NullTranslations()
    from babel.messages import mofile, pofile  # only when a translation is needed (~15 ms)

    with catalog_path(lang).open("rb") as po:
        catalog = pofile.read_po(po, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    mofile.write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def tr(lang: str, message: str) -> str:
    """message (as the code writes it, in English) in lang; itself when the catalog lacks it."""
    return translations(lang).gettext(message)


def error_text(text: str, lang: str) -> str:
    """An error as "Type: message", with a stub's NotImplementedError message in lang (how it reads
    outside pytest: a notebook's cell, the notes measurement); any other text as it is."""
    kind, sep, message = text.partition(": ")
    return f"{kind}{sep}{tr(lang, message)}" if kind == "NotImplementedError" and sep else text


def translator(lang: str) -> Callable[[str], str]:
    """A function that gives a message in lang: a notebook's `say = translator("es")`."""
    return translations(lang).gettext


def _(message: str) -> str:
    """message in the language of the environment (see language)."""
    return tr(language(), message)


def N_(message: str) -> str:
    """message itself: marks it for the catalog where it is defined; tr() translates it where it is shown."""
    return message

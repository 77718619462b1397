"""What tools/bootstrap.sh prints once the environment is set up, in the user's language.

    python -m labkit.core.nextsteps student    # a student's install
    python -m labkit.core.nextsteps dev        # a maintainer's (or an instructor's, or CI's)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from labkit.core.labinfo import user_language
from minituner.i18n import tr


def next_steps(install: str, lang: str) -> str:
    """The lines for install ("student" or "dev") in lang."""
    if install == "dev":
        return "\n".join([
            tr(lang, "Set up for maintainers (.venv, with the docs and benchmark tooling). Next:"),
            "  bash tools/test.sh",
        ])  # fmt: skip
    return "\n".join([
        tr(lang, "Set up (.venv). Next:"),
        "  source .venv/bin/activate",
        "  pytest            # " + tr(lang, "the graded tests (red until you fill in src/minituner/lora.py)"),
        "  check             # " + tr(lang, "where you stand, block by block"),
        "  jupyter lab labs/ # " + tr(lang, "the notebooks"),
    ])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args not in (["student"], ["dev"]):
        print("usage: python -m labkit.core.nextsteps student|dev", file=sys.stderr)
        return 2
    print(next_steps(args[0], user_language()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

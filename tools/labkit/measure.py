"""The three values the lab's notes file records, measured with a candidate's own code.

Run in an overlaid copy (``python -m labkit.measure`` with the copy's ``src`` first on the path);
prints one JSON object: each key's value, or the error the candidate's code raised while measuring it.
Also home of the notes file's parser and of the comparison between the two.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

SEED = 0
MERGE_TOLERANCE = 1e-5
EXPECTED_PARAMS = 1024  # r * (in + out) for nn.Linear(64, 64) at r = 8


def measure() -> dict[str, Any]:
    import torch
    from torch import nn

    from minituner.lora import LoRALinear

    values: dict[str, Any] = {}
    torch.manual_seed(SEED)
    x = torch.randn(16, 64)
    try:
        base = nn.Linear(64, 64)
        layer = LoRALinear(base, r=8, alpha=16.0)
        values["initial_output_diff"] = (layer(x) - base(x)).abs().max().item()
        values["trainable_params"] = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    except Exception as exc:  # the candidate's code: report, do not crash
        values["initial_output_diff"] = values["trainable_params"] = f"{type(exc).__name__}: {exc}"
        return values
    try:
        with torch.no_grad():  # stands for some training: a non-zero adapter
            layer.lora_B.normal_(0.0, 0.02)
            before = layer(x)
            layer.merge_()
            values["merge_diff"] = (layer(x) - before).abs().max().item()
    except Exception as exc:
        values["merge_diff"] = f"{type(exc).__name__}: {exc}"
    return values


#: A line that sets a key: Markdown quote, list and emphasis marks allowed around the key.
_LINE = re.compile(r"^[\s>#*_`+-]*(?:\d+[.)]\s+)?[*_`]*(?P<key>[A-Za-z_]+)[\s*_`]*[:=](?P<value>.*)$", re.M)
#: A number: digits with an optional thousands comma or decimal comma, an exponent written as
#: e-07, or as x 10^-7 (× 10⁻⁷ and ** too).
_NUMBER = re.compile(
    r"(?P<mantissa>[-+−]?(?:\d[\d,_]*(?:\.\d*)?|\.\d+))"
    r"(?:(?P<exp>[eE][-+−]?\d+)|\s*[x×*·]\s*10\s*(?:\^|\*\*)\s*\(?(?P<pow>[-+−]?\d+)\)?)?"
)
_APPROX = re.compile(r"^(?:~|≈|≃|<=|<|≤|⩽|about\s+|approx\.?\s*|approximately\s+|aprox\.?\s*|aproximadamente\s+)",
                     re.I)  # fmt: skip
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
#: What each key expects, as the messages write it.
EXAMPLES = {"initial_output_diff": "0.0", "merge_diff": "6.6e-07", "trainable_params": "1024"}


def read_number(text: str) -> float | None:
    """The number a notes line's value starts with (1,024 / 1024.0 / 7.1e-07 / ~7e-7 / 0,5), or None."""
    value = text.strip().strip("*_`").strip()
    while (approx := _APPROX.match(value)) and approx.end():
        value = value[approx.end():].lstrip("*_` ")
    match = _NUMBER.match(value)
    if match is None:
        return None
    rest = value[match.end():]
    if rest[:1].isalnum() or rest[:1] == "_" or (rest[:1] == "." and rest[1:2].isdigit()):
        return None  # 12abc, 1.2.3: not a number
    mantissa = match.group("mantissa").replace("−", "-").replace("_", "").rstrip(",")
    if _THOUSANDS.match(mantissa):
        mantissa = mantissa.replace(",", "")  # 1,024
    elif mantissa.count(",") == 1 and "." not in mantissa:
        mantissa = mantissa.replace(",", ".")  # 0,5: a decimal comma
    elif "," in mantissa:
        return None
    exponent = match.group("exp") or (f"e{match.group('pow')}" if match.group("pow") else "")
    try:
        return float(mantissa + exponent.replace("−", "-"))
    except ValueError:
        return None


def parse_notes(text: str, keys: tuple[str, ...]) -> dict[str, float | str]:
    """The ``key: value`` lines of a notes file (keys in any case; Markdown emphasis and list marks allowed).

    Each key found maps to its number, or, where no line for it has a value that reads as a number,
    to the (first) value as written, a string.
    """
    found: dict[str, float | str] = {}
    for match in _LINE.finditer(text):
        key = match.group("key").lower()
        if key not in keys or isinstance(found.get(key), float):
            continue
        raw = match.group("value").strip()
        number = read_number(raw)
        if number is not None:
            found[key] = number
        elif key not in found:
            found[key] = raw.strip("*_` ")[:60]
    return found


_MESSAGES = {
    "en": {
        "missing": "no line '{key}: <value>' in the notes file (expected {expected}, e.g. '{key}: {example}')",
        "unreadable": "could not read the value '{raw}' of {key}: write a number, e.g. {example}",
        "unmeasured": "the notes say {value:g} (expected {expected}), but your code could not measure it: {actual}",
        "initial_output_diff": "the notes say {value:g} and your code gives {actual:g}; expected 0.0 for both (B starts at zero)",
        "merge_diff": "the notes say {value:g} and your code gives {actual:g}; expected a value from 0 to below {tol:g} for both",
        "trainable_params": "the notes say {value:g} and your code counts {actual}; expected {params} for both (r * (in + out))",
        "ok": "ok ({value:g})",
        "exp_initial_output_diff": "0.0",
        "exp_merge_diff": "a value below {tol:g}",
        "exp_trainable_params": "{params}",
    },
    "es": {
        "missing": "no hay una línea '{key}: <valor>' en el archivo de notas (se espera {expected}, p. ej. '{key}: {example}')",
        "unreadable": "no se pudo leer el valor '{raw}' de {key}: escribe un número, p. ej. {example}",
        "unmeasured": "las notas dicen {value:g} (se espera {expected}), pero tu código no pudo medirlo: {actual}",
        "initial_output_diff": "las notas dicen {value:g} y tu código da {actual:g}; se espera 0.0 en ambos (B empieza en cero)",
        "merge_diff": "las notas dicen {value:g} y tu código da {actual:g}; se espera un valor de 0 a menos de {tol:g} en ambos",
        "trainable_params": "las notas dicen {value:g} y tu código cuenta {actual}; se espera {params} en ambos (r * (in + out))",
        "ok": "bien ({value:g})",
        "exp_initial_output_diff": "0.0",
        "exp_merge_diff": "un valor menor que {tol:g}",
        "exp_trainable_params": "{params}",
    },
}


def compare(
    notes: Mapping[str, float | str], measured: Mapping[str, Any], keys: tuple[str, ...], lang: str = "en"
) -> dict[str, str]:
    """For each key, "" when the notes agree with the code and the lab, else what is wrong (in lang)."""
    return {key: problem for key, (problem, _) in judge(notes, measured, keys, lang).items()}


def judge(
    notes: Mapping[str, float | str], measured: Mapping[str, Any], keys: tuple[str, ...], lang: str = "en"
) -> dict[str, tuple[str, str]]:
    """For each key, (what is wrong or "", the line to show: what is wrong, or "ok" with the value)."""
    t = _MESSAGES[lang]
    fmt = {"tol": MERGE_TOLERANCE, "params": EXPECTED_PARAMS}
    judged: dict[str, tuple[str, str]] = {}
    for key in keys:
        value, actual = notes.get(key), measured.get(key)
        example = EXAMPLES.get(key, "1.0")
        expected = t.get(f"exp_{key}", "{params}").format(**fmt)
        if value is None:
            problem = t["missing"].format(key=key, expected=expected, example=example)
        elif isinstance(value, str):
            problem = t["unreadable"].format(raw=value, key=key, example=example)
        elif isinstance(actual, str) or actual is None:
            problem = t["unmeasured"].format(value=value, expected=expected, actual=actual)
        else:
            if key == "initial_output_diff":
                ok = value == 0.0 and actual == 0.0
            elif key == "merge_diff":
                ok = 0.0 <= value < MERGE_TOLERANCE and 0.0 <= actual < MERGE_TOLERANCE
            elif key == "trainable_params":
                ok = math.isclose(value, EXPECTED_PARAMS) and actual == EXPECTED_PARAMS
            else:
                ok = True
            problem = "" if ok else t[key].format(value=value, actual=actual, **fmt)
        judged[key] = (problem, problem or t["ok"].format(value=value))
    return judged


if __name__ == "__main__":
    print(json.dumps(measure()))

"""The three values the lab's notes file records, measured with a candidate's own code.

Run in an overlaid copy (``python -m labkit.measure`` with the copy's ``src`` first on the path);
prints one JSON object: each key's value, or the error the candidate's code raised while measuring it.
Also home of the notes file's parser and of the comparison between the two.
"""

from __future__ import annotations

import json
import math
import re
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


_LINE = re.compile(r"^[\s>*_`-]*(?P<key>[a-z_]+)[\s*_`]*[:=]\s*[`*_]*(?P<value>[-+0-9.eE]+)", re.M)


def parse_notes(text: str, keys: tuple[str, ...]) -> dict[str, float]:
    """The ``key: value`` lines of a notes file (Markdown emphasis and list marks allowed)."""
    found: dict[str, float] = {}
    for match in _LINE.finditer(text):
        key = match.group("key")
        if key in keys and key not in found:
            try:
                found[key] = float(match.group("value"))
            except ValueError:
                continue
    return found


def compare(notes: dict[str, float], measured: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    """For each key, "" when the notes agree with the code and the lab, else what is wrong."""
    problems: dict[str, str] = {}
    for key in keys:
        value, actual = notes.get(key), measured.get(key)
        if value is None:
            problems[key] = f"no line '{key}: <value>' in the notes file"
        elif isinstance(actual, str) or actual is None:
            problems[key] = f"your code could not measure it: {actual}"
        elif key == "initial_output_diff":
            problems[key] = "" if value == 0.0 and actual == 0.0 else (
                f"expected 0.0 (B starts at zero); the notes say {value:g}, your code gives {actual:g}"
            )
        elif key == "merge_diff":
            ok = 0.0 <= value < MERGE_TOLERANCE and actual < MERGE_TOLERANCE
            problems[key] = "" if ok else (
                f"expected a value below {MERGE_TOLERANCE:g}; the notes say {value:g}, your code gives {actual:g}"
            )
        elif key == "trainable_params":
            ok = math.isclose(value, EXPECTED_PARAMS) and actual == EXPECTED_PARAMS
            problems[key] = "" if ok else (
                f"expected {EXPECTED_PARAMS}; the notes say {value:g}, your code counts {actual}"
            )
    return problems


if __name__ == "__main__":
    print(json.dumps(measure()))

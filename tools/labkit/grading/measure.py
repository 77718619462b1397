"""The values the lab's notes file records, measured with a candidate's own code.

measure() makes the measurement's inputs, has the scenario notes_measurement (tests/scenarios.py) run
them with the candidate's code (where the judge runs scenarios: labkit.grading.judge), and reads each
key's value from what it observed, or the error the candidate's code raised while measuring it.
Also home of the notes file's parser and of the comparison between the two.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from minituner.i18n import N_, error_text, tr

SEED = 0
#: The merge rule, as the graded tests check it: the largest absolute difference between the
#: outputs after and before merge_() is below MERGE_TOLERANCE * max(1, largest |output before|)
#: (float32 rounding grows with the size of the numbers).
MERGE_TOLERANCE = 1e-5
EXPECTED_PARAMS = 1024  # r * (in + out) for nn.Linear(64, 64) at r = 8
#: The parameters of LoRALinear(nn.Linear(64, 64), r=8) that hold a gradient after one backward pass.
EXPECTED_GRADIENTS = ("lora_A", "lora_B")
#: Keys whose value is a list of names rather than a number.
NAME_KEYS = frozenset({"gradient_flow"})


def merge_bound(output_before: float) -> float:
    """The largest merge difference the lab accepts for outputs whose largest magnitude is given."""
    return MERGE_TOLERANCE * max(1.0, output_before)


#: The notes measurement's sizes, as the lab gives them: LoRALinear(nn.Linear(64, 64), r=8, alpha=16)
#: on a batch of 16 rows, and the spread of the non-zero lora_B that stands for some training.
SIZE, ROWS, TRAINED_B_STD = 64, 16, 0.02
#: How measure reaches the candidate's code: observe(scenario name, inputs, seed) -> what it observed.
Observe = Callable[[str, dict[str, Any], int], dict[str, Any]]


def measure(observe: Observe) -> dict[str, Any]:
    """Each notes key's value, measured with the candidate's code through observe (or why it could not be).

    observe(scenario name, inputs, seed) runs tests/scenarios.py's notes_measurement (here or in the
    grader's worker). The inputs are made here from SEED; the expectations too (base(x) from this
    process's own copy of the layer).
    """
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        base = nn.Linear(SIZE, SIZE)
        x = torch.randn(ROWS, SIZE)
        trained_b = torch.randn(SIZE, 8) * TRAINED_B_STD
    inputs = {"base": {"weight": base.weight.detach().clone(), "bias": base.bias.detach().clone()},
              "x": x, "lora_B": trained_b}  # fmt: skip
    try:
        seen = observe("notes_measurement", inputs, SEED)
    except Exception as exc:  # the candidate's code: report, do not crash
        return {key: f"{type(exc).__name__}: {exc}" for key in (*EXAMPLES, "merge_bound")}
    with torch.no_grad():
        expected = base(x)
    values: dict[str, Any] = {}
    values["initial_output_diff"] = _read(seen, "out_at_init", lambda t: float((t - expected).abs().max()))
    values["trainable_params"] = _read(seen, "trainable_params", lambda n: n if type(n) is int else None)
    values["gradient_flow"] = _read(seen, "gradient_flow", _names)
    values["merge_diff"] = _read(seen, "merged", lambda pair: float((pair[1] - pair[0]).abs().max()))
    bound = _read(seen, "merged", lambda pair: merge_bound(float(pair[0].abs().max())))
    if isinstance(bound, float):
        values["merge_bound"] = bound
    return values


def _read(seen: Mapping[str, Any], key: str, read: Callable[[Any], Any]) -> Any:
    """read(seen[key]); the error the scenario recorded instead; or what is wrong with the value."""
    value = seen.get(key) if isinstance(seen, Mapping) else None
    if isinstance(value, Mapping) and isinstance(value.get("error"), str):
        return str(value["error"])[:300]
    try:
        result = read(value)
    except Exception as exc:  # a value of the wrong kind (a non-tensor output, say)
        result = None
        why = f"{type(exc).__name__}: {exc}"
    else:
        why = "not a value of the expected kind"
    return result if result is not None else f"could not measure {key}: {why}"


def _names(value: Any) -> list[str] | None:
    return sorted(value) if type(value) is list and all(type(n) is str for n in value) else None


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
EXAMPLES = {"initial_output_diff": "0.0", "merge_diff": "7.2e-07", "trainable_params": "1024",
            "gradient_flow": "lora_A, lora_B"}  # fmt: skip
_NAME = re.compile(r"[A-Za-z_][\w.]*")


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


def read_names(text: str) -> tuple[str, ...]:
    """The names a notes line lists, sorted: "lora_A, lora_B" / "`lora_B` and `lora_A`" / "[lora_A]"."""
    return tuple(sorted({n for n in _NAME.findall(text) if n.lower() not in {"and", "y"}}))


def parse_notes(text: str, keys: tuple[str, ...]) -> dict[str, float | str | tuple[str, ...]]:
    """The ``key: value`` lines of a notes file (keys in any case; Markdown emphasis and list marks allowed).

    A key of NAME_KEYS maps to the names its first line lists. Any other key maps to its number,
    or, where no line for it has a value that reads as a number, to the (first) value as written.
    """
    found: dict[str, float | str | tuple[str, ...]] = {}
    for match in _LINE.finditer(text):
        key = match.group("key").lower()
        if key not in keys or isinstance(found.get(key), (float, tuple)):
            continue
        raw = match.group("value").strip()
        if key in NAME_KEYS:
            found[key] = read_names(raw)
        elif (number := read_number(raw)) is not None:
            found[key] = number
        elif key not in found:
            found[key] = raw.strip("*_` ")[:60]
    return found


_MESSAGES = {
    "missing": N_("no line '{key}: <value>' in the notes file (expected {expected}, e.g. '{key}: {example}')"),
    "unreadable": N_("could not read the value '{raw}' of {key}: write a number, e.g. {example}"),
    "unreadable_names": N_("no parameter names after '{key}:': list them, e.g. '{key}: {example}'"),
    "unmeasured": N_("the notes say {value} (expected {expected}), but your code could not measure it: {actual}"),
    "initial_output_diff": N_(
        "the notes say {value} and your code gives {actual}; expected 0.0 for both (B starts at zero)"
    ),
    "merge_diff": N_("the notes say {value} and your code gives {actual}; expected a value from 0 to below {bound:.3g} "
                     "for both (1e-5 × max(1, largest |output|), the graded tests' rule)"),
    "trainable_params": N_(
        "the notes say {value} and your code counts {actual}; expected {params} for both (r * (in + out))"
    ),
    "gradient_flow": N_("the notes say {value} and, in your code, {actual} received a gradient; expected {names} "
                        "for both (only the adapter learns; the base is frozen)"),
    "ok": N_("ok ({value})"),
    "none": N_("none"),
    # What each key's value should be, as the messages write it (the same in every language but merge_diff's).
    "exp_initial_output_diff": "0.0",
    "exp_merge_diff": N_("a value below 1e-5 × max(1, largest |output|)"),
    "exp_trainable_params": "{params}",
    "exp_gradient_flow": "{names}",
}


def _shown(value: object, lang: str) -> str:
    """A value as the messages write it: 7e-07, 1024, "lora_A, lora_B" (or "none")."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value)) or tr(lang, _MESSAGES["none"])
    return str(value)


def compare(
    notes: Mapping[str, object], measured: Mapping[str, Any], keys: tuple[str, ...], lang: str = "en"
) -> dict[str, str]:
    """For each key, "" when the notes agree with the code and the lab, else what is wrong (in lang)."""
    return {key: problem for key, (problem, _) in judge(notes, measured, keys, lang).items()}


def _agrees(key: str, value: object, actual: object, bound: float) -> bool:
    """Whether a notes value and the measured one both hold what the lab expects of key."""
    if key in NAME_KEYS:
        return value == EXPECTED_GRADIENTS and isinstance(actual, (list, tuple)) and (
            tuple(sorted(map(str, actual))) == EXPECTED_GRADIENTS
        )
    if not isinstance(value, float) or not isinstance(actual, (int, float)):
        return False
    if key == "initial_output_diff":
        return value == 0.0 and actual == 0.0
    if key == "merge_diff":
        return 0.0 <= value < bound and 0.0 <= actual < bound
    if key == "trainable_params":
        return math.isclose(value, EXPECTED_PARAMS) and actual == EXPECTED_PARAMS
    return True


def judge(
    notes: Mapping[str, object], measured: Mapping[str, Any], keys: tuple[str, ...], lang: str = "en"
) -> dict[str, tuple[str, str]]:
    """For each key, (what is wrong or "", the line to show: what is wrong, or "ok" with the value)."""
    t = {key: tr(lang, message) for key, message in _MESSAGES.items()}
    measured_bound = measured.get("merge_bound")
    bound = measured_bound if isinstance(measured_bound, float) else MERGE_TOLERANCE
    fmt: dict[str, object] = {"params": EXPECTED_PARAMS, "names": ", ".join(EXPECTED_GRADIENTS), "bound": bound}
    judged: dict[str, tuple[str, str]] = {}
    for key in keys:
        value, actual = notes.get(key), measured.get(key)
        example = EXAMPLES.get(key, "1.0")
        expected = t.get(f"exp_{key}", "{params}").format(**fmt)
        shown = _shown(value, lang)
        if value is None:
            problem = t["missing"].format(key=key, expected=expected, example=example)
        elif value == ():
            problem = t["unreadable_names"].format(key=key, example=example)
        elif isinstance(value, str):
            problem = t["unreadable"].format(raw=value, key=key, example=example)
        elif isinstance(actual, str) or actual is None:
            problem = t["unmeasured"].format(value=shown, expected=expected,
                                             actual=actual if actual is None else error_text(actual, lang))  # fmt: skip
        elif _agrees(key, value, actual, bound):
            problem = ""
        else:
            problem = t[key].format(value=shown, actual=_shown(actual, lang), **fmt)
        judged[key] = (problem, problem or t["ok"].format(value=shown))
    return judged


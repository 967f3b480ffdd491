"""Reading worked steps: the one parser of `a op b = c` equations and of `Step N: ...` reasoning lines.

    >>> parse_steps("Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 13")
    [(10, '-', 3, 7), (5, '+', 7, 13)]
    >>> step_lines(" <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 </think> Final Result: 12")
    ['Step 1: 10 - 3 = 7 Expression now: 5 + 7']

Every reader of steps goes through here: the expressions family's `verify_steps` and `find_steps` (which the steps
reward scores, in any completion: expressions' `Step 1: 10 - 3 = 7`, arithmetic scratchpads, GSM8K's `48/2 = 24`)
and its `steps` (the lines chat shows). Whether a step is right is the expressions family's rule (`apply`).
"""

from __future__ import annotations

import re

MAX_STEP_DIGITS = 30  # a longer number is not a step a model works out; it is skipped, not scored
# Digits, or digits in groups of three with thousands separators (`1,005`: a GSM8K-style result is 1005, not 1).
_DIGITS = rf"(?:\d{{1,3}}(?:,\d{{3}}){{1,{MAX_STEP_DIGITS // 3 - 1}}}(?!,?\d)|\d{{1,{MAX_STEP_DIGITS}}})"
_NUM = rf"(?:\(\s*-\s*{_DIGITS}\s*\)|-?{_DIGITS})"  # 7, -7 or (-7)
# The left number may not continue a word, decimal or number (`x3`, `1.5`, the `000` of `1,000`), which also keeps
# the scan linear on a wall of digits; the result may not continue as a decimal (`= 6.5` is not `= 6`).
_STEP = re.compile(rf"(?<![\w.)])(?<!\d,)({_NUM})\s*([-+*/×÷])\s*({_NUM})\s*=\s*({_NUM})(?!\.?\d)")
_OPS = {"×": "*", "÷": "/"}
_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_STEP_LINE = re.compile(r"(?=Step \d+\s*:)")


def parse_steps(text: str) -> list[tuple[int, str, int, int]]:
    """Every binary step `a op b = c` in `text`, in order, as (a, op, b, c) with `×`/`÷` read as `*`/`/`; never
    raises.

    A number that follows another operator (`2 + 3 * 4 = 14`) is part of a longer expression, not a step: skipped.
    Decimals and numbers of more than MAX_STEP_DIGITS digits are skipped too (the rule is integer arithmetic).
    Thousands separators are read (`998 + 7 = 1,005`); a comma not followed by three digits ends the number.
    """
    steps = []
    try:
        text = str(text)
        for match in _STEP.finditer(text):
            before = _char_before(text, match.start())
            if before and before in "+-*/×÷":
                continue
            a, op, b, c = match.groups()
            steps.append((_step_int(a), _OPS.get(op, op), _step_int(b), _step_int(c)))
    except Exception:
        pass
    return steps


def step_lines(text: str) -> list[str]:
    """The `Step N: ...` lines inside `<think> ... </think>`, spacing collapsed (empty without reasoning); an
    unfinished think block still has its steps."""
    match = _THINK.search(str(text))
    if not match:
        return []
    return [" ".join(p.split()) for p in _STEP_LINE.split(match.group(1)) if p.strip().startswith("Step")]


def _char_before(text: str, i: int) -> str:
    """The last non-space character before position i ('' at the start); scans back, no copy of the text."""
    i -= 1
    while i >= 0 and text[i].isspace():
        i -= 1
    return text[i] if i >= 0 else ""


def _step_int(text: str) -> int:
    return int(re.sub(r"[\s(),]", "", text))

"""AQuA-RAT adapter (the "nanochatAquaRat" seed): multiple-choice algebra word problems answered with a letter.

    row     {"question": "A car covers ...", "options": ["A)53 km", "B)55 km", ...], "rationale": "...",
             "correct": "E"}
    prompt  "Question: A car covers ...\\nOptions:\\nA) 53 km\\nB) 55 km\\n...\\nExplain, then end with
             \\"Final Answer: <LETTER>\\".\\nAnswer:"
    target  " <rationale>\\nFinal Answer: E"                  answer "E"

No `generate`: `load_rows` reads `deepmind/aqua_rat` (config `raw`) from the Hub or the same columns from local
json/jsonl/parquet files, and `from_row` makes a Problem.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from .base import Problem, Task, barrier, last_match
from .loading import read_rows

HUB_ID, HUB_CONFIG = "deepmind/aqua_rat", "raw"
REQUIRED_COLUMNS = ("question", "options", "correct")  # `rationale` is optional (RL rows do without it)
TYPES = ["multiple_choice"]
LETTERS = "ABCDE"
INSTRUCTION = 'Explain, then end with "Final Answer: <LETTER>".'

_FINAL = re.compile(r"Final Answer\s*:?\s*\(?([A-E])\b", re.IGNORECASE)
_FALLBACK = re.compile(r"answer is\s*:?\s*\(?([A-E])\b", re.IGNORECASE)
_BARRIER = barrier(r"\w\s:(")  # a _FINAL or _FALLBACK match holds only letters, spaces, : and (
# The format reward's cue: "...\nFinal Answer: E", the last thing written.
_FORMAT = re.compile(r"Final Answer:\s*\(?[A-E]\)?\.?\s*\Z")
_OPTION = re.compile(r"^\s*\(?([A-Ea-e])\s*[).:]\s*(.*)$", re.DOTALL)


@dataclass
class AquaSpec:
    pass  # nothing to choose yet; kept so every family has make_spec()


def load_rows(source: str | Path = HUB_ID, split: str = "train", config: str | None = None) -> list[dict]:
    """AQuA-RAT rows (`question`, `options`, `correct`[, `rationale`]) from a Hub id or local files."""
    if config is None and str(source) == HUB_ID:
        config = HUB_CONFIG
    return read_rows(source, split, config=config, required=REQUIRED_COLUMNS)


def format_options(options: list[str]) -> list[str]:
    """`["A)53 km", "B) 55 km"]` -> `["A) 53 km", "B) 55 km"]`; unlabeled options get letters in order."""
    out = []
    for i, option in enumerate(options):
        match = _OPTION.match(str(option))
        letter, text = (match.group(1).upper(), match.group(2).strip()) if match else (LETTERS[i], str(option).strip())
        out.append(f"{letter}) {text}")
    return out


class AquaTask(Task):
    name = "aqua"
    types = list(TYPES)
    spec_class = AquaSpec

    def generate(self, rng: random.Random, spec=None) -> Problem:
        raise NotImplementedError("aqua problems come from the dataset: use load_rows(source, split) and from_row(row)")

    load_rows = staticmethod(load_rows)

    def from_row(self, row: dict, spec: AquaSpec | None = None) -> Problem:
        """The Problem of one AQuA-RAT row; ValueError if `correct` is not one of the option letters."""
        question = str(row["question"]).strip()
        options = row["options"]
        if not isinstance(options, (list, tuple)) or not options or len(options) > len(LETTERS):
            raise ValueError(f"AQuA row needs a list of 1-{len(LETTERS)} options, got {options!r}")
        options = format_options(options)
        answer = str(row["correct"]).strip().upper()
        if answer not in [option[0] for option in options]:
            raise ValueError(f"AQuA row's correct answer {row['correct']!r} is not one of its options {options}")
        rationale = str(row.get("rationale") or "").strip()
        lines = "\n".join(options)
        return Problem(
            prompt=f"Question: {question}\nOptions:\n{lines}\n{INSTRUCTION}\nAnswer:",
            target=f" {rationale}\nFinal Answer: {answer}" if rationale else f" Final Answer: {answer}",
            answer=answer,
            type=TYPES[0],
            difficulty=len([line for line in rationale.splitlines() if line.strip()]),
            key=" ".join((question + " " + " ".join(options)).lower().split()),
            meta={"options": options},
        )

    answer_cue = "final answer"
    format_pattern = _FORMAT

    def extract_answer(self, text: str) -> str | None:
        """The letter of the last `Final Answer: C` (fallback: the last `answer is C`); None otherwise.

        >>> AquaTask().extract_answer("... so 55 km.\\nFinal Answer: b")
        'B'
        """
        try:
            text = str(text)
            match = last_match(_FINAL, text, _BARRIER) or last_match(_FALLBACK, text, _BARRIER)  # from the end
            return match.group(1).upper() if match else None
        except Exception:
            return None

    def canonical_answer(self, answer) -> str | None:
        letter = str(answer).strip().upper()
        return letter if len(letter) == 1 and letter in LETTERS else None

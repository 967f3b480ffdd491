"""GSM8K adapter (the "Math Mind" seed): grade-school word problems whose answers end in `#### N`.

    row     {"question": "Natalia sold clips to 48 ...", "answer": "Natalia sold 48/2 = <<48/2=24>>24 ... #### 72"}
    prompt  "Question: Natalia sold clips to 48 ...\\nSolve step by step and end with the final answer as
             \\"#### <number>\\".\\nAnswer:"
    target  " Natalia sold 48/2 = 24 ...\\n#### 72"         answer "72"

The problems come from the dataset, so this family has no `generate`; `load_rows` reads `openai/gsm8k` (config
`main`) from the Hub or the same columns from local json/jsonl/parquet files, and `from_row` makes a Problem.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from .base import Problem, Task, barrier, canonical_number, last_match, last_number, option
from .loading import read_rows

HUB_ID, HUB_CONFIG = "openai/gsm8k", "main"
REQUIRED_COLUMNS = ("question", "answer")
TYPES = ["word_problem"]
INSTRUCTION = 'Solve step by step and end with the final answer as "#### <number>".'

_FINAL = re.compile(r"####\s*(-?\$?\s?[\d,]*\.?\d+)")
_FINAL_BARRIER = barrier(r"\d\s#$,.\-")  # a _FINAL match holds only these
# The format reward's cue: "... she sold 72 clips.\n#### 72", the last thing written.
_FORMAT = re.compile(r"####\s*-?\$?(?:\d{1,3}(?:,\d{3})+|\d{1,40})(?:\.\d{1,40})?\s*\Z")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: `48/2 = <<48/2=24>>24`


@dataclass
class GSM8KSpec:
    keep_calculator_annotations: bool = option(False, "keep GSM8K's `<<48/2=24>>` calculator notes in targets")


def load_rows(source: str | Path = HUB_ID, split: str = "train", config: str | None = None) -> list[dict]:
    """GSM8K rows (`question`, `answer`) from a Hub id or a local json/jsonl/parquet file or folder."""
    if config is None and str(source) == HUB_ID:
        config = HUB_CONFIG
    return read_rows(source, split, config=config, required=REQUIRED_COLUMNS)


class GSM8KTask(Task):
    name = "gsm8k"
    types = list(TYPES)
    spec_class = GSM8KSpec

    def generate(self, rng: random.Random, spec=None) -> Problem:
        raise NotImplementedError(
            "gsm8k problems come from the dataset: use load_rows(source, split) and from_row(row)")

    load_rows = staticmethod(load_rows)

    def from_row(self, row: dict, spec: GSM8KSpec | None = None) -> Problem:
        """The Problem of one GSM8K row; ValueError if the row has no `#### N` answer."""
        spec = spec or GSM8KSpec()
        question, solution = str(row["question"]).strip(), str(row["answer"]).strip()
        answer = self.extract_answer(solution) if "####" in solution else None
        if answer is None:
            raise ValueError(f"GSM8K row has no '#### N' final answer: {solution[-80:]!r}")
        reasoning = solution[: solution.rindex("####")].strip()
        if not spec.keep_calculator_annotations:
            reasoning = _CALCULATOR.sub("", reasoning)
        steps = [line for line in reasoning.splitlines() if line.strip()]
        return Problem(
            prompt=f"Question: {question}\n{INSTRUCTION}\nAnswer:",
            target=f" {reasoning}\n#### {answer}" if reasoning else f" #### {answer}",
            answer=answer,
            type=TYPES[0],
            difficulty=len(steps),
            key=" ".join(question.lower().split()),
            meta={},
        )

    answer_cue = "####"
    format_pattern = _FORMAT

    def extract_answer(self, text: str) -> str | None:
        """The number after the last `####` (commas and $ removed); fallback: the last number in the text.

        >>> GSM8KTask().extract_answer("... so she sold 72 clips.\\n#### 1,072")
        '1072'
        """
        try:
            text = str(text)
            match = last_match(_FINAL, text, _FINAL_BARRIER, _readable)  # the last readable one, from the end
            if match:
                return _final_value(match)
            return last_number(text)
        except Exception:
            return None


def _final_value(match: re.Match) -> str | None:
    return canonical_number(match.group(1).replace(" ", ""))


def _readable(match: re.Match) -> bool:
    return _final_value(match) is not None

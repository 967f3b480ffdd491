"""Preference dataset: `prompt` / `chosen` / `rejected` rows, TRL's preference format (DPO and friends).

    python -m data_builders.preferences --out data/dpo --num-train 20000 --answer-style explain
    mathalign data build preferences --out data/dpo --negatives refusal=1 near_miss=2 wrong_step=2 \
        --task arithmetic expressions

    row  {"prompt": "72/4=?", "chosen": " The answer is 18.", "rejected": " The answer is 81.",
          "negative": 1 (near_miss), "task": "arithmetic", "type": 3, "difficulty": 2, "answer": "18", ...}

Rejected completions are refusals (`Sorry, I do not know!`, seed a's), near misses (off by a little, swapped
digits, a tens slip) or, for step-by-step targets, one wrong intermediate step carried through. None is ever
correct: each is checked with the family's `check`. The `negative` column says which kind a row got.

In Python: `data_builders.preferences.build(num_train=1000, negatives=("near_miss",))`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from datasets import ClassLabel, DatasetDict, Value

from mathalign.tasks.base import option, parse_weights

from . import core
from .negatives import KINDS, make_negative

NAME = "preferences"
SUMMARY = ("Chosen/rejected completion pairs for preference optimisation (TRL `DPOTrainer`). Rejected completions "
           "are refusals, near-miss answers or a wrong intermediate step; none is ever correct.")
FEATURES = {
    "prompt": Value("string"),
    "chosen": Value("string"),
    "rejected": Value("string"),
    "negative": ClassLabel(names=list(KINDS)),  # the kind of rejected completion
}


@dataclass
class PreferenceOptions(core.BuildOptions):
    negatives: tuple[str, ...] | dict[str, float] = option(
        KINDS, f"kinds of rejected completions, mixed evenly or weighted as kind=weight: {', '.join(KINDS)} "
        "(wrong_step applies to step-by-step targets; elsewhere it becomes near_miss)", nargs="+")

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.negatives, str):
            self.negatives = tuple(self.negatives.replace(",", " ").split())
        self.negatives = parse_weights("negatives", self.negatives)
        weights = self.negatives if isinstance(self.negatives, dict) else {k: 1.0 for k in self.negatives}
        bad = [k for k in weights if k not in KINDS]
        if bad or not weights or sum(weights.values()) <= 0 or min(weights.values()) < 0:
            raise ValueError(f"negatives must name some of {KINDS} (with positive weights), got {self.negatives!r}")

    @property
    def negative_weights(self) -> dict[str, float]:
        return self.negatives if isinstance(self.negatives, dict) else {k: 1.0 for k in self.negatives}


def rows(problems, options: PreferenceOptions, specs, split) -> dict[str, list]:
    rng = random.Random(f"mathalign:{options.seed}:{split}:negatives")  # its own stream: problems do not move
    kinds, weights = zip(*options.negative_weights.items())
    index = {kind: i for i, kind in enumerate(KINDS)}
    out: dict[str, list] = {"prompt": [], "chosen": [], "rejected": [], "negative": []}
    for family, problem in problems:
        kind = rng.choices(kinds, weights)[0]
        rejected, used = make_negative(family, problem, kind, rng, specs.get(family))
        out["prompt"].append(problem.prompt)
        out["chosen"].append(problem.target)
        out["rejected"].append(rejected)
        out["negative"].append(index[used])
    return out


def build(progress: bool | None = None, **options) -> DatasetDict:
    """The preference DatasetDict; `options` are PreferenceOptions fields plus family spec options."""
    return core.build_generated(NAME, PreferenceOptions, options, rows, FEATURES, progress)


build.__signature__ = core.generated_signature(PreferenceOptions)


def add_arguments(parser) -> None:
    core.add_generation_arguments(parser, PreferenceOptions)


def main(args) -> None:
    core.run_generated(NAME, PreferenceOptions, build, SUMMARY, args)


def make_parser():
    parser = core.make_parser(__doc__, f"python -m data_builders.{NAME}")
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    main(make_parser().parse_args())

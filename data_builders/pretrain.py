"""Pretraining text: one `text` row per problem, prompt and target together (TRL's language-modeling format).

    python -m data_builders.pretrain --out data/pretrain --num-train 200000 --max-digits 3
    mathalign data build pretrain --out data/pretrain --task arithmetic expressions

    row  {"text": "72/4=? The answer is 18.", "task": "arithmetic", "type": 3, "difficulty": 2, "answer": "18", ...}

In Python: `data_builders.pretrain.build(num_train=100_000, seed=0)`.
"""

from __future__ import annotations

from datasets import Value

from . import core, generated
from .publishing import run_main

NAME = "pretrain"
SUMMARY = "Plain text (problem and solution together) for language-model pretraining from scratch."
FEATURES = {"text": Value("string")}


def rows(problems, options, specs, split) -> dict[str, list]:
    return {"text": [p.prompt + p.target for _, p in problems]}


build, add_arguments, main, make_parser = generated.entry_points(
    NAME, core.BuildOptions, rows, FEATURES, SUMMARY, __doc__, __name__)


if __name__ == "__main__":
    run_main(make_parser, main)

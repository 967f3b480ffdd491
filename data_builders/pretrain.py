"""Pretraining text: one `text` row per problem, prompt and target together (TRL's language-modeling format).

    python -m data_builders.pretrain --out data/pretrain --num-train 200000 --max-digits 3
    mathalign data build pretrain --out data/pretrain --task arithmetic expressions

    row  {"text": "72/4=? The answer is 18.", "task": "arithmetic", "type": 3, "difficulty": 2, "answer": "18", ...}

In Python: `data_builders.pretrain.build(num_train=100_000, seed=0)`.
"""

from __future__ import annotations

from datasets import DatasetDict, Value

from . import core

NAME = "pretrain"
SUMMARY = "Plain text (problem and solution together) for language-model pretraining from scratch."
FEATURES = {"text": Value("string")}


def rows(problems, options, specs, split) -> dict[str, list]:
    return {"text": [p.prompt + p.target for _, p in problems]}


def build(progress: bool | None = None, **options) -> DatasetDict:
    """The pretraining DatasetDict; `options` are BuildOptions fields plus family spec options."""
    return core.build_generated(NAME, core.BuildOptions, options, rows, FEATURES, progress)


build.__signature__ = core.generated_signature(core.BuildOptions)


def add_arguments(parser) -> None:
    core.add_generation_arguments(parser, core.BuildOptions)


def main(args) -> None:
    core.run_generated(NAME, core.BuildOptions, build, SUMMARY, args)


def make_parser():
    parser = core.make_parser(__doc__, f"python -m data_builders.{NAME}")
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    core.run_main(make_parser, main)

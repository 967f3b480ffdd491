"""RL prompts: `prompt` plus the gold `answer` and the metadata reward functions need (TRL `GRPOTrainer`).

    python -m data_builders.rl --out data/rl --task expressions --num-train 5000
    mathalign data build rl --out data/rl --task arithmetic expressions --task-weights 1 3

    row  {"prompt": "Evaluate: 5 + (10 - 3)", "task": "expressions", "type": 0 (well_formed), "difficulty": 2,
          "answer": "12", "key": "5 + (10 - 3)"}

GRPO passes every extra column to the reward functions as a keyword argument, so a reward reads `task` and
`answer` per row and calls `get_task(task).check(completion, answer)`.

In Python: `data_builders.rl.build(task="expressions", num_train=1000, seed=0)`.
"""

from __future__ import annotations

from datasets import DatasetDict, Value

from . import core

NAME = "rl"
SUMMARY = "Prompts with gold answers for online RL (TRL `GRPOTrainer`); rewards check completions exactly."
FEATURES = {"prompt": Value("string")}


def rows(problems, options, specs, split) -> dict[str, list]:
    return {"prompt": [p.prompt for _, p in problems]}


def build(progress: bool | None = None, **options) -> DatasetDict:
    """The RL prompt DatasetDict; `options` are BuildOptions fields plus family spec options."""
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

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

from datasets import Value

from . import core, generated
from .publishing import run_main

NAME = "rl"
SUMMARY = "Prompts with gold answers for online RL (TRL `GRPOTrainer`); rewards check completions exactly."
FEATURES = {"prompt": Value("string")}


def rows(problems, options, specs, split) -> dict[str, list]:
    return {"prompt": [p.prompt for _, p in problems]}


build, add_arguments, main, make_parser = generated.entry_points(
    NAME, core.BuildOptions, rows, FEATURES, SUMMARY, __doc__, __name__)


if __name__ == "__main__":
    run_main(make_parser, main)

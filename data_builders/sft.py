"""SFT dataset: `prompt` / `completion` rows, TRL's prompt-completion format (the loss falls on the completion).

    python -m data_builders.sft --out data/sft --num-train 50000
    mathalign data build sft --out data/sft_mix --task arithmetic expressions --max-depth 3 --answer-style explain

    row  {"prompt": "72/4=?", "completion": " The answer is 18.", "task": "arithmetic", "type": 3 (a_over_b),
          "difficulty": 2, "answer": "18", "key": "a_over_b:72,4"}

In Python: `data_builders.sft.build(task="arithmetic", num_train=1000, seed=0)` returns the DatasetDict.
"""

from __future__ import annotations

from datasets import Value

from . import core, generated
from .publishing import run_main

NAME = "sft"
SUMMARY = "Prompt/completion pairs for supervised fine-tuning (TRL `SFTTrainer`, completion-only loss)."
FEATURES = {"prompt": Value("string"), "completion": Value("string")}


def rows(problems, options, specs, split) -> dict[str, list]:
    return {"prompt": [p.prompt for _, p in problems], "completion": [p.target for _, p in problems]}


build, add_arguments, main, make_parser = generated.entry_points(
    NAME, core.BuildOptions, rows, FEATURES, SUMMARY, __doc__, __name__)


if __name__ == "__main__":
    run_main(make_parser, main)

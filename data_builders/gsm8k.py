"""GSM8K as mathalign rows: prompts that ask for `#### N`, reference solutions, gold answers.

    python -m data_builders.gsm8k --out data/gsm8k --style rl                      # openai/gsm8k from the Hub
    mathalign data build gsm8k --out data/gsm8k --source path/to/gsm8k --style sft  # train.jsonl + test.jsonl

    row  {"prompt": "Question: Natalia sold clips ...\\nSolve step by step and end with the final answer as
          \\"#### <number>\\".\\nAnswer:", "completion": " Natalia sold 48/2 = 24 clips in May. ...\\n#### 72",
          "task": "gsm8k", "type": 0 (word_problem), "difficulty": 2, "answer": "72", "key": "natalia sold ..."}

GSM8K has no validation split: `--num-validation` rows (default 200) are held out of train, seeded. Calculator
notes (`<<48/2=24>>`) are removed from completions unless `--keep-calculator-annotations`.

In Python: `data_builders.gsm8k.build(source="openai/gsm8k", style="rl", num_train=1000)`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from datasets import DatasetDict

from mathalign.tasks import gsm8k as family
from mathalign.tasks.base import option

from . import adapted

NAME = "gsm8k"
SUMMARY = ("GSM8K grade-school math word problems (Cobbe et al., 2021) with prompts that ask for a final `#### N`, "
           "reference solutions and canonical gold answers.")


@dataclass
class GSM8KOptions(adapted.AdapterOptions):
    source: str = option(family.HUB_ID, "Hub dataset id (config main), or a local json/jsonl/parquet file or "
                                        "folder with train.* and test.* files")
    num_validation: int | None = option(200, "rows held out of the train split for validation", type=int)


def build(progress: bool | None = None, **options) -> DatasetDict:
    """GSM8K train/validation/test as sft- or rl-style rows; `options` are GSM8KOptions and GSM8KSpec fields."""
    options, spec = adapted.resolve(NAME, GSM8KOptions, options)
    load = functools.partial(family.load_rows, config=options.config)
    read = adapted.held_out_reader(load, options.source, options.num_validation or 0, options.seed)
    return adapted.build_adapted(NAME, options, spec, read, progress)


build.__signature__ = adapted.core.keyword_signature(GSM8KOptions, family.GSM8KSpec)


def add_arguments(parser) -> None:
    adapted.add_arguments(parser, NAME, GSM8KOptions)


def main(args) -> None:
    adapted.run(NAME, GSM8KOptions, build, SUMMARY, args, license="mit", source_datasets=[family.HUB_ID])


def make_parser():
    parser = adapted.core.make_parser(__doc__, f"python -m data_builders.{NAME}")
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    adapted.core.run_main(make_parser, main)

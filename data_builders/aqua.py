"""AQuA-RAT as mathalign rows: multiple-choice algebra questions answered with `Final Answer: <LETTER>`.

    python -m data_builders.aqua --out data/aqua --style rl                        # deepmind/aqua_rat from the Hub
    mathalign data build aqua --out data/aqua --source path/to/aqua --num-train 5000

    row  {"prompt": "Question: A car covers ...\\nOptions:\\nA) 53 km\\n...\\nExplain, then end with \\"Final Answer:
          <LETTER>\\".\\nAnswer:", "completion": " <rationale>\\nFinal Answer: E", "task": "aqua",
          "type": 0 (multiple_choice), "difficulty": 3, "answer": "E", "key": "a car covers ..."}

AQuA-RAT's own train/validation/test splits are kept; problems repeated across splits are kept only in the
earliest of test, validation, train.

In Python: `data_builders.aqua.build(source="deepmind/aqua_rat", style="rl")`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from datasets import DatasetDict

from mathalign.tasks import aqua as family
from mathalign.tasks.base import option

from . import adapted

NAME = "aqua"
SUMMARY = ("AQuA-RAT algebra word problems (Ling et al., 2017) as multiple-choice prompts that ask for "
           "`Final Answer: <LETTER>`, with rationales as reference completions.")


@dataclass
class AquaOptions(adapted.AdapterOptions):
    source: str = option(family.HUB_ID, "Hub dataset id (config raw), or a local json/jsonl/parquet file or "
                                        "folder with train.*, validation.* and test.* files")


def build(progress: bool | None = None, **options) -> DatasetDict:
    """AQuA-RAT train/validation/test as sft- or rl-style rows; `options` are AquaOptions fields."""
    options, spec = adapted.resolve(NAME, AquaOptions, options)
    read = functools.partial(family.load_rows, options.source, config=options.config)
    return adapted.build_adapted(NAME, options, spec, lambda split: read(split=split), progress)


build.__signature__ = adapted.core.keyword_signature(AquaOptions, family.AquaSpec)


def add_arguments(parser) -> None:
    adapted.add_arguments(parser, NAME, AquaOptions)


def main(args) -> None:
    adapted.run(NAME, AquaOptions, build, SUMMARY, args, source_datasets=[family.HUB_ID])


def make_parser():
    parser = adapted.core.make_parser(__doc__, f"python -m data_builders.{NAME}")
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    adapted.core.run_main(make_parser, main)

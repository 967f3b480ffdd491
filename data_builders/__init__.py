"""Data builders: one module per published dataset, each a seeded, verifiable DatasetDict with a card.

    >>> import data_builders
    >>> sft = data_builders.get_builder("sft")
    >>> dataset = sft.build(task="arithmetic", num_train=1000, seed=0)     # in-process, a DatasetDict

    python -m data_builders.sft --help                                     # or: mathalign data build sft --help

Every builder module has `build(**options) -> DatasetDict`, `add_arguments(parser)`, `main(args)` and
`make_parser()`. Builders are imported on first use, so `import data_builders` stays cheap.
"""

from __future__ import annotations

import importlib
from types import ModuleType

BUILDERS: dict[str, str] = {
    "pretrain": "text rows (prompt and target together) for pretraining",
    "sft": "prompt/completion rows for supervised fine-tuning",
    "preferences": "prompt/chosen/rejected rows for DPO",
    "rl": "prompt + gold answer rows for GRPO",
    "gsm8k": "GSM8K word problems (#### N) as sft or rl rows",
    "aqua": "AQuA-RAT multiple choice (Final Answer: C) as sft or rl rows",
}


def get_builder(name: str) -> ModuleType:
    """The builder module called `name`; ValueError listing the valid names otherwise."""
    if name not in BUILDERS:
        raise ValueError(f"unknown data builder {name!r}; valid builders: {sorted(BUILDERS)}")
    return importlib.import_module(f"{__name__}.{name}")


__all__ = ["BUILDERS", "get_builder"]

"""What the gsm8k and aqua builders share: existing datasets turned into mathalign rows through their adapters.

Rows are read with the family's `load_rows` (a Hub id, or local json/jsonl/parquet), converted with `from_row`,
deduplicated by key, and made disjoint: test first, then validation, then train drop any problem an earlier split
holds. Sizes left as None take every row; asking for more rows than a split has raises a ValueError naming the size.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from dataclasses import dataclass
from typing import Any

from datasets import DatasetDict, Features, Value

from mathalign.tasks import get_task
from mathalign.tasks.base import option, spec_to_dict

from . import core

STYLES = ("sft", "rl")
STYLE_FEATURES = {
    "sft": {"prompt": Value("string"), "completion": Value("string")},
    "rl": {"prompt": Value("string")},
}


@dataclass
class AdapterOptions:
    source: str = option("", "Hub dataset id, or a local json/jsonl/parquet file or folder with <split>.* files "
                         "(subclasses set the family's Hub id)")
    config: str | None = option(None, "Hub dataset config (default: the family's, e.g. main for openai/gsm8k)",
                                type=str)
    style: str = option("sft", "row format: sft (prompt/completion) or rl (prompt + gold answer)", choices=STYLES)
    num_train: int | None = option(None, "rows in train (default: all)", type=int)
    num_validation: int | None = option(None, "rows in validation (default: all)", type=int)
    num_test: int | None = option(None, "rows in test (default: all)", type=int)
    seed: int = option(0, "random seed for subsampling and held-out validation rows")

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        for name in ("num_train", "num_validation", "num_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be an integer >= 0 (or None for all rows), got {value!r}")

    @property
    def sizes(self) -> dict[str, int | None]:
        return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}


def resolve(family: str, options_class: type, raw: dict[str, Any]):
    own = {f.name for f in dataclasses.fields(options_class)}
    task = get_task(family)
    spec_names = {f.name for f in dataclasses.fields(task.spec_class)}
    unknown = sorted(set(raw) - own - spec_names)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid options: {sorted(own | spec_names)}")
    options = options_class(**{k: v for k, v in raw.items() if k in own})
    spec = task.make_spec(**{k: v for k, v in raw.items() if k in spec_names})
    return options, spec


def build_adapted(family: str, options, spec, read_split, progress: bool | None = None) -> DatasetDict:
    """Typed splits from `read_split(split)`, the raw rows of train/validation/test (see gsm8k.py, aqua.py)."""
    task = get_task(family)
    sizes = options.sizes
    problems = {}
    for split in ("test", "validation", "train"):
        rows = read_split(split)
        converted = []
        for i, row in enumerate(rows):
            try:
                converted.append(task.from_row(row, spec))
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{options.source or family} ({split}): row {i}: {err}") from None
        problems[split] = converted
    seen: set[str] = set()
    out = DatasetDict()
    features = Features({**STYLE_FEATURES[options.style], **core.common_features([family])})
    description = f"mathalign {family} dataset. Rebuild with: {command(family, options, spec)}"
    for split in ("test", "validation", "train"):
        unique = []
        for problem in problems[split]:
            if problem.key not in seen:
                seen.add(problem.key)
                unique.append(problem)
        wanted = sizes[split]
        if wanted is not None:
            if wanted > len(unique):
                raise ValueError(f"num_{split}={wanted} but the {split} split has {len(unique)} distinct problems "
                                 f"(after removing those in earlier splits)")
            rng = random.Random(f"mathalign:{options.seed}:{split}")
            unique = [unique[i] for i in sorted(rng.sample(range(len(unique)), wanted))]
        if not unique:
            continue
        pairs = [(family, p) for p in unique]
        columns = {"prompt": [p.prompt for p in unique]}
        if options.style == "sft":
            columns["completion"] = [p.target for p in unique]
        columns.update(core.common_columns(pairs, [family]))
        out[split] = core.make_dataset(columns, features, split, description)
    return DatasetDict({split: out[split] for split in ("train", "validation", "test") if split in out})


def command(family: str, options, spec) -> str:
    return core.command_line(family, options, {family: spec})


def held_out_reader(load_rows, source: str, num_validation: int, seed: int):
    """A `read_split` for datasets without a validation split (GSM8K): validation rows are held out of train."""
    cache: dict[str, list] = {}

    def read_split(split: str) -> list:
        if split == "test":
            return load_rows(source, "test")
        if not cache:
            rows = load_rows(source, "train")
            if num_validation > len(rows):
                raise ValueError(f"num_validation={num_validation} but {source} train has only {len(rows)} rows")
            held = set(random.Random(f"mathalign:{seed}:held_out").sample(range(len(rows)), num_validation))
            cache["validation"] = [r for i, r in enumerate(rows) if i in held]
            cache["train"] = [r for i, r in enumerate(rows) if i not in held]
        return cache[split]

    return read_split


def add_arguments(parser, family: str, options_class: type) -> None:
    group = parser.add_argument_group("dataset")
    core.add_dataclass_arguments(group, options_class)
    core.add_dataclass_arguments(parser.add_argument_group(f"{family} options"), get_task(family).spec_class,
                                 suppress=True)
    core.add_output_arguments(parser)


def run(family: str, options_class: type, build, summary: str, args: argparse.Namespace, **card_options):
    core.check_out(args)  # before reading or downloading anything
    raw = core.options_from_args(args)
    dataset_dict = build(progress=args.progress, **raw)
    options, spec = resolve(family, options_class, raw)
    parameters = {**spec_to_dict(options), family: spec_to_dict(spec)}
    return core.finish(dataset_dict, args, family, parameters, command(family, options, spec), summary,
                       **card_options)

"""Rows and datasets: typed Features, the columns every row carries, Arrow tables with content-derived
fingerprints, so that the same options and seed give byte-identical Arrow files and fingerprints.

A build with a surface split (test_surface, validation_surface) also has a `form` column, in every split so that
they all share one schema (a Hub or parquet dataset needs that): the way a surface row is written (the family's
`meta["form"]`, e.g. `spacing`), empty for the rows of the other splits.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    DatasetInfo,
    Features,
    NamedSplit,
    Value,
)

from mathalign.tasks import Problem, get_task
from mathalign.tasks.base import spec_to_dict

from .options import SURFACE_SPLITS, command_line, omitted, resolve_options
from .sampling import draw_splits


def type_names(families) -> list[str]:
    """ClassLabel names for the `type` column: every type of every family, in family order."""
    names: list[str] = []
    for family in families:
        for name in get_task(family).types:
            if name in names:
                raise ValueError(f"type name {name!r} is used by two families; ClassLabel names must be unique")
            names.append(name)
    return names


def common_features(families) -> dict[str, Any]:
    """The columns every mathalign row carries besides the TRL ones (rewards and evaluation dispatch on them)."""
    return {
        "task": Value("string"),  # the problem family: get_task(row["task"]) checks the row
        "type": ClassLabel(names=type_names(families)),  # problem type, for per-type accuracy
        "difficulty": Value("int32"),  # digits (arithmetic), operations (expressions), steps (gsm8k/aqua)
        "answer": Value("string"),  # gold answer, canonical: "18", "-3", "ERROR", "C"
        "key": Value("string"),  # canonical problem identity; splits are disjoint on it
    }


def common_columns(rows: list[tuple[str, Problem]], families) -> dict[str, list]:
    index = {name: i for i, name in enumerate(type_names(families))}
    return {
        "task": [family for family, _ in rows],
        "type": [index[p.type] for _, p in rows],
        "difficulty": [p.difficulty for _, p in rows],
        "answer": [p.answer for _, p in rows],
        "key": [p.key for _, p in rows],
    }


def make_dataset(columns: dict[str, list], features: Features, split: str, description: str) -> Dataset:
    """A Dataset straight from column lists (no per-row encoding), with a fingerprint derived from its content
    recipe so that identical builds save identical `state.json` files."""
    table = pa.Table.from_pydict({name: columns[name] for name in features}, schema=features.arrow_schema)
    fingerprint = hashlib.sha256(f"{description}\n{split}".encode()).hexdigest()[:16]
    info = DatasetInfo(description=description, features=features)
    return Dataset(table, info=info, split=NamedSplit(split), fingerprint=fingerprint)


def build_generated(builder: str, options_class: type, raw_options: dict[str, Any],
                    row_columns: Callable, extra_features: dict[str, Any], progress: bool | None = None,
                    ) -> DatasetDict:
    """Draw the problems for every split and turn them into typed datasets.

    `row_columns(rows, options, specs, split)` returns the builder's own columns (prompt/completion, ...) for a list
    of (family, Problem) pairs; `extra_features` types them and comes first in the schema.
    """
    options, specs = resolve_options(options_class, raw_options)
    forms = any(options.sizes[split] for split in SURFACE_SPLITS)
    features = Features({**extra_features, **common_features(options.task), **(FORM_FEATURE if forms else {})})
    description = describe(builder, options, specs)
    result = DatasetDict()
    for split, rows in draw_splits(options, specs, progress).items():
        columns = {**row_columns(rows, options, specs, split), **common_columns(rows, options.task)}
        if forms:
            columns["form"] = form_column(rows, split)
        result[split] = make_dataset(columns, features, split, description)
    return result


FORM_FEATURE = {"form": Value("string")}  # how a surface split's row is written: `spacing`, `operand_order`, ...


def form_column(rows: list[tuple[str, Problem]], split: str) -> list[str]:
    """The `form` of each row: the way a surface split's problem is written (its `meta["form"]`), else empty."""
    if split not in SURFACE_SPLITS:
        return [""] * len(rows)
    return [str(p.meta.get("form", "")) for _, p in rows]


def describe(builder: str, options, specs: dict[str, Any]) -> str:
    """The description stored in every split's DatasetInfo: what it is and the command that rebuilds it."""
    return (f"mathalign {builder} dataset ({', '.join(specs) or builder}). Rebuild with: "
            f"{command_line(builder, options, specs)}")


def build_parameters(options, specs: dict[str, Any]) -> dict[str, Any]:
    """The card's `parameters`: every option of the build and of each family's spec, but those the rebuild command
    leaves out too (`options.omitted`: later options at their defaults)."""
    params = _parameters(options)
    for family, spec in specs.items():
        params[family] = _parameters(spec)
    return params


def _parameters(obj) -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    return {name: value for name, value in spec_to_dict(obj).items() if not omitted(obj, fields[name])}

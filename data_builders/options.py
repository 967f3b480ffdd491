"""Build options: the options every generated dataset takes (`BuildOptions`), the up-front size checks, the split of
`build(**options)` into builder options and family specs, the command-line flags and the command that rebuilds a
dataset.

- Splits (SPLITS, in the order a DatasetDict lists them): train; validation and test; their surface-variant
  twins validation_surface and test_surface (problems drawn like test, each written another way a person would
  write it: `Task.surface_variant`); validation_uniform and test_uniform (operands drawn uniformly over the whole
  range rather than digit-balanced: the family spec's `uniform()`); test_ood (longer operands, deeper
  expressions: the spec's `ood_specs()`). The new held-out splits are empty by default (num_test_surface=0...), so
  builds that do not ask for them are byte-identical to those made before they existed.
- Impossible requests fail before any work: a build of more than MAX_ROWS rows (100 million, train_offset
  included) or of more rows than this machine's memory could hold while building (at least BYTES_PER_ROW, 1 KB, a
  row: a 1,000,000-row build peaks at 1.1-1.6 GB) raises a ValueError naming the sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import DatasetDict

from mathalign.tasks import GENERATIVE_TASKS, get_task
from mathalign.tasks.base import option

SPLITS = ("train", "validation", "validation_surface", "validation_uniform", "test", "test_surface", "test_uniform",
          "test_ood")
SURFACE_SPLITS = ("test_surface", "validation_surface")  # each problem rewritten by `task.surface_variant`
UNIFORM_SPLITS = ("test_uniform", "validation_uniform")  # drawn from `spec.uniform()`
# Held-out splits are drawn first so they stay the same when only num_train changes (an evaluation build with
# num_train=0 holds the very problems the training build held out); test_ood comes from different specs (longer
# operands, deeper trees), so it is disjoint from the others whatever the order.
SAMPLING_ORDER = ("test", "validation", *SURFACE_SPLITS, *UNIFORM_SPLITS, "train", "test_ood")
HELD_OUT = ("test", "validation", *SURFACE_SPLITS, *UNIFORM_SPLITS)  # drawn from the training problems, kept out
IN_DISTRIBUTION = (*HELD_OUT, "train")  # one set of problems, each split with its own weights over it
SIZE_FIELDS = {split: f"num_{split}" for split in SPLITS}
STANDARD_SPLITS = ("train", "validation", "test", "test_ood")  # always spelled out in size messages
PROGRESS_MIN_ROWS = 50_000  # smaller builds finish before a progress bar says anything useful
MAX_ROWS = 100_000_000  # rows (train_offset included) one build may draw: ~100 GB of memory, hours of drawing
BYTES_PER_ROW = 1_000  # the least memory a row takes while building (measured: 1.1-1.6 KB)


@dataclass
class BuildOptions:
    """Options every generated dataset takes. Family options (min_digits, max_depth, ...) come from the specs."""

    task: tuple[str, ...] = option(("arithmetic",), f"problem families to mix: {' '.join(GENERATIVE_TASKS)}",
                                   nargs="+")
    task_weights: tuple[float, ...] | None = option(None, "share of each family, in --task order (default: even)",
                                                    nargs="+", type=float)
    num_train: int = option(10_000, f"rows in the train split (a build holds at most {MAX_ROWS:,} rows)")
    num_validation: int = option(500, "rows in the validation split (0: no such split)")
    num_test: int = option(1_000, "rows in the test split (0: no such split)")
    num_test_ood: int = option(500, "rows in test_ood: longer operands / deeper expressions than training (needs "
                                    "0 when training already uses the largest: --max-digits 18)")
    # The held-out splits below are left out of the rebuild command while empty (omit_default), so builds without
    # them keep the bytes they had before these options existed.
    num_validation_surface: int = option(0, "rows in validation_surface: problems drawn like test, each written "
                                            "another way a person would (spacing, operand order, parentheses)",
                                         omit_default=True)
    num_test_surface: int = option(0, "rows in test_surface: problems drawn like test, each written another way a "
                                      "person would (spacing, operand order, parentheses); its `form` column "
                                      "names the way", omit_default=True)
    num_validation_uniform: int = option(0, "rows in validation_uniform: operands drawn uniformly over the whole "
                                            "range (mostly the longest) instead of digit-balanced",
                                         omit_default=True)
    num_test_uniform: int = option(0, "rows in test_uniform: operands drawn uniformly over the whole range (for "
                                      "--max-digits 2, 4 pairs in 5 are 2-digit x 2-digit) instead of "
                                      "digit-balanced", omit_default=True)
    seed: int = option(0, "random seed; the same options and seed give byte-identical datasets")
    train_offset: int = option(0, "leave out the train problems that a build with num_train=N (same seed, spec "
                                  "and held-out split sizes) holds, so a later stage trains on prompts an earlier "
                                  "one never saw")
    train_by_shape: bool = option(False, "train takes each stratum (operand shape) in proportion to what earlier "
                                         "splits and segments left of it, so that a later build with "
                                         "train_offset still finds every shape; the mix is then close to uniform "
                                         "over problems rather than digit-balanced. Set it on the earlier build "
                                         "too, or the problems train_offset leaves out are not the ones that build "
                                         "drew (off: train draws digit-balanced, so the first segment uses up the "
                                         "small shapes)")

    def __post_init__(self):
        if isinstance(self.task, str):
            self.task = tuple(t for t in self.task.replace(",", " ").split())
        self.task = tuple(self.task)
        if not self.task:
            raise ValueError(f"task needs at least one family: {GENERATIVE_TASKS}")
        for name in self.task:
            get_task(name)  # unknown names raise with the valid ones
            if name not in GENERATIVE_TASKS:
                raise ValueError(f"task {name!r} does not generate problems (use its own builder); "
                                 f"generated families: {GENERATIVE_TASKS}")
        if len(set(self.task)) != len(self.task):
            raise ValueError(f"task lists a family twice: {self.task}")
        if self.task_weights is not None:
            self.task_weights = tuple(float(w) for w in self.task_weights)
            if (len(self.task_weights) != len(self.task) or not all(0 <= w < math.inf for w in self.task_weights)
                    or sum(self.task_weights) <= 0):
                raise ValueError(f"task_weights needs one non-negative weight per task {self.task}, "
                                 f"got {self.task_weights}")
        for split, name in SIZE_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not isinstance(self.train_offset, int) or isinstance(self.train_offset, bool) or self.train_offset < 0:
            raise ValueError(f"train_offset must be an integer >= 0, got {self.train_offset!r}")
        if not isinstance(self.train_by_shape, bool):
            raise ValueError(f"train_by_shape must be true or false, got {self.train_by_shape!r}")
        if not any(self.sizes.values()):
            raise ValueError("every split size is 0: nothing to build")
        offset = self.train_offset if self.num_train else 0  # the rows train_offset leaves out are drawn too
        named = [name for split, name in SIZE_FIELDS.items() if split in STANDARD_SPLITS or self.sizes[split]]
        check_row_count(sum(self.sizes.values()) + offset, offset, named)

    @property
    def sizes(self) -> dict[str, int]:
        return {split: getattr(self, name) for split, name in SIZE_FIELDS.items()}

    @property
    def family_weights(self) -> dict[str, float]:
        weights = self.task_weights or (1.0,) * len(self.task)
        return {name: w / sum(weights) for name, w in zip(self.task, weights)}


def check_row_count(rows: int, train_offset: int = 0, size_fields=None) -> None:
    """Refuse, before any work, a build of more than MAX_ROWS rows or of more rows than this machine's memory could
    hold while building (BYTES_PER_ROW each); `rows` counts the train_offset rows, which are drawn again, and
    `size_fields` names the sizes it adds up (default: those of the standard splits)."""
    names = list(size_fields or [SIZE_FIELDS[split] for split in STANDARD_SPLITS])
    sizes = " + ".join(names + (["train_offset"] if train_offset else []))
    if rows > MAX_ROWS:
        raise ValueError(f"{sizes} = {rows:,} rows, more than the {MAX_ROWS:,} one build may hold (each takes about "
                         f"{BYTES_PER_ROW:,} bytes of memory while building); ask for fewer rows")
    memory = memory_limit_bytes()
    if memory is not None and rows * BYTES_PER_ROW > memory:
        raise ValueError(f"{sizes} = {rows:,} rows need at least {rows * BYTES_PER_ROW / 1e9:,.1f} GB of memory while "
                         f"building ({BYTES_PER_ROW:,} bytes a row), more than this machine's {memory / 1e9:,.1f} GB; "
                         f"ask for at most {memory // BYTES_PER_ROW:,} rows")


def memory_limit_bytes() -> int | None:
    """The memory this process could ever use: the machine's RAM, or a smaller cgroup (container) limit; None when
    unknown."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            limits.append(int(value))
    limits = [limit for limit in limits if limit > 0]
    return min(limits) if limits else None


# ---------------------------------------------------------------------------------------------------------------
# Options: `build(**options)` keyword arguments and command-line flags, both generated from dataclass fields.


def resolve_options(options_class: type, raw: dict[str, Any]):
    """Split `build(**raw)` into the builder's options and one spec per family; unknown names raise ValueError."""
    own = {f.name for f in dataclasses.fields(options_class)}
    builder_kwargs = {k: v for k, v in raw.items() if k in own}
    options = options_class(**builder_kwargs)
    spec_kwargs: dict[str, dict[str, Any]] = {name: {} for name in options.task}
    for name, value in raw.items():
        if name in own:
            continue
        families = [f for f in GENERATIVE_TASKS if name in _spec_fields(f)]
        if not families:
            valid = sorted(own | {n for f in GENERATIVE_TASKS for n in _spec_fields(f)})
            raise ValueError(f"unknown option {name!r}; valid options: {valid}")
        chosen = [f for f in families if f in options.task]
        if not chosen:
            raise ValueError(f"option {name!r} belongs to {families[0]}, which is not in task={list(options.task)}")
        for family in chosen:
            spec_kwargs[family][name] = value
    specs = {family: get_task(family).make_spec(**kwargs) for family, kwargs in spec_kwargs.items()}
    return options, specs


def keyword_signature(*classes: type) -> inspect.Signature:
    """The keyword-only signature `build(**options)` really has (fields of `classes`, then `progress`), so that
    `help(build)` and `inspect.signature(build)` list every option with its default."""
    params, seen = [], set()
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.init and f.name not in seen:
                seen.add(f.name)
                params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default))
    params.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=None))
    return inspect.Signature(params, return_annotation=DatasetDict)


def generated_signature(options_class: type) -> inspect.Signature:
    return keyword_signature(options_class, *(get_task(f).spec_class for f in GENERATIVE_TASKS))


def _spec_fields(family: str) -> list[str]:
    return [f.name for f in dataclasses.fields(get_task(family).spec_class) if f.init]


def add_dataclass_arguments(parser, cls, suppress: bool = False, skip=()) -> None:
    """Add to `parser` (a parser or an argument group) one `--flag` per field of `cls` that has help text, also
    spelled `--flag_name`, with the field's help text and its default; `_cli_field` says how each is read:

    - a bool field is `--flag [BOOL]` (alone: true; or yes/no, true/false, t/f, y/n, 1/0) plus `--no-flag`;
    - a field with `nargs` takes one or more values of its `type` (the dataclass checks how many it needs);
    - any other field takes one value of its `type`, or of its default's type, out of its `choices` if it has any.

    These are the spellings and value syntax of transformers' `HfArgumentParser`, which `mathalign train` reads
    recipes with (through TRL's `TrlParser`), so a data-build flag is written like a training one. The flags are
    built with argparse itself: HfArgumentParser takes neither these fields' declared types (tuples, unions) nor an
    existing parser or group to add to. With `suppress`, flags not given are left out of the parsed namespace, so
    the dataclass's own defaults apply.
    """
    for f in dataclasses.fields(cls):
        if not f.init or "help" not in f.metadata or f.name in skip:
            continue
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        parser.add_argument(*names, **_cli_field(f, suppress))
        if isinstance(f.default, bool):
            dashed = f.name.replace("_", "-")
            parser.add_argument(f"--no-{dashed}", f"--no_{f.name}", action="store_false", dest=f.name,
                                default=argparse.SUPPRESS, help=f"not --{dashed}")


def _cli_field(f: dataclasses.Field, suppress: bool) -> dict[str, Any]:
    """The `add_argument` keywords of field `f` as the command line sees it: its help text with the default, the
    default (argparse.SUPPRESS with `suppress`), and the type and number of values it takes."""
    meta, default = f.metadata, f.default
    kwargs: dict[str, Any] = {"help": meta["help"] + ("" if default is None else f" (default: {_show(default)})"),
                              "default": argparse.SUPPRESS if suppress else default}
    if isinstance(default, bool):
        from transformers.hf_argparser import string_to_bool  # the yes/no, true/false, ... HfArgumentParser reads

        kwargs.update(type=string_to_bool, nargs="?", const=True)  # `--flag` alone is true
    elif "nargs" in meta:
        kwargs.update(type=meta.get("type") or (type(default[0]) if default else str), nargs="+")
    else:
        kwargs["type"] = meta.get("type") or (str if default is None else type(default))
    if "choices" in meta:
        kwargs["choices"] = meta["choices"]
    return kwargs


def add_generation_arguments(parser, options_class: type = BuildOptions) -> None:
    """The builder's options, then every generative family's spec options (used when that family is in --task)."""
    add_dataclass_arguments(parser.add_argument_group("dataset"), options_class)
    added: set[str] = set()  # an option several families have (surface_variants) is one flag, for all of them
    for family in GENERATIVE_TASKS:
        fields = _spec_fields(family)
        shared = [f"--{name.replace('_', '-')}" for name in fields if name in added]
        group = parser.add_argument_group(f"{family} options (with --task {family})",
                                          f"also {', '.join(shared)} (above)" if shared else None)
        add_dataclass_arguments(group, get_task(family).spec_class, suppress=True, skip=added)
        added.update(fields)
    add_output_arguments(parser)


def add_output_arguments(parser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--out", required=True, help="folder to write the dataset and its README.md card to; an "
                       "existing file or non-empty folder is refused before any work, unless --overwrite")
    group.add_argument("--overwrite", action="store_true",
                       help="replace --out if it is an existing file or non-empty folder (everything in it is "
                            "deleted once the new dataset is complete)")
    group.add_argument("--format", choices=("arrow", "parquet"), default="arrow",
                       help="arrow: DatasetDict.save_to_disk (load_from_disk); parquet: data/<split>-*.parquet "
                            "(load_dataset) (default: arrow)")
    group.add_argument("--push-to-hub", metavar="REPO_ID", default=None,
                       help="also publish to the Hub as a dataset repo (with the card)")
    group.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None,
                       help="no progress bars (default: bars for builds of 50,000 rows or more)")


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The `build(**options)` keyword arguments a parsed command line stands for (family flags only when given)."""
    skip = {"out", "overwrite", "format", "push_to_hub", "progress", "func", "command", "data_command", "builder"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def command_line(builder: str, obj_options, specs: dict[str, Any] | None = None) -> str:
    """`mathalign data build <builder> ...` with every option spelled out: the exact command that rebuilds it."""
    parts = ["mathalign", "data", "build", builder, "--out", "OUT_DIR"]
    for obj in [obj_options, *(specs or {}).values()]:
        for f in dataclasses.fields(obj):
            if not f.init or "help" not in f.metadata or omitted(obj, f):
                continue
            value = getattr(obj, f.name)
            flag = "--" + f.name.replace("_", "-")
            if value is None:
                continue
            if isinstance(value, bool):
                parts.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, dict):
                parts += [flag, *(f"{k}={_show(v)}" for k, v in value.items())]
            elif isinstance(value, (tuple, list)):
                parts += [flag, *(_show(v) for v in value)]
            else:
                parts += [flag, _show(value)]
    return " ".join(shlex.quote(str(p)) for p in parts)


def omitted(obj, f: dataclasses.Field) -> bool:
    """Whether option `f` of `obj` is left out of the rebuild command and the card's parameters: it is marked
    `omit_default` (an option added after datasets were published) and has its default, so that builds which do
    not use it keep their bytes."""
    return bool(f.metadata.get("omit_default")) and getattr(obj, f.name) == f.default


def _show(value) -> str:
    if isinstance(value, float) and value == int(value):
        return str(int(value)) if abs(value) >= 1 else repr(value)
    if isinstance(value, (tuple, list)):
        return " ".join(_show(v) for v in value)
    return str(value)

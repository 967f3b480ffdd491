"""The machinery every data builder shares: options, problem sampling, typed datasets, cards, saving, the CLI tail.

A builder module (sft, pretrain, preferences, rl) only says how a Problem becomes a row; this module draws the
problems. How it keeps its promises:

- Disjoint splits by construction: splits are drawn one after another (test, validation, train, then test_ood)
  and a problem whose `key` an earlier split holds is drawn again. Each split has its own seeded RNG, so the test
  set does not move when num_train changes. `train_offset=N` leaves out the train problems of the same build with
  num_train=N, so that stages can train on disjoint prompts (SFT on the first N, DPO or GRPO on new ones).
- Exact mixes: each (family, type) gets its share of every split by largest remainder, so 1,000 rows over the
  nine arithmetic types are 112/111/.../111 rather than a random draw.
- Training sees every kind of problem: a held-out split takes at most twice its overall share of any stratum (for
  arithmetic, an operand shape: 1x1, 1x2, 2x2 digits; `held_out_caps`), so small buckets such as the 55 products of
  two 1-digit numbers, or the 900 of a 1-digit and a 2-digit number, are not all held out. With
  `train_by_shape`, each train segment takes each stratum in proportion to what earlier splits and segments left
  of it (`train_caps`), so the prompts after a train_offset still hold every shape instead of what the first train
  segment left over.
- Impossible requests fail before any work: a split asking for more problems of a type than exist (the family
  counts them) raises a ValueError naming the sizes, and so does a build of more than MAX_ROWS rows (100 million,
  train_offset included) or of more rows than this machine's memory could hold while building (at least
  BYTES_PER_ROW, 1 KB, a row: a 1,000,000-row build peaks at 1.1-1.6 GB).
- Byte-identical outputs: same options and seed, same rows, same Arrow files, same fingerprints, same card.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import math
import os
import random
import shlex
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import datasets
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, NamedSplit, Value
from tqdm.auto import tqdm

from mathalign.tasks import GENERATIVE_TASKS, Problem, get_task
from mathalign.tasks.base import option, spec_to_dict

from . import outputs

SPLITS = ("train", "validation", "test", "test_ood")
# Evaluation splits are drawn first so they stay the same when only num_train changes; test_ood comes from a
# different spec (longer operands, deeper trees), so it is disjoint from the others whatever the order.
SAMPLING_ORDER = ("test", "validation", "train", "test_ood")
IN_DISTRIBUTION = ("test", "validation", "train")
SIZE_FIELDS = {split: f"num_{split}" for split in SPLITS}
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
    seed: int = option(0, "random seed; the same options and seed give byte-identical datasets")
    train_offset: int = option(0, "leave out the train problems that a build with num_train=N (same seed and "
                                  "spec) holds, so a later stage trains on prompts an earlier one never saw")
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
        check_row_count(sum(self.sizes.values()) + offset, offset)

    @property
    def sizes(self) -> dict[str, int]:
        return {split: getattr(self, name) for split, name in SIZE_FIELDS.items()}

    @property
    def family_weights(self) -> dict[str, float]:
        weights = self.task_weights or (1.0,) * len(self.task)
        return {name: w / sum(weights) for name, w in zip(self.task, weights)}


def check_row_count(rows: int, train_offset: int = 0) -> None:
    """Refuse, before any work, a build of more than MAX_ROWS rows or of more rows than this machine's memory could
    hold while building (BYTES_PER_ROW each); `rows` counts the train_offset rows, which are drawn again."""
    sizes = "num_train + num_validation + num_test + num_test_ood" + (" + train_offset" if train_offset else "")
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


def add_dataclass_arguments(parser, cls, suppress: bool = False) -> None:
    """One `--flag` per field of `cls`, typed from its default, with the field's help text.

    With `suppress`, flags not given are left out of the parsed namespace, so the dataclass's own defaults apply.
    """
    for f in dataclasses.fields(cls):
        if not f.init or "help" not in f.metadata:
            continue
        meta, default = f.metadata, f.default
        kwargs: dict[str, Any] = {"help": meta["help"] + ("" if default is None else f" (default: {_show(default)})")}
        if suppress:
            kwargs["default"] = argparse.SUPPRESS
        else:
            kwargs["default"] = default
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif "nargs" in meta:
            kwargs["nargs"] = meta["nargs"]
            kwargs["type"] = meta.get("type") or (type(default[0]) if default else str)
        else:
            kwargs["type"] = meta.get("type") or type(default)
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        parser.add_argument(flag, dest=f.name, **kwargs)


def add_generation_arguments(parser, options_class: type = BuildOptions) -> None:
    """The builder's options, then every generative family's spec options (used when that family is in --task)."""
    add_dataclass_arguments(parser.add_argument_group("dataset"), options_class)
    for family in GENERATIVE_TASKS:
        group = parser.add_argument_group(f"{family} options (with --task {family})")
        add_dataclass_arguments(group, get_task(family).spec_class, suppress=True)
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
            if not f.init or "help" not in f.metadata:
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


def _show(value) -> str:
    if isinstance(value, float) and value == int(value):
        return str(int(value)) if abs(value) >= 1 else repr(value)
    if isinstance(value, (tuple, list)):
        return " ".join(_show(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Drawing problems.

Label = tuple[str, str]  # (family, type)


def allocate(total: int, weights: dict[Any, float]) -> dict[Any, int]:
    """Split `total` rows by `weights` exactly (largest remainder; ties go to the earlier label)."""
    norm = sum(weights.values())
    exact = {label: total * w / norm for label, w in weights.items()}
    counts = {label: int(x) for label, x in exact.items()}
    left = total - sum(counts.values())
    by_remainder = sorted(exact, key=lambda label: -(exact[label] - counts[label]))  # stable: ties keep order
    for label in by_remainder[:left]:
        counts[label] += 1
    return counts


def plan_quotas(options: BuildOptions, specs: dict[str, Any]) -> dict[str, dict[Label, int]]:
    """Rows per (family, type) per split; checks every request against the number of distinct problems."""
    weights: dict[Label, float] = {}
    for family, share in options.family_weights.items():
        for type, w in specs[family].type_weights.items():
            weights[(family, type)] = share * w
    quotas = {split: allocate(n, weights) for split, n in options.sizes.items() if n}
    skipped = allocate(options.train_offset, weights) if options.train_offset and "train" in quotas else {}
    for family, type in weights:
        task = get_task(family)
        for splits in (IN_DISTRIBUTION, ("test_ood",)):
            wanted = sum(quotas.get(split, {}).get((family, type), 0) for split in splits)
            if not wanted:
                continue
            offset = skipped.get((family, type), 0) if splits == IN_DISTRIBUTION else 0
            wanted += offset  # the problems train_offset leaves out are drawn all the same
            spec = specs[family].ood() if splits == ("test_ood",) else specs[family]
            available = task.num_distinct(spec, type)
            if available is not None and wanted > available:
                names = " + ".join([SIZE_FIELDS[s] for s in SPLITS if s in splits and s in quotas]
                                   + (["train_offset"] if offset else []))
                raise ValueError(
                    f"{names} asks for {wanted} distinct {family} problems of type {type!r}, but the spec "
                    f"{_short_spec(spec)} has only {available}; lower {names} or widen the spec"
                )
    return quotas


def _short_spec(spec) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in spec_to_dict(spec).items() if k != "types") + ")"


def draw_splits(options: BuildOptions, specs: dict[str, Any], progress: bool | None = None,
                ) -> dict[str, list[tuple[str, Problem]]]:
    """(family, Problem) pairs for every non-empty split, disjoint by key across all splits."""
    quotas = plan_quotas(options, specs)
    total = sum(options.sizes.values())
    seen: dict[str, set[str]] = {family: set() for family in options.task}
    drawn_strata: dict[Label, Counter] = {}  # under train_by_shape: strata drawn so far per (family, type)
    out = {}
    # progress=None: a bar for big builds on a terminal (tqdm's disable=None), none for small ones
    disable = (None if total >= PROGRESS_MIN_ROWS else True) if progress is None else not progress

    def draw_segment(split: str, segment: dict[Label, int], rng: random.Random, bar) -> list[tuple[str, Problem]]:
        """The rows of one split, or of the train segment a train_offset build replays (the same code, so the
        replay draws exactly what the earlier build did)."""
        rows: list[tuple[str, Problem]] = []
        for (family, type), count in segment.items():
            task, label = get_task(family), (family, type)
            spec = specs[family].ood() if split == "test_ood" else specs[family]
            shaped = options.train_by_shape and split in IN_DISTRIBUTION  # what train segments share out
            tally = drawn_strata.setdefault(label, Counter()) if shaped else None
            if split == "train":
                caps = train_caps(task, spec, type, count, tally) if tally is not None else None
            else:
                caps = held_out_caps(task, spec, label, quotas, split)
            rows += _draw_unique(task, family, type, spec, count, seen[family], rng, bar, split, caps, tally)
        return rows

    with tqdm(total=total, desc="drawing problems", unit="row", disable=disable, dynamic_ncols=True) as bar:
        for split in SAMPLING_ORDER:
            if split not in quotas:
                continue
            rng = random.Random(f"mathalign:{options.seed}:{split}")
            if split == "train" and options.train_offset:
                # Draw exactly what a build with num_train=train_offset holds, mark it seen, and go on with an RNG
                # of its own: the rows that follow are new problems.
                offset_quotas = plan_quotas(dataclasses.replace(options, num_train=options.train_offset,
                                                                train_offset=0), specs)["train"]
                draw_segment(split, offset_quotas, rng, None)
                rng = random.Random(f"mathalign:{options.seed}:{split}:after:{options.train_offset}")
            rows = draw_segment(split, quotas[split], rng, bar)
            rng.shuffle(rows)
            out[split] = rows
    return {split: out[split] for split in SPLITS if split in out}


def held_out_caps(task, spec, label: Label, quotas, split) -> dict | None:
    """{stratum: most problems `split` may take} for a held-out split (test, validation), or None (no caps).

    Operands are drawn digit-balanced, so a quarter of the draws of `a*b` are two 1-digit numbers, of which there
    are only 55, and half are a 1-digit times a 2-digit number, 900 of the 5,050. Uncapped, the held-out splits would
    take all of the first and most of the second, and training would hardly see `3*4=?` or `3*47=?`. So a held-out
    split takes at most twice its overall share of the type from any stratum (`task.num_distinct_per_stratum`): 111
    test problems of `a*b` (2.2% of 5,050) hold at most 3 of the 55 and 40 of the 900. Caps apply while the
    held-out splits ask for at most half of the type's problems (then every cap can be met), and only to families
    that count their problems per stratum.
    """
    if split not in ("test", "validation"):
        return None
    sizes = _strata_sizes(task, spec, label[1])
    if sizes is None:
        return None
    total = sum(sizes.values())
    held_out = sum(quotas.get(s, {}).get(label, 0) for s in ("test", "validation"))
    if 2 * held_out > total:
        return None
    share = 2 * quotas[split][label] / total
    return {stratum: math.ceil(size * share) for stratum, size in sizes.items()}


def train_caps(task, spec, type: str, count: int, drawn: Counter) -> dict | None:
    """{stratum: most problems this train segment may take} under train_by_shape, or None (no caps); `drawn`
    counts the problems of `type` earlier splits and segments took, per stratum.

    Each stratum gives at most its proportional share of what is left of the type: 2,500 of the 3,550 products
    the lab's held-out splits leave hold at most 257 (~70%) of the 364 1-digit x 2-digit ones left, so the 1,000
    prompts that follow (train_offset) still find their share. The caps sum to about `count`, so a segment is close
    to uniform over the problems left rather than digit-balanced. A build with train_offset replays the earlier
    build's segment with the same caps, so both draw the same problems.
    """
    sizes = _strata_sizes(task, spec, type)
    if sizes is None:
        return None
    left = {stratum: size - drawn[stratum] for stratum, size in sizes.items()}
    total = sum(left.values())
    if count >= total:  # the segment takes everything left: nothing to share out
        return None
    return {stratum: math.ceil(n * count / total) for stratum, n in left.items()}


def _strata_sizes(task, spec, type: str) -> dict | None:
    """{stratum: distinct problems of `type`}, or None when the family does not count them or there is only one
    stratum (nothing to keep apart)."""
    sizes = task.num_distinct_per_stratum(spec, type)
    return sizes if sizes and len(sizes) >= 2 else None


def _draw_unique(task, family, type, spec, count, seen, rng, bar, split, caps=None, tally=None):
    """`count` new problems of `type`: at most caps[stratum] from each capped stratum; the strata of the rows
    drawn are added to `tally` (a Counter) when one is given."""
    rows = []
    attempts, max_attempts = 0, 200 * count + 100_000
    draw, add, append = task.draw, seen.add, rows.append
    taken = Counter() if caps or tally is not None else None  # strata of the rows drawn here
    while len(rows) < count:
        key, make = draw(rng, spec, type)
        attempts += 1
        stratum = task.stratum_of_key(key) if taken is not None else None
        if key in seen or (caps and _at_cap(stratum, taken, caps)):
            if attempts > max_attempts:
                raise ValueError(
                    f"{SIZE_FIELDS[split]}: found only {len(rows)} of {count} new {family} problems of type {type!r} "
                    f"in {attempts} draws; the spec {_short_spec(spec)} has too few distinct problems for the "
                    f"split sizes; lower them or widen the spec"
                )
            continue
        if taken is not None:
            taken[stratum] += 1
        add(key)
        append((family, make()))
        if bar is not None and len(rows) % 4096 == 0:
            bar.update(4096)
    if bar is not None:
        bar.update(len(rows) % 4096)
    if tally is not None:
        tally.update(taken)
    return rows


def _at_cap(stratum, taken, caps) -> bool:
    return stratum in caps and taken[stratum] >= caps[stratum]


# ---------------------------------------------------------------------------------------------------------------
# Rows and datasets.


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
    features = Features({**extra_features, **common_features(options.task)})
    description = describe(builder, options, specs)
    result = DatasetDict()
    for split, rows in draw_splits(options, specs, progress).items():
        columns = {**row_columns(rows, options, specs, split), **common_columns(rows, options.task)}
        result[split] = make_dataset(columns, features, split, description)
    return result


def describe(builder: str, options, specs: dict[str, Any]) -> str:
    """The description stored in every split's DatasetInfo: what it is and the command that rebuilds it."""
    return (f"mathalign {builder} dataset ({', '.join(specs) or builder}). Rebuild with: "
            f"{command_line(builder, options, specs)}")


def build_parameters(options, specs: dict[str, Any]) -> dict[str, Any]:
    params = spec_to_dict(options)
    for family, spec in specs.items():
        params[family] = spec_to_dict(spec)
    return params


# ---------------------------------------------------------------------------------------------------------------
# Cards, saving, publishing.


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def type_counts(dataset_dict: DatasetDict) -> dict[str, dict[str, int]]:
    out = {}
    for split, ds in dataset_dict.items():
        names = ds.features["type"].names
        counts = ds.data.column("type").value_counts().to_pylist()
        by_name = {names[c["values"]]: c["counts"] for c in counts}
        out[split] = {name: by_name[name] for name in names if name in by_name}
    return out


def make_card(dataset_dict: DatasetDict, builder: str, parameters: dict[str, Any], command: str,
              summary: str, parquet_layout: bool = True, license: str = "apache-2.0", source_datasets=None):
    """A dataset card (README.md) with YAML metadata: features, split sizes, per-type counts, parameters, command."""
    from huggingface_hub import DatasetCard, DatasetCardData

    first = next(iter(dataset_dict.values()))
    splits = [{"name": split, "num_bytes": ds.data.nbytes, "num_examples": ds.num_rows}
              for split, ds in dataset_dict.items()]
    counts = type_counts(dataset_dict)
    total = sum(ds.num_rows for ds in dataset_dict.values())
    metadata: dict[str, Any] = dict(
        language=["en"],
        license=license,
        pretty_name=f"mathalign {builder}",
        size_categories=[size_category(total)],
        task_categories=["text-generation"],
        tags=["mathalign", "math", "arithmetic", "synthetic", "trl"],
        dataset_info={"features": first.features._to_yaml_list(), "splits": splits},
        mathalign={"builder": builder, "command": command, "parameters": parameters, "type_counts": counts},
    )
    if source_datasets:
        metadata["source_datasets"] = list(source_datasets)
    if parquet_layout:
        metadata["configs"] = [{"config_name": "default",
                                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in dataset_dict]}]
    card_data = DatasetCardData(**metadata)
    columns = "\n".join(f"| `{name}` | {_feature_text(feature)} |" for name, feature in first.features.items())
    type_table = "\n".join(
        f"| {split} | {dataset_dict[split].num_rows} | "
        + ", ".join(f"{name}: {n}" for name, n in per_type.items()) + " |"
        for split, per_type in counts.items()
    )
    example = json.dumps({k: v for k, v in first[0].items()}, ensure_ascii=False, indent=2) if first.num_rows else "{}"
    ood_note = (" `test_ood` holds longer operands / deeper expressions than anything in training."
                if "test_ood" in dataset_dict else "")
    content = f"""---
{card_data.to_yaml()}
---

# mathalign {builder}

{summary}

Every row is verifiable: `mathalign.tasks.get_task(row["task"]).check(completion, row["answer"])` says whether a
completion is right. Splits are disjoint by the canonical problem `key`.{ood_note}

## Columns

| column | type |
|---|---|
{columns}

## Splits

| split | rows | rows per type |
|---|---|---|
{type_table}

## Example (first row of `{next(iter(dataset_dict))}`)

```json
{example}
```

## Rebuild

```bash
{command}
```

Same options and seed give byte-identical data. Load with `datasets.load_from_disk(OUT_DIR)` (arrow output) or
`datasets.load_dataset(OUT_DIR)` (parquet output, or the Hub repo id).
"""
    return DatasetCard(content)


def _feature_text(feature) -> str:
    if isinstance(feature, ClassLabel):
        return f"ClassLabel ({', '.join(feature.names)})"
    return f"{getattr(feature, 'dtype', type(feature).__name__)}"


def save(dataset_dict: DatasetDict, out: str | Path, card=None, format: str = "arrow", overwrite: bool = False,
         inputs=()) -> Path:
    """Write the splits (arrow via save_to_disk, or data/<split>-00000-of-00001.parquet) and README.md into `out`.

    An existing file or non-empty folder at `out` is refused (ValueError) unless `overwrite`, which replaces it
    whole (`outputs.write_folder`: the dataset is written next to `out` and renamed into place when complete).
    """
    if format not in ("arrow", "parquet"):
        raise ValueError(f"format must be 'arrow' or 'parquet', got {format!r}")

    def write(folder: Path) -> None:
        if format == "arrow":
            dataset_dict.save_to_disk(str(folder))
        else:
            (folder / "data").mkdir(parents=True, exist_ok=True)
            for split, ds in dataset_dict.items():
                ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
        if card is not None:
            (folder / "README.md").write_text(str(card), encoding="utf-8")

    return outputs.write_folder(out, write, overwrite, inputs=inputs)


def push_to_hub(dataset_dict: DatasetDict, repo_id: str, card=None, private: bool | None = None) -> None:
    """`DatasetDict.push_to_hub`, then the card (the parquet layout it writes matches the card's `configs`)."""
    dataset_dict.push_to_hub(repo_id, private=private)
    if card is not None:
        card.push_to_hub(repo_id, repo_type="dataset", commit_message="Dataset card from mathalign")


def check_out(args: argparse.Namespace) -> None:
    """Refuse `--out` before any work (an existing file or non-empty folder without --overwrite; see outputs)."""
    outputs.check_output(args.out, getattr(args, "overwrite", False), inputs=input_paths(args))


def input_paths(args: argparse.Namespace) -> list[str]:
    """The command line's values that name existing files or folders (a --source, a --model...): `--overwrite`
    never replaces a folder that holds one of them."""
    paths = []
    for key, value in vars(args).items():
        if key != "out" and isinstance(value, str) and value:
            try:
                if Path(value).exists():
                    paths.append(value)
            except (OSError, ValueError):
                continue
    return paths


def finish(dataset_dict: DatasetDict, args: argparse.Namespace, builder: str, parameters: dict, command: str,
           summary: str, **card_options) -> DatasetDict:
    """The tail every builder's CLI shares: card, save, optional push, one line of report. `args.out` was checked
    before the build (`check_out`)."""
    card = make_card(dataset_dict, builder, parameters, command, summary,
                     parquet_layout=args.format == "parquet" or bool(args.push_to_hub), **card_options)
    if args.progress is False or (args.progress is None and sum(dataset_dict.num_rows.values()) < PROGRESS_MIN_ROWS):
        datasets.disable_progress_bars()  # datasets' own "Saving the dataset" bars
    out = save(dataset_dict, args.out, card, args.format, getattr(args, "overwrite", False), input_paths(args))
    sizes = ", ".join(f"{split}={ds.num_rows}" for split, ds in dataset_dict.items())
    print(f"wrote {builder} ({sizes}) to {out}", file=sys.stderr)
    if args.push_to_hub:
        push_to_hub(dataset_dict, args.push_to_hub, card)
        print(f"pushed to https://huggingface.co/datasets/{args.push_to_hub}", file=sys.stderr)
    return dataset_dict


def make_parser(module_doc: str, prog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=module_doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def run_generated(builder: str, options_class: type, build: Callable, summary: str,
                  args: argparse.Namespace) -> DatasetDict:
    """`main(args)` of a generated builder: build from the parsed flags, then card, save and push."""
    check_out(args)
    raw = options_from_args(args)
    dataset_dict = build(progress=args.progress, **raw)
    options, specs = resolve_options(options_class, raw)
    return finish(dataset_dict, args, builder, build_parameters(options, specs),
                  command_line(builder, options, specs), summary)


def run_main(make_parser: Callable[[], argparse.ArgumentParser], main: Callable) -> None:
    """`python -m data_builders.<name>`: parse the command line and run `main`, with `mathalign data`'s error
    handling: bad input (ValueError, FileNotFoundError) is one line on stderr and exit code 2, not a traceback."""
    parser = make_parser()
    args = parser.parse_args()
    try:
        main(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted.", file=sys.stderr)
        sys.exit(130)

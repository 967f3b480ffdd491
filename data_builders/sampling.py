"""Drawing problems: exact, disjoint, stratified splits. A builder module only says how a Problem becomes a row.

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
  counts them) raises a ValueError naming the sizes.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from typing import Any

from tqdm.auto import tqdm

from mathalign.tasks import Problem, get_task
from mathalign.tasks.base import spec_to_dict

from .options import (
    IN_DISTRIBUTION,
    PROGRESS_MIN_ROWS,
    SAMPLING_ORDER,
    SIZE_FIELDS,
    SPLITS,
    BuildOptions,
)

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

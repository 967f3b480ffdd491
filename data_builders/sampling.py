"""Drawing problems: exact, disjoint, stratified splits. A builder module only says how a Problem becomes a row.

- Disjoint splits by construction: splits are drawn one after another (test, validation, test_surface,
  validation_surface, test_uniform, validation_uniform, train, then test_ood: SAMPLING_ORDER) and a problem whose
  `key` an earlier split holds is drawn again. Each split has its own seeded RNG and every held-out split comes
  before train, so no held-out split moves when num_train changes: an evaluation build with num_train=0 (and the
  same seed, spec and held-out sizes) holds exactly the problems the training build held out. `train_offset=N`
  leaves out the train problems of the same build with num_train=N, so that stages can train on disjoint prompts
  (SFT on the first N, DPO or GRPO on new ones).
- Each split draws from its own specs (`split_specs`): the family's spec, its `uniform()` spec for the uniform
  splits (the same problems, operands drawn uniformly over the whole range), its `ood_specs()` for test_ood (one
  per operand length). The surface splits are drawn like test, then each problem is rewritten by
  `task.surface_variant` with an RNG of their own: same key, another prompt.
- Exact mixes: each (family, type) gets its share of every split by largest remainder, so 1,000 rows over the
  nine arithmetic types are 112/111/.../111 rather than a random draw; test_ood deals each type's rows among its
  operand lengths in turn, so types and lengths are both as even as the sizes allow. A spec with
  `train_type_weights` (arithmetic's `train_types`) gives train, and the rows a train_offset skips, a mix of their
  own; the held-out splits keep the spec's `type_weights`, so they do not move.
- Training sees every kind of problem: a held-out split takes at most twice its overall share of any stratum (for
  arithmetic, an operand shape: 1x1, 1x2, 2x2 digits; `held_out_caps`), so small buckets such as the 55 products of
  two 1-digit numbers, or the 900 of a 1-digit and a 2-digit number, are not all held out (a uniform split draws
  each stratum in about its share of the problems, so its caps hardly ever bind). With
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
    HELD_OUT,
    IN_DISTRIBUTION,
    PROGRESS_MIN_ROWS,
    SAMPLING_ORDER,
    SIZE_FIELDS,
    SPLITS,
    SURFACE_SPLITS,
    UNIFORM_SPLITS,
    BuildOptions,
)

Label = tuple[str, str]  # (family, type)
Part = tuple[str, str, int]  # (family, type, which of the split's specs of the family: test_ood has one per length)


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


def split_specs(split: str, specs: dict[str, Any]) -> dict[str, list]:
    """{family: the specs `split` draws from}: one per operand length for test_ood (`spec.ood_specs()`), the
    uniform spec for the uniform splits (`spec.uniform()`: the same problems, other weights), else the spec.

    `surface_variants` and `leading_zeros` are training data augmentation: a held-out split draws with them off, so
    `test` holds the canonical forms and the surface splits the others."""
    if split != "train":
        specs = {family: _without_augmentations(spec) for family, spec in specs.items()}
    if split == "test_ood":
        return {family: spec.ood_specs() for family, spec in specs.items()}
    if split in UNIFORM_SPLITS:
        return {family: [spec.uniform()] for family, spec in specs.items()}
    return {family: [spec] for family, spec in specs.items()}


def _without_augmentations(spec):
    """The spec without its training-only augmentations (`surface_variants`, arithmetic's `leading_zeros`)."""
    off = {name: 0 for name in ("surface_variants", "leading_zeros") if getattr(spec, name, 0)}
    return dataclasses.replace(spec, **off) if off else spec


def deal(counts: dict[Label, int], spec_lists: dict[str, list]) -> dict[Part, int]:
    """Each (family, type)'s rows shared among the family's specs (test_ood's operand lengths): the rows of a family
    are dealt to its specs in turn, type after type, so each type's rows differ by at most one between specs, and
    so do the specs' totals (12 rows, 9 types, 2 lengths: 6 and 6). One spec gets every row."""
    parts: dict[Part, int] = {}
    dealt: Counter = Counter()  # rows dealt so far per family: where the next type starts
    for (family, type), count in counts.items():
        k, start = len(spec_lists[family]), dealt[family]
        for index in range(k):
            parts[(family, type, index)] = len(range((index - start) % k, count, k))
        dealt[family] += count
    return parts


def plan_quotas(options: BuildOptions, specs: dict[str, Any]) -> dict[str, dict[Part, int]]:
    """Rows per (family, type, spec index) per split (`split_specs`); checks every request against the number of
    distinct problems."""
    weights: dict[Label, float] = {}
    train_weights: dict[Label, float] = {}  # a spec's `train_type_weights`, where it has them: train's own mix
    for family, share in options.family_weights.items():
        spec = specs[family]
        for type, w in spec.type_weights.items():
            weights[(family, type)] = share * w
        for type, w in getattr(spec, "train_type_weights", spec.type_weights).items():
            train_weights[(family, type)] = share * w
    spec_lists = {split: split_specs(split, specs) for split, n in options.sizes.items() if n}
    quotas = {split: deal(allocate(n, train_weights if split == "train" else weights), spec_lists[split])
              for split, n in options.sizes.items() if n}
    skipped = allocate(options.train_offset, train_weights) if options.train_offset and "train" in quotas else {}
    for family, type in weights:
        task = get_task(family)
        # the in-distribution splits share one set of problems (a uniform spec reaches the same ones); each test_ood
        # spec has its own
        pools = [(IN_DISTRIBUTION, 0, specs[family])]
        if "test_ood" in spec_lists:
            pools += [(("test_ood",), index, spec) for index, spec in enumerate(spec_lists["test_ood"][family])]
        for splits, index, spec in pools:
            wanted = sum(quotas.get(split, {}).get((family, type, index), 0) for split in splits)
            if not wanted:
                continue
            offset = skipped.get((family, type), 0) if splits == IN_DISTRIBUTION else 0
            wanted += offset  # the problems train_offset leaves out are drawn all the same
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
    spec_lists = {split: split_specs(split, specs) for split in quotas}
    total = sum(options.sizes.values())
    seen: dict[str, set[str]] = {family: set() for family in options.task}
    drawn_strata: dict[Label, Counter] = {}  # under train_by_shape: strata drawn so far per (family, type)
    out = {}
    # progress=None: a bar for big builds on a terminal (tqdm's disable=None), none for small ones
    disable = (None if total >= PROGRESS_MIN_ROWS else True) if progress is None else not progress

    def draw_segment(split: str, segment: dict[Part, int], rng: random.Random, bar) -> list[tuple[str, Problem]]:
        """The rows of one split, or of the train segment a train_offset build replays (the same code, so the
        replay draws exactly what the earlier build did)."""
        rows: list[tuple[str, Problem]] = []
        for part, count in segment.items():
            family, type, index = part
            task, spec = get_task(family), spec_lists[split][family][index]
            shaped = options.train_by_shape and split in IN_DISTRIBUTION  # what train segments share out
            tally = drawn_strata.setdefault((family, type), Counter()) if shaped else None
            if split == "train":
                caps = train_caps(task, spec, type, count, tally) if tally is not None else None
            else:
                caps = held_out_caps(task, spec, part, quotas, split)
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
            if split in SURFACE_SPLITS:
                rows = written_another_way(rows, specs, random.Random(f"mathalign:{options.seed}:{split}:surface"))
            out[split] = rows
    return {split: out[split] for split in SPLITS if split in out}


def written_another_way(rows: list[tuple[str, Problem]], specs: dict[str, Any], rng: random.Random,
                        ) -> list[tuple[str, Problem]]:
    """Each problem rewritten by its family's `surface_variant` (the same key and answer, another prompt): the rows
    of a surface split. The spec goes along where the family takes it (arithmetic writes the target of the
    rewritten prompt in the spec's answer_style)."""
    out = []
    for family, problem in rows:
        task = get_task(family)
        variant = task.surface_variant(problem, rng, spec=specs[family])
        if (variant.key, variant.answer, variant.type) != (problem.key, problem.answer, problem.type):
            raise RuntimeError(f"{family}.surface_variant changed the problem ({problem.key!r}, answer "
                               f"{problem.answer!r} -> {variant.key!r}, {variant.answer!r}): a surface variant "
                               "must keep the key, answer and type")
        out.append((family, variant))
    return out


def held_out_caps(task, spec, part: Part, quotas, split) -> dict | None:
    """{stratum: most problems `split` may take} for a held-out split (HELD_OUT: test, validation and their surface
    and uniform twins), or None (no caps).

    Operands are drawn digit-balanced, so a quarter of the draws of `a*b` are two 1-digit numbers, of which there
    are only 55, and half are a 1-digit times a 2-digit number, 900 of the 5,050. Uncapped, the held-out splits would
    take all of the first and most of the second, and training would hardly see `3*4=?` or `3*47=?`. So a held-out
    split takes at most twice its overall share of the type from any stratum (`task.num_distinct_per_stratum`): 111
    test problems of `a*b` (2.2% of 5,050) hold at most 3 of the 55 and 40 of the 900. Caps apply while the
    held-out splits ask for at most half of the type's problems (then every cap can be met), and only to families
    that count their problems per stratum.

    A uniform split (`spec.uniform()`) reaches the same problems and strata with other weights: it draws each
    stratum in about its share of the type's problems, half its cap, so the caps keep their promise to training
    without starving it (they bind only on a rare run of luck, and then the draw goes on in the other strata).
    """
    if split not in HELD_OUT:
        return None
    sizes = _strata_sizes(task, spec, part[1])
    if sizes is None:
        return None
    total = sum(sizes.values())
    held_out = sum(quotas.get(s, {}).get(part, 0) for s in HELD_OUT)
    if 2 * held_out > total:
        return None
    share = 2 * quotas[split][part] / total
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

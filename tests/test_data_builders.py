"""Data builders: typed TRL columns, disjoint seeded splits, byte-identical rebuilds, honest negatives, seed formats."""

import argparse
import collections
import dataclasses
import filecmp
import hashlib
import itertools
import json
import math
import random
import re
import shlex
import time

import pytest
import yaml
from datasets import ClassLabel, load_from_disk

import data_builders
from data_builders import building, core, seed_formats
from data_builders import options as options_module
from data_builders.negatives import KINDS, STATIC_KINDS
from hub_fixtures import HUB_USER, hub_env, hub_server, run_python  # noqa: F401  (fixtures)
from mathalign import cli_data
from mathalign.tasks import get_task
from mathalign.tasks.base import option

TINY = dict(num_train=60, num_validation=12, num_test=24, num_test_ood=12, seed=0)
MIX = dict(task=("arithmetic", "expressions"), operators=("+", "-", "*", "/"), invalid_rate=0.2, max_depth=3)

# builder -> the columns TRL reads, then the completion column that must check as correct
TRL_COLUMNS = {
    "pretrain": (["text"], "text"),
    "sft": (["prompt", "completion"], "completion"),
    "preferences": (["prompt", "chosen", "rejected", "negative"], "chosen"),
    "rl": (["prompt"], None),
}
COMMON = ["task", "type", "difficulty", "answer", "key"]


def _keys(dataset_dict):
    return {split: set(ds["key"]) for split, ds in dataset_dict.items()}


@pytest.fixture(scope="module")
def mixed():
    """One small mixed build per generated builder, shared by the read-only tests below."""
    return {name: data_builders.get_builder(name).build(**TINY, **MIX) for name in TRL_COLUMNS}


def test_registry():
    assert set(data_builders.BUILDERS) == {"pretrain", "sft", "preferences", "rl", "gsm8k", "aqua"}
    assert data_builders.get_builder("sft").build is not None
    with pytest.raises(ValueError, match="valid builders"):
        data_builders.get_builder("dpo")


@pytest.mark.parametrize("builder", sorted(TRL_COLUMNS))
def test_columns_features_and_correct_targets(mixed, builder):
    trl_columns, target_column = TRL_COLUMNS[builder]
    dataset_dict = mixed[builder]
    assert list(dataset_dict) == ["train", "validation", "test", "test_ood"]
    for split, ds in dataset_dict.items():
        assert ds.column_names == trl_columns + COMMON
        assert ds.num_rows == TINY[f"num_{split}"]
        features = ds.features
        assert isinstance(features["type"], ClassLabel)
        assert features["type"].names == get_task("arithmetic").types + get_task("expressions").types
        assert features["difficulty"].dtype == "int32" and features["answer"].dtype == "string"
        for row in ds:
            task = get_task(row["task"])
            if target_column:
                assert task.check(row[target_column], row["answer"]), row


@pytest.mark.parametrize("builder", sorted(TRL_COLUMNS))
def test_splits_are_disjoint_by_key(mixed, builder):
    keys = _keys(mixed[builder])
    splits = list(keys)
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            assert not keys[a] & keys[b], (a, b)
    for split, ds in mixed[builder].items():
        assert len(keys[split]) == ds.num_rows  # no problem twice within a split either


def test_mix_quotas_are_exact(mixed):
    # 60 train rows: 30 arithmetic (9 types: 4 or 3 each), 30 expressions (80% well formed, 20% malformed)
    train = mixed["sft"]["train"]
    names = train.features["type"].names
    counts = collections.Counter(names[t] for t in train["type"])
    assert sum(counts[t] for t in get_task("arithmetic").types) == 30
    assert counts["well_formed"] == 24 and sum(counts[k] for k in ("unbalanced_parens", "dangling_operator",
                                                                   "division_by_zero")) == 6
    assert max(counts[t] for t in get_task("arithmetic").types) - min(
        counts[t] for t in get_task("arithmetic").types) <= 1


def test_test_ood_is_harder(mixed):
    def difficulties(ds, task, types):
        names = ds.features["type"].names
        return [d for t, d, ty in zip(ds["task"], ds["difficulty"], ds["type"]) if t == task and names[ty] in types]

    ds = mixed["rl"]
    arithmetic_types = get_task("arithmetic").types
    # arithmetic: operands one digit longer (difficulty = digits of the longest operand)
    assert set(difficulties(ds["test_ood"], "arithmetic", arithmetic_types)) == {3}
    assert max(difficulties(ds["train"], "arithmetic", arithmetic_types)) <= 2
    # expressions: more operations than training ever has (max_depth 3 and up to 5 operands -> 6 or 7 operands)
    assert min(difficulties(ds["test_ood"], "expressions", ["well_formed"])) >= 5
    assert max(difficulties(ds["train"], "expressions", ["well_formed"])) <= 4


def test_same_seed_same_bytes_other_seed_other_rows(tmp_path):
    builder = data_builders.get_builder("preferences")
    for name in ("a", "b"):
        card = core.make_card(builder.build(**TINY, **MIX), "preferences", {}, "cmd", "summary")
        core.save(builder.build(**TINY, **MIX), tmp_path / name, card, "arrow")
        core.save(builder.build(**TINY, **MIX), tmp_path / f"{name}_parquet", card, "parquet")
    for left, right in (("a", "b"), ("a_parquet", "b_parquet")):
        comparison = filecmp.dircmp(tmp_path / left, tmp_path / right)
        assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
        for sub in comparison.subdirs.values():
            assert not sub.diff_files and not sub.left_only and not sub.right_only
            for file in sub.common_files:  # shallow=False: compare contents, not just sizes
                assert filecmp.cmp(sub.left + "/" + file, sub.right + "/" + file, shallow=False)
    other = builder.build(**{**TINY, "seed": 1}, **MIX)
    assert other["train"]["prompt"] != load_from_disk(str(tmp_path / "a"))["train"]["prompt"]


def test_eval_splits_do_not_move_when_num_train_changes():
    sft = data_builders.get_builder("sft")
    small, large = sft.build(**TINY), sft.build(**{**TINY, "num_train": 300})
    assert small["test"]["prompt"] == large["test"]["prompt"]
    assert small["validation"]["prompt"] == large["validation"]["prompt"]


def test_held_out_splits_leave_small_operand_shapes_to_training():
    """Two 1-digit operands are a quarter of the digit-balanced draws of `a*b` but 55 of its 5,050 problems, a
    1-digit and a 2-digit one half of the draws but 900 problems: the held-out splits take at most twice their share
    of each, so training sees most of them (uncapped, test took all 55; capped by difficulty, the alignment lab's
    test and validation took 751 of the 900, leaving 149 for its 2,500 SFT problems)."""
    sft = data_builders.get_builder("sft")
    ds = sft.build(types=["a_times_b"], num_train=2000, num_validation=111, num_test=111, num_test_ood=0)
    easy = {split: ds[split]["difficulty"].count(1) for split in ds}
    assert easy["test"] <= 3 and easy["validation"] <= 3  # ceil(55 * 2 * 111 / 5050)
    assert easy["train"] >= 40
    lab = sft.build(types=["a_times_b"], num_train=2500, num_validation=500, num_test=1000, num_test_ood=0)
    task = get_task("arithmetic")
    mixed = {split: sum(task.stratum_of_key(key) == (1, 2) for key in lab[split]["key"]) for split in lab}
    assert mixed["test"] <= 357 and mixed["validation"] <= 179  # ceil(900 * 2 * 1000 / 5050), ... 500 ...
    assert mixed["train"] >= 900 - 357 - 179
    # When the held-out splits ask for more than half of a type's problems, no caps: the request is still met.
    big = sft.build(types=["a_plus_b"], num_train=10, num_validation=0, num_test=3000, num_test_ood=0)
    assert len(set(big["test"]["key"])) == 3000


def test_train_offset_gives_new_prompts_and_keeps_the_eval_splits():
    """A later stage's data with train_offset=N holds none of the train problems of the build with num_train=N."""
    sft = data_builders.get_builder("sft")
    mixed = dict(TINY, task=MIX["task"], operators=MIX["operators"], max_depth=3)
    first = sft.build(**{**mixed, "num_train": 90})
    later = sft.build(**{**mixed, "num_train": 60, "train_offset": 90})
    assert not set(first["train"]["key"]) & set(later["train"]["key"])
    assert len(set(later["train"]["key"])) == 60
    for split in ("validation", "test", "test_ood"):
        assert first[split]["key"] == later[split]["key"]
    assert sft.build(**{**mixed, "num_train": 60, "train_offset": 90})["train"]["key"] == later["train"]["key"]
    assert "--train-offset 90" in later["train"].info.description  # the rebuild command keeps it


def test_train_types_reweigh_train_alone_and_the_rebuild_command_keeps_them():
    """`train_types` gives the train split its own mix of types (a slow type more rows, an easy one fewer); every
    held-out split keeps the mix of `types`, row for row, so runs with and without it are judged on the same
    problems. The rows after a train_offset follow the train mix too, and stay new."""
    sft = data_builders.get_builder("sft")
    held_out = dict(num_validation=90, num_test=90, num_test_ood=18, num_test_surface=45, seed=3)
    even = sft.build(**held_out, num_train=900)
    weighed = sft.build(**held_out, num_train=900, train_types={"a_plus_b": 0.5, "a_times_b": 2})
    names = weighed["train"].features["type"].names
    counts = collections.Counter(names[t] for t in weighed["train"]["type"])
    assert counts["a_plus_b"] == 47 and counts["a_times_b"] == 189 and counts["x_plus_b"] == 95  # 900 by 0.5:2:1...
    for split in ("validation", "test", "test_ood", "test_surface"):
        assert weighed[split]["prompt"] == even[split]["prompt"]
    assert collections.Counter(weighed["test"]["type"]) == collections.Counter(even["test"]["type"])
    later = sft.build(**held_out, num_train=190, train_offset=900, train_types={"a_plus_b": 0.5, "a_times_b": 2})
    assert collections.Counter(names[t] for t in later["train"]["type"])["a_times_b"] == 40  # 190 * 2 / 9.5
    assert not set(later["train"]["key"]) & set(weighed["train"]["key"])
    # the card's command (`--train-types a_plus_b=0.5 a_times_b=2`) rebuilds the same rows
    command = shlex.split(weighed["train"].info.description.split("Rebuild with: ")[1])
    assert "--train-types" in command
    parser = argparse.ArgumentParser()
    cli_data.add_parser(parser.add_subparsers(dest="command"))
    rebuilt = sft.build(**core.options_from_args(parser.parse_args(command[1:])))
    assert rebuilt["train"]["prompt"] == weighed["train"]["prompt"]


def test_train_by_shape_leaves_every_operand_shape_for_the_prompts_after_train_offset():
    """Unshaped, the lab's 2,500 SFT products take all 364 of the 1-digit x 2-digit ones the held-out splits leave,
    and the 1,000 prompts after them (train_offset) get none; by shape, each segment takes its share of what is
    left, and a train_offset build replays the same first segment."""
    sft = data_builders.get_builder("sft")
    lab = dict(types=["a_times_b"], num_validation=500, num_test=1000, num_test_ood=0, train_by_shape=True)
    task = get_task("arithmetic")

    def shapes(keys):
        return collections.Counter(task.stratum_of_key(key) for key in keys)

    first = sft.build(**lab, num_train=2500)
    later = sft.build(**lab, num_train=1000, train_offset=2500)
    unshaped = sft.build(**{**lab, "train_by_shape": False}, num_train=1000, train_offset=2500)
    assert shapes(unshaped["train"]["key"])[(1, 2)] == 0  # what train_by_shape is for
    left = 900 - sum(shapes(first[split]["key"])[(1, 2)] for split in ("test", "validation"))  # 364
    assert shapes(first["train"]["key"])[(1, 2)] <= math.ceil(left * 2500 / 3550)  # 3,550 products are left
    assert shapes(later["train"]["key"])[(1, 2)] >= 0.9 * left * 1000 / 3550
    assert not set(first["train"]["key"]) & set(later["train"]["key"])
    for split in ("validation", "test"):  # the held-out splits are those of a build without train_by_shape
        assert first[split]["key"] == later[split]["key"] == unshaped[split]["key"]
    assert "--train-by-shape" in later["train"].info.description  # the rebuild command keeps it
    # every arithmetic type, and a family that does not count strata (expressions: no caps), in one build
    mixed = dict(TINY, task=MIX["task"], operators=MIX["operators"], max_depth=3, train_by_shape=True)
    first, later = sft.build(**{**mixed, "num_train": 90}), sft.build(**{**mixed, "num_train": 60, "train_offset": 90})
    assert not set(first["train"]["key"]) & set(later["train"]["key"]) and len(set(later["train"]["key"])) == 60
    # one stratum (1-digit sums only), and a segment that takes all 45 left: no caps, the request is still met
    small = dict(types=["a_plus_b"], max_digits=1, num_validation=0, num_test=10, num_test_ood=0, train_by_shape=True)
    assert len(set(sft.build(**small, num_train=45)["train"]["key"])) == 45


def test_train_offset_counts_towards_the_problems_available():
    sft = data_builders.get_builder("sft")
    small = dict(types=["a_plus_b"], max_digits=1, num_validation=0, num_test=10, num_test_ood=0)  # 55 problems
    assert len(sft.build(**small, num_train=5, train_offset=40)["train"]) == 5
    with pytest.raises(ValueError, match=r"num_train \+ num_test \+ train_offset asks for 60 .* only 55"):
        sft.build(**small, num_train=10, train_offset=40)


@pytest.mark.parametrize(
    "options, message",
    [
        # 1-digit a_plus_b has 55 distinct problems: 50 + 10 do not fit (checked before drawing anything)
        (dict(types=["a_plus_b"], max_digits=1, num_train=50, num_validation=0, num_test=10, num_test_ood=0),
         r"num_train \+ num_test asks for 60 .* only 55"),
        # test_ood (2-digit a_plus_b: 4095 problems) is checked on its own spec
        (dict(types=["a_plus_b"], max_digits=1, num_train=1, num_test_ood=5000), "num_test_ood asks for 5000"),
        # expressions: tiny spaces are counted too (1..2, one operation, +: four expressions)
        (dict(task="expressions", num_range=(1, 2), max_depth=1, operators="+", invalid_rate=0.0, num_train=5,
              num_validation=0, num_test=0, num_test_ood=0), "only 4"),
        (dict(num_train=-1), "num_train must be an integer >= 0"),  # negative size
        (dict(train_offset=-5), "train_offset must be an integer >= 0"),
        (dict(train_by_shape="yes"), "train_by_shape must be true or false"),
        (dict(num_train=0, num_validation=0, num_test=0, num_test_ood=0), "nothing to build"),  # empty build
        (dict(task="algebra"), "valid tasks"),  # unknown family
        (dict(task="gsm8k"), "does not generate"),  # a dataset family has its own builder
        (dict(max_depth=3), "not in task"),  # an expressions option without expressions
        (dict(colour="red"), "unknown option 'colour'"),  # typo
        (dict(task_weights=(1, 2)), "task_weights"),  # one weight per family
        (dict(task_weights=(math.nan,)), "task_weights"),
        # the largest operands have no longer ones for test_ood: said before drawing (was "min_digits ... got 19")
        (dict(max_digits=18), r"max_digits \+ 1 = 19 digits, more than the 18 allowed: with max_digits=18 pass "
                              r"num_test_ood=0 \(--num-test-ood 0\)"),
        (dict(task="expressions", max_depth=64), r"depth max_depth \+ 1 = 65 .* pass num_test_ood=0"),
        # sizes no machine holds: refused at once (10**13 rows of 18-digit operands ran into MemoryError)
        (dict(max_digits=18, num_test_ood=0, num_train=10**13),
         r"= 10,000,000,000,036 rows, more than the 100,000,000 one build may hold"),
        (dict(max_digits=18, num_test_ood=0, num_train=90_000_000, train_offset=20_000_000),
         r"num_train \+ num_validation \+ num_test \+ num_test_ood \+ train_offset = 110,000,036 rows"),
        # expression specs that never finish or cannot be checked
        (dict(task="expressions", max_depth=10**6), r"max_depth must be an integer in \[1, 64\]"),
        (dict(task="expressions", num_operands=(2, 10**5), max_depth=60), "at most 64 numbers per expression"),
        (dict(task="expressions", num_range=(1, 10**30), max_abs_value=10**40),
         r"max_abs_value must be at most 10\*\*18"),  # 31-digit answers: rows no verifier would accept
    ],
)
def test_impossible_requests_fail_clearly(options, message):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        data_builders.get_builder("sft").build(**{**TINY, **options})
    assert time.perf_counter() - start < 5  # before any drawing


def test_builds_larger_than_memory_are_refused(monkeypatch):
    monkeypatch.setattr(options_module, "memory_limit_bytes", lambda: 2 * 10**9)  # a 2 GB machine
    with pytest.raises(ValueError, match=r"= 2,002,000 rows need at least 2.0 GB of memory while building \(1,000 "
                                         r"bytes a row\), more than this machine's 2.0 GB; ask for at most "
                                         r"2,000,000 rows"):
        data_builders.get_builder("sft").build(num_train=2_000_000, max_digits=6)
    monkeypatch.undo()
    assert core.memory_limit_bytes() is None or core.memory_limit_bytes() > 10**8  # the real one reads the machine


def test_the_largest_operands_build_without_test_ood(tmp_path, capsys):
    from mathalign.cli import main

    out = tmp_path / "sft"
    argv = ["data", "build", "sft", "--out", str(out), "--max-digits", "18", "--num-train", "50",
            "--num-validation", "0", "--num-test", "10"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pass num_test_ood=0 (--num-test-ood 0)" in err and err.count("\n") == 1 and not out.exists()
    assert main([*argv, "--num-test-ood", "0"]) == 0
    data, task = load_from_disk(str(out)), get_task("arithmetic")
    assert set(data) == {"train", "test"} and max(len(a) for a in data["train"]["answer"]) > 20
    assert all(task.check(row["completion"], row["answer"]) for row in data["train"])
    parser = data_builders.get_builder("sft").make_parser()
    assert "so at 18 it needs --num-test-ood 0" in " ".join(parser.format_help().split())


def test_preference_negatives_are_never_correct_and_every_kind_appears(mixed):
    for ds in mixed["preferences"].values():
        for row in ds:
            task = get_task(row["task"])
            assert not task.check(row["rejected"], row["answer"]), row
            assert row["rejected"] != row["chosen"]
    kinds = collections.Counter(KINDS[k] for ds in mixed["preferences"].values() for k in ds["negative"])
    assert set(kinds) == set(STATIC_KINDS)  # the default: every kind that needs no model
    wrong_steps = [r for ds in mixed["preferences"].values() for r in ds if KINDS[r["negative"]] == "wrong_step"]
    assert all(r["task"] == "expressions" for r in wrong_steps)  # only step-by-step targets have steps to spoil


def test_preference_negatives_selectable():
    ds = data_builders.get_builder("preferences").build(**TINY, negatives=("refusal",))["train"]
    assert set(ds["rejected"]) == {" Sorry, I do not know!"}
    ds = data_builders.get_builder("preferences").build(**TINY, negatives=["near_miss"], answer_style="explain")
    assert all(KINDS[k] == "near_miss" and "because" in r for k, r in zip(ds["train"]["negative"],
                                                                         ds["train"]["rejected"]))
    with pytest.raises(ValueError, match="negatives"):
        data_builders.get_builder("preferences").build(**TINY, negatives=("shrug",))


def test_sampled_negatives_are_the_models_own_wrong_answers(tiny_model_dir):
    from mathalign.generation import generate_batched, load_model_and_tokenizer

    options = dict(TINY, num_validation=0, num_test=0, num_test_ood=0, negatives=["sampled"],
                   negatives_model=str(tiny_model_dir), samples_per_prompt=1)
    ds = data_builders.get_builder("preferences").build(**options)["train"]
    sampled = [r for r in ds if KINDS[r["negative"]] == "sampled"]
    assert sampled, "an untrained model gets some problems wrong"
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    greedy, _, _ = generate_batched(model, tokenizer, [r["prompt"] for r in sampled], max_new_tokens=32)
    for row, text in zip(sampled, greedy):
        assert not get_task(row["task"]).check(row["rejected"], row["answer"]), row
        if not get_task(row["task"]).check(text, row["answer"]) and text.strip():
            # a wrong greedy answer is the one used (it is what evaluation sees), cut to the builder's token budget
            assert row["rejected"] and text.startswith(row["rejected"])
    # rows the model did not get wrong keep a static negative, never a right answer
    assert all(KINDS[r["negative"]] in ("sampled", "near_miss") for r in ds)
    again = data_builders.get_builder("preferences").build(**options)["train"]
    assert again["rejected"] == ds["rejected"]  # same model, same seed: same rows
    with pytest.raises(ValueError, match="negatives_model"):
        data_builders.get_builder("preferences").build(**TINY, negatives=["sampled"])


def test_spacing_variants_appear_and_normalise_to_the_same_problem():
    ds = data_builders.get_builder("sft").build(**TINY, spacing_variants=1.0, types=["x_minus_b"])["train"]
    task = get_task("arithmetic")
    assert all(task.normalize_prompt(p) != p for p in ds["prompt"])  # every prompt written another way
    assert [task.from_prompt(p).key for p in ds["prompt"]] == ds["key"]


# ---------------------------------------------------------------------------------------------------------------
# Held-out splits beyond test: surface variants, uniform operands, operand lengths of test_ood

NEW_SPLITS = dict(num_test_surface=18, num_validation_surface=9, num_test_uniform=18, num_validation_uniform=9)
# Rows of small fixed builds as the code before these splits drew them (computed on c2eb32c): a build that does not
# ask for the new splits must not move by a byte.
BEFORE_NEW_SPLITS = {
    "sft": ({**TINY, **MIX}, "5909daec67c08547"),
    "preferences": ({**TINY, **MIX}, "5d8f6603a85b01d0"),
    "pretrain": (dict(num_train=40, num_validation=8, num_test=8, num_test_ood=8, seed=3, train_offset=30,
                      train_by_shape=True), "8bcceaa5c2e80587"),
    "rl": (dict(num_train=30, num_validation=0, num_test=9, num_test_ood=9, seed=1, max_digits=3,
                answer_style="worked"), "d7aabd00fa4f904a"),
}


def _rows_fingerprint(dataset_dict) -> str:
    digest = hashlib.sha256()
    for split, ds in dataset_dict.items():
        digest.update(json.dumps([split, ds.features.to_dict(), ds.to_list()], sort_keys=True).encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def held_out():
    """Each generated builder with every new held-out split, plus sft builds with other num_train."""
    builds = {name: data_builders.get_builder(name).build(**TINY, **MIX, **NEW_SPLITS) for name in TRL_COLUMNS}
    sft = data_builders.get_builder("sft")
    builds["sft_no_train"] = sft.build(**{**TINY, "num_train": 0}, **MIX, **NEW_SPLITS)
    builds["sft_large"] = sft.build(**{**TINY, "num_train": 400}, **MIX, **NEW_SPLITS)
    return builds


@pytest.mark.parametrize("builder", sorted(BEFORE_NEW_SPLITS))
def test_builds_without_the_new_splits_keep_their_bytes(builder):
    options, fingerprint = BEFORE_NEW_SPLITS[builder]
    ds = data_builders.get_builder(builder).build(**options)
    assert _rows_fingerprint(ds) == fingerprint
    description = ds["train"].info.description  # the rebuild command: new options only when they are used
    for flag in ("surface", "uniform", "--ood-digits", "--operand-draw"):
        assert flag not in description.replace("--surface-variants", ""), flag
    assert "form" not in ds["train"].column_names


@pytest.mark.parametrize("builder", sorted(TRL_COLUMNS))
def test_new_held_out_splits_exist_and_are_disjoint(held_out, builder):
    trl_columns, target_column = TRL_COLUMNS[builder]
    dataset_dict = held_out[builder]
    assert list(dataset_dict) == ["train", "validation", "validation_surface", "validation_uniform", "test",
                                  "test_surface", "test_uniform", "test_ood"]
    sizes = {**TINY, **NEW_SPLITS}
    for split, ds in dataset_dict.items():
        assert ds.num_rows == sizes[f"num_{split}"]
        assert ds.column_names == trl_columns + COMMON + ["form"]  # one schema for every split (Hub, parquet)
        assert ("" not in ds["form"]) if split.endswith("_surface") else (set(ds["form"]) == {""})  # the way
        for row in ds:
            task = get_task(row["task"])
            if target_column:
                assert task.check(row[target_column], row["answer"]), row
            if builder == "preferences":
                assert not task.check(row["rejected"], row["answer"]), row
    keys = _keys(dataset_dict)
    for a, b in itertools.combinations(keys, 2):
        assert not keys[a] & keys[b], (a, b)
    assert all(len(keys[split]) == ds.num_rows for split, ds in dataset_dict.items())


def test_new_held_out_splits_do_not_depend_on_num_train(held_out):
    """Drawn after validation and before train: an evaluation build with num_train=0 holds exactly the problems a
    training build held out, none of which that build (or a larger one) trains on."""
    small, none, large = held_out["sft"], held_out["sft_no_train"], held_out["sft_large"]
    for split in ("validation", "test", "test_ood", *(name[4:] for name in NEW_SPLITS)):
        assert small[split].to_list() == none[split].to_list() == large[split].to_list(), split
        assert not set(large[split]["key"]) & set(large["train"]["key"]), split
    # the splits drawn before them do not move when they are added
    plain = data_builders.get_builder("sft").build(**TINY, **MIX)
    for split in ("validation", "test"):
        assert plain[split]["prompt"] == small[split]["prompt"] and plain[split]["key"] == small[split]["key"]


def test_new_held_out_splits_with_train_offset_and_train_by_shape():
    sft = data_builders.get_builder("sft")
    options = dict(TINY, **NEW_SPLITS, types=["a_times_b", "x_plus_b"], train_by_shape=True)
    first = sft.build(**{**options, "num_train": 90})
    later = sft.build(**{**options, "num_train": 60, "train_offset": 90})
    assert not set(first["train"]["key"]) & set(later["train"]["key"]) and len(set(later["train"]["key"])) == 60
    for split in ("test_surface", "validation_uniform", "test_uniform"):
        assert first[split]["key"] == later[split]["key"]


def test_surface_split_rows_are_the_same_problems_written_another_way():
    # worked targets stay in the build's style; each prompt reads back as the problem its key names
    ds = data_builders.get_builder("sft").build(**TINY, num_test_surface=45, answer_style="worked")
    task = get_task("arithmetic")
    surface = ds["test_surface"]
    assert {task.from_prompt(p).key for p in surface["prompt"]} == set(surface["key"])
    assert all(task.from_prompt(p).key == key for p, key in zip(surface["prompt"], surface["key"]))
    assert all("Reversed:" in c for c in surface["completion"])
    assert sum(task.normalize_prompt(p) == p for p in surface["prompt"]) < len(surface) // 2  # mostly rewritten
    assert set(ds["test"]["form"]) == {""}


def test_uniform_split_draws_operands_uniformly():
    """Digit-balanced (train), a quarter of the draws have two 2-digit operands; drawn uniformly from 0..99, 81% do.
    (The held-out caps already push `test` to about 60%: at most twice its share of the smaller shapes.)"""
    ds = data_builders.get_builder("rl").build(num_train=450, num_validation=0, num_test=0, num_test_uniform=450,
                                               num_test_ood=0)
    task = get_task("arithmetic")

    def long_share(split, type=None):
        names = ds[split].features["type"].names
        shapes = [task.stratum_of_key(k) for k, t in zip(ds[split]["key"], ds[split]["type"])
                  if type in (None, names[t])]
        return sum(shape == (2, 2) for shape in shapes) / len(shapes)

    assert long_share("test_uniform") > 0.75 and long_share("train") < 0.4
    assert all(long_share("test_uniform", type) > 0.6 for type in task.types)  # division: divisor and quotient
    # the same problems, other weights: num_distinct holds for the uniform spec, and its draws reach every problem
    spec = task.make_spec(types=["a_plus_b", "a_over_b"])
    uniform, rng = spec.uniform(), random.Random(0)
    assert uniform.operand_draw == "uniform" and uniform != spec
    for type in ("a_plus_b", "a_over_b"):
        keys = {task.draw(rng, uniform, type)[0] for _ in range(150_000)}
        assert len(keys) == task.num_distinct(uniform, type) == task.num_distinct(spec, type)
    expressions = get_task("expressions").make_spec()
    assert expressions.uniform() == expressions  # its numbers are uniform in num_range already
    with pytest.raises(ValueError, match="operand_draw must be one of"):
        task.make_spec(operand_draw="log")


def test_held_out_caps_neither_refuse_nor_starve_a_uniform_split():
    # products up to 2 digits (5,050): every held-out split capped, the uniform one too; 1-digit sums (55, one
    # stratum): no caps, and a uniform split may take almost all of them
    ds = data_builders.get_builder("sft").build(types=["a_times_b"], num_train=1000, num_validation=300,
                                                num_test=600, num_test_uniform=600, num_test_ood=0)
    assert len(set(ds["test_uniform"]["key"])) == 600
    task = get_task("arithmetic")
    shapes = collections.Counter(task.stratum_of_key(key) for key in ds["test_uniform"]["key"])
    assert shapes[(1, 1)] <= math.ceil(55 * 2 * 600 / 5050) and shapes[(2, 2)] > 0.75 * 600
    small = data_builders.get_builder("sft").build(types=["a_plus_b"], max_digits=1, num_train=0, num_validation=0,
                                                   num_test=5, num_test_uniform=48, num_test_ood=0)
    assert len(set(small["test_uniform"]["key"]) | set(small["test"]["key"])) == 53
    with pytest.raises(ValueError, match=r"num_test \+ num_test_uniform asks for 60 .* only 55"):
        data_builders.get_builder("sft").build(types=["a_plus_b"], max_digits=1, num_train=0, num_validation=0,
                                               num_test=5, num_test_uniform=55, num_test_ood=0)


def test_ood_digits_draws_each_length_evenly():
    rl = data_builders.get_builder("rl")
    ds = rl.build(num_train=0, num_validation=0, num_test=0, num_test_ood=36, ood_digits=[3, 4])["test_ood"]
    names, task = ds.features["type"].names, get_task("arithmetic")
    counts = collections.Counter((names[t], d) for t, d in zip(ds["type"], ds["difficulty"]))
    assert counts == {(type, digits): 2 for type in task.types for digits in (3, 4)}  # difficulty: the length
    assert all(task.stratum_of_key(k) == (d, d) for k, d in zip(ds["key"], ds["difficulty"]))  # both operands
    # 13 rows over 9 types and 2 lengths: types 2 or 1 (largest remainder), lengths 7 and 6
    odd = rl.build(num_train=0, num_validation=0, num_test=0, num_test_ood=13, ood_digits=[3, 5])["test_ood"]
    by_length = collections.Counter(odd["difficulty"])
    by_type = collections.Counter(odd["type"])
    assert sorted(by_length.values()) == [6, 7] and set(by_length) == {3, 5} and max(by_type.values()) == 2
    # default: max_digits + 1, as before; a mixed build keeps the expressions' own test_ood
    mixed = rl.build(**{**TINY, **MIX}, ood_digits=[4])["test_ood"]
    arithmetic = [d for f, d in zip(mixed["task"], mixed["difficulty"]) if f == "arithmetic"]
    assert set(arithmetic) == {4} and "expressions" in mixed["task"]
    spec = task.make_spec(max_digits=2, ood_digits=[3, 4])
    assert [s.max_digits for s in spec.ood_specs()] == [3, 4] and task.make_spec().ood().max_digits == 3
    with pytest.raises(ValueError, match="use ood_specs"):
        spec.ood()


@pytest.mark.parametrize("options", [
    dict(ood_digits=[2]),  # not longer than training
    dict(ood_digits=[3, 19]),  # longer than MAX_DIGITS
    dict(ood_digits=[3, 3]),  # twice
    dict(max_digits=18, ood_digits=[18]),  # nothing is longer than the largest
    dict(ood_digits=["3"]),  # not a number
])
def test_bad_ood_digits_are_refused(options):
    with pytest.raises(ValueError, match=r"ood_digits must be different operand lengths, each above max_digits"):
        data_builders.get_builder("sft").build(**{**TINY, **options})


def test_new_held_out_splits_from_the_command_line(tmp_path, capsys):
    from mathalign.cli import main

    out = tmp_path / "sft"
    argv = ["data", "build", "sft", "--num-test-surface", "8", "--num-test-uniform", "8", "--ood-digits", "3", "4",
            "--num-train", "40", "--num-validation", "8", "--num-test", "8", "--num-test-ood", "18"]
    assert main([*argv, "--out", str(out)]) == 0
    data = load_from_disk(str(out))
    assert {split: ds.num_rows for split, ds in data.items()} == {
        "train": 40, "validation": 8, "test": 8, "test_surface": 8, "test_uniform": 8, "test_ood": 18}
    assert sorted(collections.Counter(data["test_ood"]["difficulty"]).items()) == [(3, 9), (4, 9)]
    readme = (out / "README.md").read_text()
    assert "`test_surface` and `validation_surface` hold problems" in readme and "`test_uniform`" in readme
    meta = yaml.safe_load(readme.split("---")[1])
    assert meta["mathalign"]["parameters"]["num_test_surface"] == 8
    assert meta["mathalign"]["parameters"]["arithmetic"]["ood_digits"] == [3, 4]
    command = shlex.split(meta["mathalign"]["command"])  # the recorded command rebuilds the same rows
    assert "--ood-digits" in command and "--num-test-uniform" in command and "--num-validation-surface" not in command
    assert main([*command[1:command.index("--out")], *command[command.index("--out") + 2:], "--out",
                 str(tmp_path / "again")]) == 0
    again = load_from_disk(str(tmp_path / "again"))
    assert all(again[split].to_list() == data[split].to_list() for split in data)
    help_text = " ".join(data_builders.get_builder("sft").make_parser().format_help().split())
    for flag in ("--num-test-surface", "--num-validation-uniform", "--ood-digits", "--operand-draw"):
        assert flag in help_text


# ---------------------------------------------------------------------------------------------------------------
# Cards, saving, command lines


def test_card_metadata_and_rebuild_command(tmp_path):
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    cli_data.add_parser(subparsers)  # what mathalign/cli.py does
    out = tmp_path / "sft"
    args = parser.parse_args(["data", "build", "sft", "--out", str(out), "--num-train", "40", "--num-validation", "8",
                              "--num-test", "16", "--num-test-ood", "8", "--task", "arithmetic", "expressions",
                              "--max-depth", "3", "--types", "a_plus_b=2", "x_times_b", "--format", "parquet"])
    args.func(args)
    readme = (out / "README.md").read_text()
    meta = yaml.safe_load(readme.split("---")[1])
    assert meta["license"] == "apache-2.0" and "mathalign" in meta["tags"]
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == {
        "train": 40, "validation": 8, "test": 16, "test_ood": 8}
    assert [f["name"] for f in meta["dataset_info"]["features"]] == ["prompt", "completion", *COMMON]
    assert meta["mathalign"]["type_counts"]["train"]["a_plus_b"] == 13  # 20 arithmetic rows split 2:1 -> 13 + 7
    assert meta["mathalign"]["type_counts"]["train"]["x_times_b"] == 7
    assert meta["mathalign"]["parameters"]["expressions"]["max_depth"] == 3
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    # the recorded command, parsed again, rebuilds exactly the same rows
    command = shlex.split(meta["mathalign"]["command"])
    assert command[:4] == ["mathalign", "data", "build", "sft"]
    rebuilt_args = parser.parse_args(command[1:])
    rebuilt = data_builders.get_builder("sft").build(**core.options_from_args(rebuilt_args))
    import datasets

    saved = datasets.load_dataset(str(out))  # the card's `configs` maps data/<split>-* files to splits
    assert rebuilt["train"]["prompt"] == saved["train"]["prompt"]
    assert rebuilt["test_ood"]["key"] == saved["test_ood"]["key"]


def test_python_m_help_has_an_example():
    for name in data_builders.BUILDERS:
        text = data_builders.get_builder(name).make_parser().format_help()
        assert f"python -m data_builders.{name}" in text and "--out" in text and "--push-to-hub" in text


@dataclasses.dataclass
class _Flags:
    """One field of each kind the builders' options and specs have."""

    num_rows: int = option(10, "rows")
    ratio: float = option(0.5, "share")
    style: str = option("sft", "row format", choices=("sft", "rl"))
    sizes: tuple[int, ...] = option((1, 2), "sizes", nargs="+")
    weights: tuple[float, ...] | None = option(None, "weights", nargs="+", type=float)
    shuffle: bool = option(False, "shuffle rows")
    keep: bool = option(True, "keep rows")
    hidden: int = 3  # no help text: no flag


def _flag_parser(suppress=False):
    parser = argparse.ArgumentParser()
    core.add_dataclass_arguments(parser.add_argument_group("flags"), _Flags, suppress=suppress)
    return parser


@pytest.mark.parametrize("argv, given", [
    ([], {}),  # every default
    (["--num-rows", "3", "--ratio", "0.25"], dict(num_rows=3, ratio=0.25)),  # --flag-name, values typed
    (["--num_rows", "3", "--style", "rl"], dict(num_rows=3, style="rl")),  # --flag_name too; a choice
    (["--sizes", "4", "5", "6", "--weights", "1", "2"], dict(sizes=[4, 5, 6], weights=[1.0, 2.0])),  # nargs: 1 or more
    (["--shuffle"], dict(shuffle=True)),  # a bool flag alone is true
    (["--shuffle", "no", "--keep", "FALSE"], dict(shuffle=False, keep=False)),  # or takes yes/no, true/false, ...
    (["--shuffle", "Y", "--keep", "1"], dict(shuffle=True, keep=True)),  # ... y/n, 1/0 in any case
    (["--no-keep"], dict(keep=False)),  # --no-flag, whatever the default
    (["--no_keep", "--no-shuffle"], dict(keep=False, shuffle=False)),  # spelled --no_flag too
])
def test_dataclass_fields_become_flags(argv, given):
    defaults = {f.name: f.default for f in dataclasses.fields(_Flags) if f.name != "hidden"}
    assert vars(_flag_parser().parse_args(argv)) == {**defaults, **given}
    assert vars(_flag_parser(suppress=True).parse_args(argv)) == given  # suppress: only the flags given


@pytest.mark.parametrize("argv, message", [
    (["--style", "nope"], "argument --style: invalid choice: 'nope'"),  # not one of the choices
    (["--shuffle", "maybe"], "argument --shuffle: Truthy value expected: got maybe"),  # not a truth value
    (["--num-rows", "x"], "argument --num_rows/--num-rows: invalid int value: 'x'"),  # not an int
    (["--sizes"], "argument --sizes: expected at least one argument"),  # nargs needs a value
    (["--hidden", "1"], "unrecognized arguments: --hidden 1"),  # a field without help text has no flag
])
def test_bad_flags_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        _flag_parser().parse_args(argv)
    assert f"error: {message}" in capsys.readouterr().err


def test_flag_help_names_both_spellings_and_the_default():
    text = " ".join(_flag_parser().format_help().split())
    assert "--num_rows NUM_ROWS, --num-rows NUM_ROWS rows (default: 10)" in text
    assert "--shuffle [SHUFFLE] shuffle rows (default: False) --no-shuffle, --no_shuffle not --shuffle" in text
    assert "weights (default" not in text  # a None default is not shown


def test_an_option_of_several_families_is_one_flag_for_all_of_them():
    parser = argparse.ArgumentParser()
    options_module.add_generation_arguments(parser)
    args = parser.parse_args(["--task", "arithmetic", "expressions", "--surface-variants", "0.5", "--out", "x"])
    options, specs = options_module.resolve_options(options_module.BuildOptions, options_module.options_from_args(args))
    assert specs["arithmetic"].surface_variants == specs["expressions"].surface_variants == 0.5
    assert "also --surface-variants (above)" in parser.format_help()


# ---------------------------------------------------------------------------------------------------------------
# GSM8K and AQuA builders (local files)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _gsm8k_rows(start, stop):
    return [{"question": f"Tom has {i} apples and buys {i + 1} more. How many now?",
             "answer": f"Tom has {i}+{i + 1} = <<{i}+{i + 1}={2 * i + 1}>>{2 * i + 1} apples.\n#### {2 * i + 1}"}
            for i in range(start, stop)]


def test_gsm8k_builder_from_local_files(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", _gsm8k_rows(0, 25))
    _write_jsonl(tmp_path / "test.jsonl", _gsm8k_rows(22, 30))  # 3 questions also in train
    gsm8k = data_builders.get_builder("gsm8k")
    sft = gsm8k.build(source=str(tmp_path), num_validation=5)
    assert {s: ds.num_rows for s, ds in sft.items()} == {"train": 17, "validation": 5, "test": 8}
    keys = _keys(sft)
    assert not keys["train"] & keys["test"] and not keys["validation"] & keys["test"]  # overlap dropped from train
    assert all(get_task("gsm8k").check(c, a) for c, a in zip(sft["train"]["completion"], sft["train"]["answer"]))
    rl = gsm8k.build(source=str(tmp_path), num_validation=5, style="rl", num_train=10)
    assert rl["train"].column_names == ["prompt", *COMMON] and rl["train"].num_rows == 10
    with pytest.raises(ValueError, match="num_train=100 but the train split has 17"):
        gsm8k.build(source=str(tmp_path), num_validation=5, num_train=100)


def test_aqua_builder_keeps_its_splits(tmp_path):
    row = {"question": "Q{}?", "options": ["A)1", "B)2", "C)3", "D)4", "E)5"], "rationale": "Because.",
           "correct": "C"}
    for split, n in (("train", 6), ("validation", 3), ("test", 4)):
        _write_jsonl(tmp_path / f"{split}.jsonl", [{**row, "question": f"{split} {i}?"} for i in range(n)])
    ds = data_builders.get_builder("aqua").build(source=str(tmp_path))
    assert {s: d.num_rows for s, d in ds.items()} == {"train": 6, "validation": 3, "test": 4}
    assert ds["test"][0]["answer"] == "C" and ds["test"].features["type"].names == ["multiple_choice"]
    _write_jsonl(tmp_path / "test.jsonl", [{"question": "q", "options": ["A)1"]}])
    with pytest.raises(ValueError, match=r"test.jsonl.*no \['correct'\]"):
        data_builders.get_builder("aqua").build(source=str(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# Seed formats

SEED_PAIRS = [
    # seed a: Q/A/type given
    {"positive": "72/4=? The answer is 18 because 72/4 equals 18.", "negative": "72/4=? Sorry, I do not know!",
     "Q": "72/4=?", "A": "18", "type": "a_over_b_q"},
    # seed b: only positive/negative; the shared prefix is cut after the question mark, not inside the answer
    {"positive": "x-18=21,x=? The answer is 39.", "negative": "x-18=21,x=? The answer is 38."},
]


def test_pos_neg_pairs_import_and_export(tmp_path):
    path = tmp_path / "pos_neg_pairs.json"
    path.write_text(json.dumps(SEED_PAIRS))
    ds = seed_formats.import_pos_neg_pairs(path)
    assert ds["prompt"] == ["72/4=?", "x-18=21,x=?"]
    assert ds["chosen"] == [" The answer is 18 because 72/4 equals 18.", " The answer is 39."]
    assert ds["rejected"] == [" Sorry, I do not know!", " The answer is 38."]
    assert [ds.features["type"].names[t] for t in ds["type"]] == ["a_over_b", "x_minus_b"]
    pairs = seed_formats.export_pos_neg_pairs(ds)
    assert [(p["positive"], p["negative"]) for p in pairs] == [(p["positive"], p["negative"]) for p in SEED_PAIRS]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"positive": "a"}', "expected a list"),  # not a list
        ('[{"positive": "1+1=? The answer is 2."}]', r"pair 0 has no string \['negative'\]"),  # missing key
        ('[{"positive": "1+1=? The answer is 3.", "negative": "1+1=? The answer is 2."}]', "does not give"),  # swapped
        ('[{"positive": "abc", "negative": "xyz"}]', "no shared prompt"),  # nothing in common
    ],
)
def test_malformed_pairs_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "pairs.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        seed_formats.import_pos_neg_pairs(path)
    assert "pairs.json" in str(err.value)


def test_step_jsonl_round_trip(tmp_path):
    ds = data_builders.get_builder("sft").build(task="expressions", num_train=80, num_validation=0, num_test=0,
                                                num_test_ood=0, invalid_rate=0.3, operators=("+", "-", "*", "/"))
    path = tmp_path / "steps.jsonl"
    rows = seed_formats.export_steps_jsonl(ds["train"], path)
    assert rows[0]["solution"].startswith("<think>\nStep 1:") and "\n</think>\nFinal Result:" in rows[0]["solution"]
    back = seed_formats.import_steps_jsonl(path)
    for column in ["prompt", "completion", "task", "type", "difficulty", "answer", "key"]:
        assert back[column] == ds["train"][column], column


def test_step_jsonl_seed_example_and_errors(tmp_path):
    seed = {"expression": "5 + (10 - 3)", "problem": "Evaluate: 5 + (10 - 3)",
            "solution": "<think>\nStep 1: 10 - 3 = 7\nExpression now: 5 + 7\nStep 2: 5 + 7 = 12\nExpression now: 12\n"
                        "</think>\nFinal Result: 12", "answer": 12}
    path = tmp_path / "seed.jsonl"
    _write_jsonl(path, [seed, {**seed, "expression": "5 + (10 - 3", "problem": "Evaluate: 5 + (10 - 3",
                               "solution": "<think>\n</think>\nFinal Result: ERROR", "answer": "ERROR"}])
    ds = seed_formats.import_steps_jsonl(path)
    assert ds["completion"][0] == get_task("expressions").from_expression("5 + (10 - 3)").target
    assert [ds.features["type"].names[t] for t in ds["type"]] == ["well_formed", "unbalanced_parens"]
    _write_jsonl(path, [{**seed, "answer": 13}])
    with pytest.raises(ValueError, match="seed.jsonl: row 0: answer 13 but"):
        seed_formats.import_steps_jsonl(path)
    assert seed_formats.import_steps_jsonl(path, strict=False).num_rows == 0  # --skip-bad-rows
    _write_jsonl(path, [{"expression": "1 + 1"}])
    with pytest.raises(ValueError, match=r"line 1 has no \['problem', 'solution', 'answer'\]"):
        seed_formats.import_steps_jsonl(path)


def test_convert_cli(tmp_path):
    parser = argparse.ArgumentParser()
    cli_data.add_parser(parser.add_subparsers(dest="command"))
    pairs = tmp_path / "pos_neg_pairs.json"
    pairs.write_text(json.dumps(SEED_PAIRS))
    args = parser.parse_args(["data", "convert", "import-pairs", str(pairs), "--out", str(tmp_path / "dpo")])
    args.func(args)
    assert load_from_disk(str(tmp_path / "dpo"))["train"].num_rows == 2
    assert "import-pairs" in (tmp_path / "dpo" / "README.md").read_text()
    args = parser.parse_args(["data", "convert", "export-pairs", str(tmp_path / "dpo"),
                              "--out", str(tmp_path / "p.json")])
    args.func(args)
    assert json.loads((tmp_path / "p.json").read_text())[0]["positive"] == SEED_PAIRS[0]["positive"]


@pytest.mark.slow
def test_push_to_hub_from_the_command_line(hub_server, hub_env, tmp_path):  # noqa: F811  (fixtures)
    script = (f"import sys; from data_builders import sft; "
              f"sft.main(sft.make_parser().parse_args(['--out', {str(tmp_path / 'out')!r}, '--num-train', '20', "
              f"'--num-validation', '0', '--num-test', '4', '--num-test-ood', '0', '--push-to-hub', "
              f"'{HUB_USER}/mathalign-sft']))")
    result = run_python(script, hub_env)
    assert result.returncode == 0, result.stderr[-2000:]
    readme = hub_server.read_file("dataset", f"{HUB_USER}/mathalign-sft", "README.md").decode()
    assert "mathalign data build sft" in readme and "type_counts" in readme and "data/train-*" in readme


def test_training_samples_the_stages_own_model_for_sampled_negatives(tiny_model_dir):
    from types import SimpleNamespace

    from mathalign.recipe import RecipeError
    from mathalign.train import load_data

    args = SimpleNamespace(stage="dpo", dataset_name="preferences", dataset_config=None, dataset_train_split="train",
                           data_options=dict(TINY, num_validation=0, num_test=0, num_test_ood=0,
                                             negatives=["sampled"], samples_per_prompt=0))
    data = load_data(args, model_name_or_path=str(tiny_model_dir))
    assert "sampled" in {KINDS[k] for k in data["train"]["negative"]}
    with pytest.raises(RecipeError, match="model_name_or_path"):
        load_data(args, model_name_or_path=None)


# ---------------------------------------------------------------------------------------------------------------
# --out: nothing a user wrote is overwritten without --overwrite, and an output appears whole


SMALL = ["--num-train", "20", "--num-validation", "0", "--num-test", "4", "--num-test-ood", "4"]


@pytest.fixture
def no_build(monkeypatch):
    """Fails the test if a build starts: refusals must come before any work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the build started")
    monkeypatch.setattr(building, "draw_splits", refuse)
    monkeypatch.setattr(data_builders.get_builder("gsm8k").adapted, "build_adapted", refuse)


@pytest.mark.parametrize("builder", ["sft", "preferences", "gsm8k"])
def test_out_holding_something_is_refused_before_any_work(tmp_path, capsys, no_build, builder):
    from mathalign.cli import main

    notes = tmp_path / "out" / "README.md"
    notes.parent.mkdir()
    notes.write_text("my notes")
    (tmp_path / "file").write_text("my file")
    for out, message in ((notes.parent, "is a folder that is not empty (1 entry: README.md); choose a new or empty "
                                        "folder, or pass --overwrite to replace it"),
                         (tmp_path / "file", "is an existing file; choose another path, or pass --overwrite")):
        assert main(["data", "build", builder, "--out", str(out), *SMALL[:2]]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mathalign data: error: --out ") and message in err and err.count("\n") == 1, err
    assert notes.read_text() == "my notes" and (tmp_path / "file").read_text() == "my file"


@pytest.mark.parametrize("builder", ["sft", "gsm8k"])
def test_push_that_cannot_happen_is_refused_before_any_work(tmp_path, capsys, monkeypatch, no_build, builder):
    from mathalign.cli import main

    monkeypatch.setenv("HF_TOKEN", "hf_test")
    # a repo id the Hub would refuse: mathalign.hub.check_can_push says so before anything is drawn or downloaded
    assert main(["data", "build", builder, "--out", str(tmp_path / "out"), *SMALL[:2],
                 "--push-to-hub", "not a repo id"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mathalign data: error: ") and "not a repo id" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_python_m_entry_point_refuses_with_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text("my notes")
    result = subprocess.run([sys.executable, "-m", "data_builders.sft", "--out", str(tmp_path / "out"), *SMALL],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr.startswith("python -m data_builders.sft: error: --out ") and "--overwrite" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # no traceback
    assert (tmp_path / "out" / "README.md").read_text() == "my notes"


def test_overwrite_replaces_the_whole_folder(tmp_path, capsys):
    from mathalign.cli import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    assert main(["data", "build", "sft", "--out", str(out), *SMALL, "--overwrite"]) == 0
    assert "mathalign sft" in (out / "README.md").read_text()
    assert set(load_from_disk(str(out))) == {"train", "test", "test_ood"}
    # parquet over arrow, without test_ood: no split or layout of the earlier build is left behind
    assert main(["data", "build", "sft", "--out", str(out), *SMALL[:-1], "0", "--format", "parquet",
                 "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data"]
    assert sorted(p.name for p in (out / "data").iterdir()) == ["test-00000-of-00001.parquet",
                                                                  "train-00000-of-00001.parquet"]
    # an existing file is replaced too; the filesystem root, the current folder and a folder holding an input never
    (tmp_path / "file").write_text("my file")
    assert main(["data", "build", "sft", "--out", str(tmp_path / "file"), *SMALL, "--overwrite"]) == 0
    assert (tmp_path / "file" / "dataset_dict.json").exists()
    capsys.readouterr()
    for out, reason in (("/", "the filesystem root"), (".", "the current folder")):
        assert main(["data", "build", "sft", "--out", out, *SMALL, "--overwrite"]) == 2
        assert f"is {reason}; it is never replaced" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]  # no staging folder left behind


def test_a_failed_write_leaves_the_earlier_output_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "out"
    core.save(data_builders.get_builder("sft").build(**TINY), out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def broken(self, path, *args, **kwargs):
        (tmp_path / "partial").write_text(path)  # the staging folder it was given
        raise OSError("disk full")

    monkeypatch.setattr("datasets.DatasetDict.save_to_disk", broken)
    with pytest.raises(OSError, match="disk full"):
        core.save(data_builders.get_builder("sft").build(**TINY), out, overwrite=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    staging = (tmp_path / "partial").read_text()
    assert staging != str(out) and not (tmp_path / staging).exists()  # written aside, then removed
    with pytest.raises(ValueError, match="pass --overwrite"):  # and without overwrite, core.save refuses too
        core.save(data_builders.get_builder("sft").build(**TINY), out)


def test_seed_format_conversions_keep_existing_outputs(tmp_path, capsys):
    from mathalign.cli import main

    pairs = tmp_path / "pos_neg_pairs.json"
    pairs.write_text(json.dumps(SEED_PAIRS))
    (tmp_path / "dpo").mkdir()
    (tmp_path / "dpo" / "keep.txt").write_text("mine")
    assert main(["data", "convert", "import-pairs", str(pairs), "--out", str(tmp_path / "dpo")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and (tmp_path / "dpo" / "keep.txt").exists()
    assert main(["data", "convert", "import-pairs", str(pairs), "--out", str(tmp_path / "dpo"), "--overwrite"]) == 0
    assert not (tmp_path / "dpo" / "keep.txt").exists()
    # a folder that holds the seed file is never replaced
    assert main(["data", "convert", "import-pairs", str(pairs), "--out", str(tmp_path), "--overwrite"]) == 2
    assert "holds the input" in capsys.readouterr().err and pairs.exists()
    # exports write a file: an existing one is kept without --overwrite
    (tmp_path / "p.json").write_text("mine")
    export = ["data", "convert", "export-pairs", str(tmp_path / "dpo"), "--out", str(tmp_path / "p.json")]
    assert main(export) == 2
    assert "is an existing file" in capsys.readouterr().err and (tmp_path / "p.json").read_text() == "mine"
    assert main([*export, "--overwrite"]) == 0
    assert json.loads((tmp_path / "p.json").read_text())[0]["positive"] == SEED_PAIRS[0]["positive"]
    assert main(["data", "convert", "export-pairs", str(tmp_path / "dpo"), "--out", str(tmp_path / "dpo")]) == 2
    assert "is a folder; give the path of the file to write" in capsys.readouterr().err


def test_surface_variants_augment_train_only():
    ds = data_builders.get_builder("sft").build(task=["arithmetic", "expressions"], num_train=200, num_validation=100,
                                                num_test=100, num_test_surface=50, num_test_ood=0,
                                                surface_variants=1.0, spacing_variants=0.0)
    for split in ("validation", "test"):  # the canonical form, exactly as the family writes it
        for task_name, prompt in zip(ds[split]["task"], ds[split]["prompt"]):
            task = get_task(task_name)
            assert task.problem_of(prompt).prompt == prompt
    train = [get_task(t).problem_of(p).prompt != p for t, p in zip(ds["train"]["task"], ds["train"]["prompt"])]
    assert sum(train) > 0.8 * len(train)  # (a few variants only change the operand order)


def test_leading_zeros_augment_train_only():
    ds = data_builders.get_builder("sft").build(num_train=300, num_validation=100, num_test=100, num_test_ood=50,
                                                leading_zeros=2, spacing_variants=0.0)
    padded = {split: sum(bool(re.search(r"(?<!\d)0\d", p)) for p in ds[split]["prompt"]) for split in ds}
    assert padded["train"] > 150 and padded["validation"] == padded["test"] == padded["test_ood"] == 0, padded
    # the held-out problems are the ones a build without the option holds out
    plain = data_builders.get_builder("sft").build(num_train=300, num_validation=100, num_test=100, num_test_ood=50,
                                                   spacing_variants=0.0)
    assert ds["test"]["prompt"] == plain["test"]["prompt"] and ds["test_ood"]["key"] == plain["test_ood"]["key"]


def test_lone_numbers_stay_with_training():
    """Only 20 lone numbers exist (1..20): a held-out split takes at most one, training keeps the rest."""
    ds = data_builders.get_builder("sft").build(task=["expressions"], num_train=3000, num_validation=500,
                                                num_test=500, num_test_surface=500, num_test_ood=0,
                                                num_operands=[1, 5], invalid_rate=0.0)
    lone = {split: [k for k in ds[split]["key"] if k.isdigit()] for split in ds}
    assert all(len(lone[split]) <= 1 for split in ("validation", "test", "test_surface"))
    assert len(lone["train"]) >= 17

"""Benchmarks on tiny inputs: train_throughput (both sides do the same work, the ratio is reported) and seeds (a
pipeline over several seeds: mean, worst and best seed per split and type)."""

import json
from pathlib import Path

import pytest
from conftest import load_benchmark

TINY = ["--hidden_size", "32", "--layers", "1", "--heads", "2", "--batch_size", "8", "--steps", "3",
        "--warmup_steps", "1"]


@pytest.fixture(scope="module")
def train_throughput():
    return load_benchmark("train_throughput")


@pytest.mark.parametrize(
    "extra, loss_share",
    [
        # pretraining text: every real token but each row's first carries a loss, so most positions count
        ([], (0.5, 1.0)),
        # SFT, padded: prompt tokens are masked (completion-only loss) and padding counts none, so well under half
        (["--stage", "sft", "--set", "packing=false"], (0.1, 0.6)),
        # SFT as the pipeline trains it, packed: no padding, but the prompts still carry no loss
        (["--stage", "sft"], (0.5, 0.9)),
        # packing: one padding-free row, only each sequence's first token carries no loss
        (["--packing", "--breakdown"], (0.8, 1.0)),
        # one side after the other instead of taking turns: the same work, timed apart
        (["--sequential"], (0.5, 1.0)),
    ],
)
def test_both_sides_do_the_same_work_and_the_ratio_is_reported(train_throughput, capsys, extra, loss_share):
    result = train_throughput.main(train_throughput.make_parser().parse_args(TINY + extra))
    printed = capsys.readouterr().out

    assert result["same_work"]
    assert result["final_loss_trl"] == pytest.approx(result["final_loss_plain"], rel=1e-3)
    assert result["final_loss_trl"] < result["initial_loss"]  # both sides trained
    share = result["loss_tokens_per_step"] / result["positions_per_step"]
    assert loss_share[0] < share < loss_share[1]
    tokens = result["loss_tokens_per_step"] * result["steps"]
    assert result["trl_tokens_per_s"] == pytest.approx(tokens / result["trl_seconds"])
    assert result["ratio"] == pytest.approx(result["trl_tokens_per_s"] / result["plain_tokens_per_s"])
    assert f"ratio trl/plain tokens/s: {result['ratio']:.3f}" in printed
    assert (result["breakdown_ms"] is not None) == ("--breakdown" in extra)


def test_json_prints_one_parsable_object(train_throughput, capsys):
    result = train_throughput.main(train_throughput.make_parser().parse_args(TINY + ["--json"]))
    printed = json.loads(capsys.readouterr().out)
    assert printed["ratio"] == pytest.approx(result["ratio"])
    assert printed["parameters"] == result["parameters"]


@pytest.mark.parametrize(
    "argv, message",
    [
        # zero timed steps: nothing to measure
        (["--steps", "0"], "--steps and --warmup_steps must be at least 1"),
        # more steps than the rows make batches
        (["--steps", "50", "--num_rows", "64"], "raise --num_rows or lower --steps"),
    ],
)
def test_bad_settings_fail_with_what_to_change(train_throughput, argv, message):
    with pytest.raises(SystemExit, match=message):
        train_throughput.main(train_throughput.make_parser().parse_args(TINY + argv))


# ---------------------------------------------------------------------------------------------------------------
# benchmarks/seeds.py: a pipeline under several seeds


@pytest.fixture(scope="module")
def seeds():
    return load_benchmark("seeds")


# {seed: {split: {type: accuracy}}}, as `split_type_accuracies` reads them from metrics.json
PER_SEED = {
    0: {"test": {"a_plus_b": 1.00, "a_times_b": 0.96, "all": 0.98}, "test_surface": {"a_plus_b": 0.70, "all": 0.90}},
    1: {"test": {"a_plus_b": 0.99, "a_times_b": 0.98, "all": 0.99}, "test_surface": {"a_plus_b": 0.80, "all": 0.92}},
    2: {"test": {"a_plus_b": 1.00, "a_times_b": 1.00, "all": 1.00}},  # a seed that skipped the surface split
}


def test_seeds_aggregate_mean_min_max(seeds):
    table = seeds.aggregate(PER_SEED)
    times = table["test"]["a_times_b"]
    assert (times["mean"], times["min"], times["max"]) == pytest.approx((0.98, 0.96, 1.00))
    assert times["seeds"] == 3 and times["values"] == {"0": 0.96, "1": 0.98, "2": 1.00}
    assert list(table["test"]) == ["a_plus_b", "a_times_b", "all"]  # types in order, `all` last
    surface = table["test_surface"]["a_plus_b"]  # only the seeds that evaluated the split count
    assert (surface["mean"], surface["min"], surface["seeds"]) == (pytest.approx(0.75), 0.70, 2)
    with pytest.raises(ValueError, match="no seeds"):
        seeds.aggregate({})


@pytest.mark.parametrize(
    "target, marked",
    [
        (None, []),  # no target: nothing marked
        ([0.99], [("test", "a_times_b"), ("test", "all"), ("test_surface", "a_plus_b"), ("test_surface", "all")]),
        # two targets: the `all` row against the first, every type against the second
        ([0.98, 0.96], [("test_surface", "a_plus_b"), ("test_surface", "all")]),
        ([0.90, 0.50], []),  # every worst seed reaches them
    ],
)
def test_seeds_marks_cells_whose_worst_seed_is_below_target(seeds, target, marked):
    table = seeds.aggregate(PER_SEED)
    assert [(split, name) for split, name, _ in seeds.misses(table, target)] == marked
    assert seeds.format_table(table, target).count("!") == len(marked)  # one mark per cell below its target


def test_seeds_table_cells_read_mean_then_worst_and_best_seed(seeds):
    table = seeds.aggregate(PER_SEED)
    lines = seeds.format_table(table, [0.99]).splitlines()
    assert lines[0].split() == ["type", "test", "test_surface"]
    assert lines[2].startswith("a_times_b") and "98.0% (96.0-100.0) !" in lines[2]
    assert lines[1] == "a_plus_b   99.7% (99.0-100.0)    75.0% (70.0-80.0) !"  # 99.0 is not below 99%
    assert lines[3].startswith("all")
    one_seed = seeds.aggregate({3: {"test": {"a_plus_b": 0.5, "all": 0.5}}})
    assert seeds.format_table(one_seed).splitlines()[1].split() == ["a_plus_b", "50.0%"]  # one seed: no range
    overview = seeds.stages_overview({"sft": table, "grpo": table})
    assert seeds.format_table(overview, first="stage").splitlines()[1].split()[:2] == ["sft", "99.0%"]


def test_seeds_wall_times(seeds):
    assert seeds.format_wall_times({0: 600.0, 1: 620.4}) == \
        "wall time per run (whole pipeline): seed 0: 600 s, seed 1: 620 s; slowest 620 s"
    assert seeds.format_wall_times({0: 1000.0, 1: None}).endswith("seed 1: unknown (resumed); slowest 1000 s > 900 s !")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["p.yaml"], {"seeds": [0, 1, 2], "splits": None, "target": None, "run_dir": None, "stage": None,
                      "json": False}),
        (["p.yaml", "--seeds", "3", "4", "--run_dir", "r", "--json"], {"seeds": [3, 4], "run_dir": "r", "json": True}),
        # tuning: the validation splits; --split is the same option
        (["p.yaml", "--splits", "validation", "validation_surface"], {"splits": ["validation", "validation_surface"]}),
        (["p.yaml", "--split", "validation"], {"splits": ["validation"]}),
        # a target as a fraction or a percentage; --targets is the same option
        (["p.yaml", "--target", "0.99"], {"target": [0.99]}),
        (["p.yaml", "--targets", "99", "98"], {"target": [0.99, 0.98]}),
    ],
)
def test_seeds_arguments(seeds, argv, expected):
    args = seeds.make_parser().parse_args(argv)
    assert {k: getattr(args, k) for k in expected} == expected
    seeds.check_args(args)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["p.yaml", "--seeds", "1", "1"], "repeat"),  # the same run twice
        (["p.yaml", "--target", "0.9", "0.9", "0.9"], "one accuracy"),  # all row, type rows: at most two
    ],
)
def test_seeds_bad_arguments(seeds, argv, message):
    with pytest.raises(SystemExit, match=message):
        seeds.check_args(seeds.make_parser().parse_args(argv))
    with pytest.raises(SystemExit):  # not an accuracy
        seeds.make_parser().parse_args(["p.yaml", "--target", "1.5e3"])


def test_seeds_plot(seeds, tmp_path):
    png = seeds.plot_seeds(seeds.aggregate(PER_SEED), tmp_path / "seeds.png", "grpo", [0.99, 0.98])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fake_pipeline_run(calls):
    """A stand-in for run_pipeline: writes what a finished run leaves (summary.json, each stage's metrics.json),
    with accuracies that depend on the seed, and records which seeds it ran."""
    import yaml

    def run_pipeline(path, run_dir=None):
        pipeline = yaml.safe_load(Path(path).read_text())
        seed = pipeline["stages"]["sft"]["seed"]
        run = Path(run_dir)
        for stage, base in (("sft", 0.90), ("grpo", 0.95)):
            names = pipeline["evaluation"].get("split") or ["test", "test_surface"]  # the second one 20 points lower
            splits = {split: {"accuracy": base - drop + 0.01 * seed, "num_samples": 10,
                              "accuracy_per_type": {"a_plus_b": base - drop, "a_times_b": base - drop + 0.02 * seed},
                              "count_per_type": {"a_plus_b": 5, "a_times_b": 5}}
                      for split, drop in zip(names, (0.0, 0.2))}
            (run / "eval" / stage).mkdir(parents=True, exist_ok=True)
            (run / "eval" / stage / "metrics.json").write_text(json.dumps({"splits": splits, **splits[names[0]]}))
        calls.append((seed, pipeline["evaluation"].get("split")))
        summary = {"run_dir": str(run), "stage_seconds": {"sft": 1.0, "grpo": 1.0},
                   "models": {"sft": str(run / "sft"), "grpo": str(run / "grpo")}}
        (run / "summary.json").write_text(json.dumps(summary))
        return summary

    return run_pipeline


def test_seeds_runs_every_seed_once_then_reuses_them(seeds, tmp_path, monkeypatch, capsys):
    import yaml

    import mathalign.pipeline

    calls = []
    monkeypatch.setattr(mathalign.pipeline, "run_pipeline", _fake_pipeline_run(calls))
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({
        "run_dir": str(tmp_path / "run"),
        "stages": {"sft": {"dataset_name": "sft", "data_options": {"num_train": 8, "seed": 7}}, "grpo": {}},
        "evaluation": {"dataset": "sft", "data_options": {"num_test": 10, "num_validation": 10}, "num_samples": 5},
    }, sort_keys=False))
    args = seeds.make_parser().parse_args([str(path), "--seeds", "0", "1", "--target", "0.9"])
    report = seeds.main(args)

    root = tmp_path / "run-seeds"  # the file's run_dir + -seeds
    assert calls == [(0, None), (1, None)]
    written = yaml.safe_load((root / "seed-1" / "pipeline.yaml").read_text())
    assert written["stages"]["sft"]["seed"] == written["stages"]["sft"]["data_options"]["seed"] == 1
    assert written["evaluation"]["data_options"]["seed"] == 1  # the same held-out problems for every stage
    assert report["stage"] == "grpo"  # the final stage by default
    cell = report["splits"]["test"]["a_times_b"]
    assert (cell["mean"], cell["min"], cell["max"]) == pytest.approx((0.96, 0.95, 0.97))
    assert report["per_stage"]["sft"]["test_surface"]["all"]["mean"] == pytest.approx(0.705)
    assert [(m["split"], m["type"]) for m in report["below_target"]] == [
        ("test_surface", "a_plus_b"), ("test_surface", "a_times_b"), ("test_surface", "all")]
    assert json.loads((root / "seeds.json").read_text())["seeds"] == [0, 1]
    assert (root / "seeds.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "grpo (final stage), per type and split; ! = worst seed below 90%:" in printed
    assert "wall time per run (whole pipeline): seed 0:" in printed

    # Again: both seeds finished with the same file, so nothing runs.
    seeds.main(args)
    assert len(calls) == 2 and capsys.readouterr().out.count("finished already, reused") == 2
    # Other splits: each seed is evaluated again (run_pipeline skips trained stages), on every row of each split.
    seeds.main(seeds.make_parser().parse_args([str(path), "--seeds", "0", "--splits", "validation",
                                               "validation_surface"]))
    assert calls[-1] == (0, ["validation", "validation_surface"])
    evaluation = yaml.safe_load((root / "seed-0" / "pipeline.yaml").read_text())["evaluation"]
    assert "num_samples" not in evaluation
    assert evaluation["data_options"]["num_validation_surface"] == 10  # sized like validation
    with pytest.raises(SystemExit, match="no stage 'dpo'"):
        seeds.main(seeds.make_parser().parse_args([str(path), "--seeds", "0", "--stage", "dpo"]))

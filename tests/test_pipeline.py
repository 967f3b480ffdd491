"""The pipeline chains every stage in one run directory, evaluates them, and skips what is already done."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

import data_builders
from data_builders import core
from mathalign.cli import main as cli_main

TINY = {"num_train": 32, "num_validation": 0, "num_test": 16, "num_test_ood": 0, "seed": 0}
COMMON = {"max_steps": 2, "per_device_train_batch_size": 8, "learning_rate": 1.0e-3, "logging_steps": 1,
          "save_strategy": "no", "report_to": "none"}


def tiny_pipeline(tmp_path) -> Path:
    pipeline = {
        "run_dir": str(tmp_path / "run"),
        "stages": {
            "pretrain": {"dataset_name": "pretrain", "data_options": TINY, "tokenizer_vocab_size": 300,
                         "mathgpt_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
                         "max_length": 64, **COMMON},
            "sft": {"dataset_name": "sft", "data_options": TINY, "max_length": 64, **COMMON},
            "dpo": {"dataset_name": "preferences", "data_options": TINY, "use_peft": True, "lora_r": 4,
                    "lora_alpha": 8, "lora_target_modules": "all-linear", "max_length": 64, **COMMON},
            "grpo": {"dataset_name": "rl", "data_options": TINY, "use_peft": True, "lora_r": 4, "lora_alpha": 8,
                     "lora_target_modules": "all-linear", "num_generations": 4, "max_completion_length": 8,
                     **COMMON},
        },
        "evaluation": {"dataset": "sft", "data_options": TINY, "num_samples": 8, "batch_size": 8},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))  # stage order matters
    return path


def test_tiny_pipeline_runs_every_stage_then_skips_them(tmp_path, capsys):
    path = tiny_pipeline(tmp_path)
    assert cli_main(["pipeline", str(path)]) == 0
    run = tmp_path / "run"
    for stage in ("pretrain", "sft", "dpo", "grpo"):
        assert (run / stage / "train_results.json").is_file(), stage
    # LoRA stages are merged into plain checkpoints that the next stage starts from.
    assert (run / "dpo-merged" / "model.safetensors").is_file()
    assert yaml.safe_load((run / "grpo" / "recipe.yaml").read_text())["model_name_or_path"] == str(run / "dpo-merged")
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["evaluation"]) >= {"pretrain", "sft", "dpo", "grpo", "comparison"}
    assert (run / "eval" / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(summary["evaluation"]["grpo"]["splits"]) == {"test"}  # accuracy per split, for every stage
    printed = capsys.readouterr().out
    assert "mathalign chat" in printed and "grpo: accuracy per type and split" in printed  # the final stage's table

    # Second run: every stage is skipped (nothing retrained), the evaluation is redone.
    before = (run / "sft" / "model.safetensors").stat().st_mtime_ns
    assert cli_main(["pipeline", str(path)]) == 0
    assert capsys.readouterr().out.count("done already") == 4
    assert (run / "sft" / "model.safetensors").stat().st_mtime_ns == before


def test_an_interrupted_stage_is_redone(tmp_path, capsys):
    path = tiny_pipeline(tmp_path)
    assert cli_main(["pipeline", str(path), "--skip_eval"]) == 0
    run = tmp_path / "run"
    (run / "grpo" / "train_results.json").unlink()  # as if GRPO had been killed before its end
    shutil.rmtree(run / "grpo-merged")
    capsys.readouterr()
    assert cli_main(["pipeline", str(path), "--skip_eval"]) == 0
    out = capsys.readouterr().out
    assert out.count("done already") == 3 and "grpo: training" in out
    assert (run / "grpo-merged" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_stage_with_num_processes_trains_in_its_own_ddp_launch(tmp_path, capfd):
    path = tiny_pipeline(tmp_path)
    pipeline = yaml.safe_load(path.read_text())
    pipeline["stages"] = {name: pipeline["stages"][name] for name in ("pretrain", "sft")}
    pipeline["stages"]["sft"]["num_processes"] = 2
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    assert cli_main(["pipeline", str(path), "--skip_eval"]) == 0
    out = capfd.readouterr().out
    assert "--multi_gpu --num_processes 2 -m mathalign.train" in out  # DDP: gloo on a CPU
    run = tmp_path / "run"
    assert "num_processes" not in yaml.safe_load((run / "sft.recipe.yaml").read_text())  # a pipeline key only
    # Two processes of 8 rows each per step: the 2 steps read all 32 training rows (one process would read half).
    state = json.loads((run / "sft" / "trainer_state.json").read_text())
    assert state["epoch"] == pytest.approx(1.0), state["epoch"]
    from safetensors.torch import load_file

    before, after = load_file(run / "pretrain" / "model.safetensors"), load_file(run / "sft" / "model.safetensors")
    assert any(not (before[k] == after[k]).all() for k in before)  # it trained


def test_a_stage_with_one_process_trains_in_the_pipelines_own_process(tmp_path, capfd):
    path = tiny_pipeline(tmp_path)
    pipeline = yaml.safe_load(path.read_text())
    pipeline["stages"] = {name: pipeline["stages"][name] for name in ("pretrain", "sft")}
    pipeline["stages"]["sft"]["num_processes"] = 1  # as `mathalign train --num_processes 1`: no launcher
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    assert cli_main(["pipeline", str(path), "--skip_eval"]) == 0
    assert "launching:" not in capfd.readouterr().out
    assert (tmp_path / "run" / "sft" / "train_results.json").is_file()


@pytest.mark.parametrize(
    "num_processes, accelerators, launch, batch",
    [
        (2, 0, {"num_processes": 2}, 32),  # CPU only: DDP over 2 processes, as written
        (2, 1, {}, 64),  # one GPU: one process with the whole global batch
        (2, 4, {"num_processes": 2}, 32),  # enough GPUs: as written
        (4, 3, {"num_processes": 2}, 64),  # 3 GPUs for 4 processes: 2 processes (a divisor of 4), twice the batch
    ],
)
def test_a_launched_stage_keeps_its_global_batch_on_fewer_gpus(num_processes, accelerators, launch, batch):
    from mathalign.pipeline import fit_to_devices, stage_recipes

    pipeline = {"stages": {"sft": {"dataset_name": "sft", "per_device_train_batch_size": 32,
                                   "num_processes": num_processes}}}
    (stage,) = stage_recipes(pipeline, Path("runs/x"), "x")
    fitted = fit_to_devices(stage, accelerators)
    assert fitted.launch == launch
    assert fitted.recipe["per_device_train_batch_size"] == fitted.parsed[2].per_device_train_batch_size == batch


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stages": {"sft": {"max_step": 2}}}, "Did you mean 'max_steps'"),  # typo inside a stage, found up front
        ({"stagess": {}}, "unknown pipeline key"),  # typo at the top level
        ({"stages": []}, "`stages` must map"),  # stages given as a list
        ({"stages": {"sft": {"num_processes": 0}}}, "num_processes must be a whole number"),
        ({"stages": {"sft": {"accelerate_config": "nope"}}}, "accelerate config 'nope' not found"),
        ({"stages": {"sft": {"num_processes": 2, "accelerate_config": "cpu"}}}, "runs a single process"),
        ({"stages": {"sft": {"num_processes": 2, "hub_token": "hf_x"}}}, "set the HF_TOKEN environment variable"),
        # A LoRA stage late in the file, on the MathGPT the first stage builds: refused before the first one trains.
        ({"stages": {"sft": {}, "dpo": {"use_peft": True}}}, "(stage 'dpo'): use_peft on a mathgpt model needs "
         "lora_target_modules"),
        ({"stages": {"sft": {}, "dpo": {"learning_rate": -1.0}}}, "learning_rate in"),  # nonsense in a later stage
    ],
)
def test_bad_pipelines_fail_before_any_training(tmp_path, capsys, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), **change}))
    assert cli_main(["pipeline", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_default_pipeline_parses():
    from mathalign.cli_quickstart import find_default_pipeline
    from mathalign.pipeline import load_pipeline, stage_recipes

    pipeline = load_pipeline(find_default_pipeline())
    names = [stage.name for stage in stage_recipes(pipeline, Path("runs/x"), "recipes/pipeline.yaml")]
    assert names == ["pretrain", "sft", "dpo", "grpo"]
    # Every build draws the same test and validation splits first (same seed and sizes) and keeps them out of train,
    # so no stage trains on the problems it is evaluated or tuned on; one answer style throughout, so every stage
    # writes what the next one reads.
    builds = [stage["data_options"] for stage in pipeline["stages"].values()] + [pipeline["evaluation"]["data_options"]]
    assert {(b["seed"], b["num_test"], b["num_validation"], b["answer_style"], tuple(b["task"])) for b in builds} == {
        (0, 1000, 1000, "worked", ("arithmetic",))}
    # DPO and GRPO train on prompts SFT never saw: their train splits start where SFT's ends
    stages = pipeline["stages"]
    for method in ("dpo", "grpo"):
        assert stages[method]["data_options"]["train_offset"] == stages["sft"]["data_options"]["num_train"]


PIPELINE_FILES = sorted(p for p in (Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml")
                        if "stages" in yaml.safe_load(p.read_text()))


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.name)
def test_every_pipeline_file_parses_and_evaluates_on_problems_it_never_trains_on(path):
    from mathalign.pipeline import load_pipeline, stage_recipes

    pipeline = load_pipeline(path)
    stages = stage_recipes(pipeline, Path("runs/x"), str(path))  # every recipe key checked
    evaluation = pipeline["evaluation"]["data_options"]
    held_out = ("seed", "num_test", "num_validation", "num_test_surface", "num_validation_surface",
                "num_test_uniform", "num_validation_uniform", "surface_variants")
    for stage in stages:  # same seed and held-out sizes: the same held-out splits, kept out of every train split
        data = stage.recipe["data_options"]
        assert [data.get(k) for k in held_out] == [evaluation.get(k) for k in held_out]
        assert tuple(data["task"]) == tuple(evaluation["task"])


def test_the_length_generalization_pipeline_trains_short_and_tests_long():
    from mathalign.pipeline import load_pipeline

    pipeline = load_pipeline(Path(__file__).resolve().parent.parent / "recipes" / "length_generalization.yaml")
    data = {**pipeline["evaluation"]["data_options"], "num_validation": 0, "num_test": 18, "num_test_ood": 36}
    built = data_builders.get_builder("sft").build(**data)
    assert max(built["test"]["difficulty"]) <= 2
    assert sorted(set(built["test_ood"]["difficulty"])) == [3, 4]
    assert pipeline["stages"]["pretrain"]["mathgpt_config"]["position_embedding_type"] == "nope"


def test_the_any_form_pipeline_trains_a_tokenizer_that_reads_every_spacing_as_one_prompt():
    from mathalign.pipeline import load_pipeline, stage_recipes
    from mathalign.recipe import prompt_rewrites
    from mathalign.tokenizer import train_tokenizer

    path = Path(__file__).resolve().parent.parent / "recipes" / "pipeline_any_form.yaml"
    pretrain = stage_recipes(load_pipeline(path), Path("runs/x"), str(path))[0]
    assert pretrain.name == "pretrain"  # the stage that trains the tokenizer, as train.py does from its recipe
    rewrites = prompt_rewrites(pretrain.recipe["tokenizer_prompt_normalizer"])
    tokenizer = train_tokenizer(["17*19=? 17*9: 153, Reversed: 323. The answer is 323."], vocab_size=300,
                                rewrites=rewrites)
    assert tokenizer("17 * 19 = ?").input_ids == tokenizer("17×19=?").input_ids == tokenizer("17*19=?").input_ids
    assert tokenizer("x - 18 = 21 , x = ?").input_ids == tokenizer("x-18=21,x=?").input_ids
    # DPO and GRPO train on the prompts after SFT's: the same build (train_types included) replayed to num_train
    recipes = {stage.name: stage.recipe for stage in stage_recipes(load_pipeline(path), Path("runs/x"), str(path))}
    sft_data = recipes["sft"]["data_options"]
    assert sft_data["train_types"]  # easy types fewer training rows; the held-out splits keep the even mix
    for method in ("dpo", "grpo"):
        data = recipes[method]["data_options"]
        assert data["train_offset"] == sft_data["num_train"] and data["train_types"] == sft_data["train_types"]


def test_the_expressions_pipeline_trains_on_the_seeds_task():
    from mathalign.pipeline import load_pipeline

    pipeline = load_pipeline(Path(__file__).resolve().parent.parent / "recipes" / "expressions.yaml")
    for data in (pipeline["stages"]["sft"]["data_options"], pipeline["evaluation"]["data_options"]):
        _, specs = core.resolve_options(core.BuildOptions, data)
        spec = specs["expressions"]  # the seed's problems: depth 4, numbers 1..20
        assert list(specs) == ["expressions"] and (spec.max_depth, spec.num_range) == (4, (1, 20))


def test_the_alignment_lab_compares_dpo_and_grpo_from_the_same_sft_model():
    from mathalign.pipeline import load_pipeline, stage_recipes

    path = Path(__file__).resolve().parent.parent / "recipes" / "alignment_lab.yaml"
    recipes = {stage.name: stage.recipe for stage in stage_recipes(load_pipeline(path), Path("runs/x"), str(path))}
    methods = ("sft_more", "dpo", "grpo")  # the control (more SFT) and the two methods
    assert {recipes[m]["model_name_or_path"] for m in methods} == {str(Path("runs/x/sft"))}
    assert "sampled" in recipes["dpo"]["data_options"]["negatives"]  # DPO learns from the SFT model's own errors
    # The methods train on prompts SFT never saw, and everything is evaluated on the same held-out problems.
    sft_data = recipes["sft"]["data_options"]
    for method in methods:
        data = recipes[method]["data_options"]
        assert data["train_offset"] == sft_data["num_train"]
        # every shape among the new prompts; the same setting as SFT's build, or train_offset replays other draws
        assert data["train_by_shape"] is sft_data["train_by_shape"] is True
        assert (data["seed"], data["num_validation"], data["num_test"]) == (
            sft_data["seed"], sft_data["num_validation"], sft_data["num_test"])
    # The control differs from DPO only in its loss: same adapter, learning rate, epochs and batch.
    same = ("lora_r", "lora_alpha", "learning_rate", "num_train_epochs", "per_device_train_batch_size")
    assert [recipes["sft_more"][k] for k in same] == [recipes["dpo"][k] for k in same]


def test_alignment_lab_table_counts_errors_removed():
    from conftest import load_benchmark

    lab = load_benchmark("alignment_lab")
    rows = {r["stage"]: r for r in lab.lab_table({"pretrain": 0.05, "sft": 0.80, "sft_more": 0.84, "dpo": 0.90,
                                                  "grpo": 0.92},
                                                 {"sft": 60.0, "sft_more": 50.0, "dpo": 100.0, "grpo": 400.0})}
    assert rows["dpo"]["error_removed"] == pytest.approx(0.50) and rows["dpo"]["met"]  # 20% -> 10% errors
    assert rows["grpo"]["error_removed"] == pytest.approx(0.60) and not rows["grpo"]["met"]  # over 5 minutes
    assert "error_removed" not in rows["sft"] and "error_removed" not in rows["pretrain"]
    assert rows["sft_more"]["error_removed"] == pytest.approx(0.20) and "target" not in rows["sft_more"]  # a control
    assert lab.error_removed(0.8, 0.7) == pytest.approx(-0.5)  # a method that adds errors shows it
    assert lab.base_note(0.70) is None and lab.base_note(0.60) is None
    assert "41.4%" in lab.base_note(0.414) and "stop_at_accuracy" in lab.base_note(0.95)  # outside the band
    assert lab.lab_table({"sft": 0.80, "dpo": 0.89}, {})[1]["met"] is False  # 45% of the errors: short of 50%
    assert rows["dpo"]["target"] == lab.TARGETS["dpo"] == 0.50 and lab.TARGETS["grpo"] == 0.60  # the targets


def test_a_lab_run_prints_one_table_per_evaluated_split():
    from conftest import load_benchmark

    lab = load_benchmark("alignment_lab")
    summary = {"evaluation": {"sft": {"accuracy": 0.7, "splits": {"test": 0.8, "test_ood": 0.0}},
                              "grpo": {"accuracy": 0.8, "splits": {"test": 0.9, "test_ood": 0.1}},
                              "comparison": "eval/comparison.md"}}
    assert lab.split_accuracies(summary) == {"test": {"sft": 0.8, "grpo": 0.9}, "test_ood": {"sft": 0.0, "grpo": 0.1}}
    one = {"evaluation": {"sft": {"accuracy": 0.7}, "grpo": {"accuracy": 0.8}, "comparison": "x"}}
    assert lab.split_accuracies(one) == {"all": {"sft": 0.7, "grpo": 0.8}}


def test_start_from_runs_methods_side_by_side_from_one_model(tmp_path):
    from mathalign.pipeline import load_pipeline, stage_recipes

    pipeline = yaml.safe_load(tiny_pipeline(tmp_path).read_text())
    pipeline["stages"]["grpo"]["start_from"] = "sft"  # GRPO from the SFT model, beside DPO rather than after it
    run = tmp_path / "run"
    recipes = {stage.name: stage.recipe for stage in stage_recipes(pipeline, run, "x")}
    assert recipes["dpo"]["model_name_or_path"] == str(run / "sft")
    assert recipes["grpo"]["model_name_or_path"] == str(run / "sft")
    assert "start_from" not in recipes["grpo"]  # a pipeline key, not a recipe key


@pytest.mark.parametrize(
    "start_from, extra, message",
    [
        ("grpo", {}, "not an earlier stage"),  # a later stage (or a typo) cannot be the start
        ("sft", {"model_name_or_path": "x"}, "both start_from and model_name_or_path"),  # two starting points
    ],
)
def test_bad_start_from_is_refused(tmp_path, start_from, extra, message):
    from mathalign.pipeline import stage_recipes
    from mathalign.recipe import RecipeError

    pipeline = yaml.safe_load(tiny_pipeline(tmp_path).read_text())
    pipeline["stages"]["dpo"].update(start_from=start_from, **extra)
    with pytest.raises(RecipeError, match=message):
        stage_recipes(pipeline, tmp_path / "run", "x")


def test_a_tiny_lab_over_two_seeds_reports_intervals_and_resumes(tmp_path, capsys):
    import argparse

    from conftest import load_benchmark

    lab = load_benchmark("alignment_lab")
    stages = yaml.safe_load(tiny_pipeline(tmp_path).read_text())["stages"]
    method = {"start_from": "sft", "max_steps": 1}
    pipeline = {
        "run_dir": str(tmp_path / "lab"),
        "stages": {"pretrain": stages["pretrain"], "sft": stages["sft"],
                   "sft_more": {**stages["sft"], **method, "stage": "sft", "use_peft": True, "lora_r": 4,
                                "lora_alpha": 8, "lora_target_modules": "all-linear"},
                   "grpo": {**stages["grpo"], **method}},
        "evaluation": {"dataset": "sft", "data_options": TINY, "split": "test", "num_samples": 8, "batch_size": 8},
    }
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    args = argparse.Namespace(pipeline=str(path), run_dir=None, split=None, seeds=[0, 1])
    report = lab.run_seeds(args)
    # Each seed is its own run: its data and training seeded, the same problems for every stage of that seed.
    runs = [yaml.safe_load((tmp_path / "lab" / f"seed-{s}" / "alignment_lab.yaml").read_text()) for s in (0, 1)]
    assert {r["stages"]["grpo"]["data_options"]["seed"] for r in runs} == {0, 1}
    assert {r["stages"]["sft_more"]["seed"] for r in runs} == {0, 1}
    grpo = report["splits"]["test"]["grpo"]
    assert grpo["accuracy"]["runs"] == 2 and grpo["accuracy"]["low"] <= grpo["accuracy"]["estimate"] <= \
        grpo["accuracy"]["high"]
    assert {"errors_removed", "vs_sft", "vs_control"} <= set(grpo)
    assert "vs_control" not in report["splits"]["test"]["sft_more"]
    assert json.loads((tmp_path / "lab" / "seeds.json").read_text())["seeds"] == [0, 1]
    assert (tmp_path / "lab" / "seeds.png").read_bytes()[:4] == b"\x89PNG"
    assert "lead over control" in capsys.readouterr().out
    # A second call trains nothing: every stage of every seed is done already.
    lab.run_seeds(args)
    assert capsys.readouterr().out.count("done already") == 8


def test_lab_targets_over_seeds_take_the_worst_seed_and_the_paired_interval():
    import numpy as np

    from conftest import load_benchmark

    lab = load_benchmark("alignment_lab")
    base = np.r_[np.ones(60), np.zeros(40)]
    control, dpo, grpo = (np.r_[np.ones(60 + k), np.zeros(40 - k)] for k in (20, 22, 26))
    results = {seed: {"test": np.stack([base, control, dpo, grpo], axis=1)} for seed in (0, 1, 2)}
    table = lab.seeds_table(results, ["sft", "sft_more", "dpo", "grpo"])
    seconds = {seed: {"dpo": 30.0, "grpo": 200.0} for seed in (0, 1, 2)}
    met = lab.targets_met(table, seconds)
    assert table["test"]["grpo"]["errors_removed"]["minimum"] == pytest.approx(0.65)
    assert list(met.values()) == [True, True, True]  # dpo 55%, grpo 65%, grpo 6 points over the control everywhere
    met = lab.targets_met(table, {**seconds, 2: {"dpo": 30.0, "grpo": 400.0}})
    assert list(met.values()) == [True, False, True]  # one seed over 5 minutes of training


def test_lab_tables_put_test_first_and_flag_a_base_outside_the_band(capsys):
    import numpy as np

    from conftest import load_benchmark

    lab = load_benchmark("alignment_lab")
    runs = np.stack([np.r_[np.ones(55), np.zeros(45)], np.ones(100)], axis=1)  # base 55%, the method 100%
    results = {seed: {"test": runs, "test_uniform": runs, "test_ood": np.zeros((10, 2))} for seed in (0, 1)}
    results[1]["validation"] = runs  # a split one seed lacks has no row
    table = lab.seeds_table(results, ["sft", "grpo"])
    assert list(table) == ["test", "test_uniform", "test_ood"]  # the order read_results gives
    lab.print_seeds_table(table, [0, 1], {0: 0.66, 1: 0.67}, {0: {}, 1: {}}, {0: 0.55, 1: 0.70})
    out = capsys.readouterr().out
    assert "on test: seed 0: 55.0%, seed 1: 70.0%" in out and "outside the 60%-85% band on test: seed 0 (55.0%)" in out


def test_the_evaluation_data_is_rebuilt_when_the_file_asks_for_other_problems(tmp_path):
    from datasets import load_from_disk

    from mathalign.pipeline import evaluate_stages

    path = tiny_pipeline(tmp_path)
    assert cli_main(["pipeline", str(path), "--skip_eval"]) == 0
    model = tmp_path / "run" / "sft"
    options = {"dataset": "sft", "data_options": TINY, "num_samples": 4, "batch_size": 4}
    evaluate_stages({"sft": model}, options, tmp_path / "run")
    assert len(load_from_disk(str(tmp_path / "run" / "eval-data"))["test"]) == 16
    evaluate_stages({"sft": model}, {**options, "data_options": {**TINY, "num_test": 12}}, tmp_path / "run")
    assert len(load_from_disk(str(tmp_path / "run" / "eval-data"))["test"]) == 12

    # With a held-out split in the data, every stage is evaluated on it too, without being asked, and the report
    # breaks the final stage down per type and split and plots accuracy against operand length (1-2 digits, then 3).
    result = evaluate_stages({"sft": model}, {**options, "data_options": {**TINY, "num_test_ood": 8}},
                             tmp_path / "run")
    assert list(result["sft"]["splits"]) == ["test", "test_ood"]
    comparison = (tmp_path / "run" / "eval" / "comparison.md").read_text()
    assert "| accuracy, test_ood (out of distribution) |" in comparison
    assert "## sft (final stage): accuracy per type and split" in comparison
    assert "| type | test (n) | test_ood (n) |" in comparison
    assert (tmp_path / "run" / "eval" / "accuracy_vs_length.png").is_file()
    assert "accuracy_vs_length.png" in (tmp_path / "run" / "eval" / "sft" / "report.md").read_text()


def test_read_results_pairs_problems_across_stages_with_splits_in_their_usual_order(tmp_path):
    from conftest import load_benchmark

    seeds = load_benchmark("seeds")
    rows = [("test_ood", "123*456=?"), ("test", "1*2=?"), ("test_uniform", "9*9=?"), ("test", "3*4=?")]
    for stage, right in (("sft", {"1*2=?"}), ("grpo", {"1*2=?", "9*9=?"})):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "samples.jsonl").write_text("".join(
            json.dumps({"split": split, "prompt": prompt, "correct": prompt in right}) + "\n"
            for split, prompt in rows))
    results = seeds.read_results(tmp_path, ["sft", "grpo"])
    assert list(results) == ["test", "test_uniform", "test_ood"]  # data_builders' SPLITS order, not alphabetical
    assert results["test"].tolist() == [[1.0, 1.0], [0.0, 0.0]]  # rows by prompt: 1*2 then 3*4
    assert results["test_uniform"].tolist() == [[0.0, 1.0]]


def test_seeded_pipelines_and_evaluation_splits():
    from conftest import load_benchmark

    seeds = load_benchmark("seeds")  # the seed runs benchmarks/seeds.py and benchmarks/alignment_lab.py share
    on_splits, seeded_pipeline = seeds.on_splits, seeds.seeded_pipeline

    pipeline = {
        "run_dir": "runs/x",
        "stages": {"sft": {"data_options": {"num_train": 8, "seed": 0}}, "grpo": {"learning_rate": 1e-5}},
        "evaluation": {"dataset": "sft", "num_samples": 100,
                       "data_options": {"num_validation": 50, "num_test": 40, "num_test_ood": 0}},
    }
    seeded = seeded_pipeline(pipeline, 3)
    assert seeded["stages"]["sft"]["seed"] == seeded["stages"]["grpo"]["seed"] == 3  # every stage's training
    assert seeded["stages"]["sft"]["data_options"]["seed"] == seeded["evaluation"]["data_options"]["seed"] == 3
    assert pipeline["stages"]["sft"]["data_options"]["seed"] == 0  # the original is untouched

    tuning = on_splits(pipeline, ["validation", "validation_surface", "test_ood"])
    evaluation = tuning["evaluation"]
    assert evaluation["split"] == ["validation", "validation_surface", "test_ood"] and "num_samples" not in evaluation
    # splits the file would not build get their base split's size; sizes it gives stay
    assert evaluation["data_options"] == {"num_validation": 50, "num_test": 40, "num_test_ood": 40,
                                          "num_validation_surface": 50}
    assert on_splits(pipeline, "validation")["evaluation"]["data_options"] == pipeline["evaluation"]["data_options"]

"""Nothing lost, nothing leaked, one clear line: reruns, kills at the exact save points, tokens and bad values."""

import json
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch
import yaml

from hub_fixtures import HUB_TOKEN, HUB_USER, hub_env, hub_server, run_python  # noqa: F401  (fixtures)
from mathalign import train as train_module
from mathalign.cli import main as cli_main
from test_pipeline import tiny_pipeline
from test_train import base_model, train, weights, write_recipe  # noqa: F401  (base_model is a fixture)


def one_error_line(capsys, command: str = "train") -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "usage:" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mathalign {command}: error: "), err
    return lines[0]


# --- reruns and resumes --------------------------------------------------------------------------------------------

def test_rerunning_a_finished_run_changes_nothing_and_says_so(tmp_path, base_model, capsys):
    keys = dict(model_name_or_path=str(base_model), save_strategy="steps", save_steps=2)
    run = train(tmp_path, "sft", "--max_steps", "2", **keys)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    train(tmp_path, "sft", "--max_steps", "2", **keys)  # the same command again
    assert "holds a finished run: nothing to do" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # Training further is asked for explicitly, from the run's last checkpoint.
    train(tmp_path, "sft", "--max_steps", "4", "--resume_from_checkpoint", str(run / "checkpoint-2"), **keys)
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] == 4
    assert not torch.equal(weights(run)["model.embed_tokens.weight"], _weights(before)["model.embed_tokens.weight"])


def _weights(files: dict) -> dict:
    from safetensors.torch import load

    return load(files["model.safetensors"])


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, base_model):
    keys = dict(model_name_or_path=str(base_model), save_strategy="steps", save_steps=2)
    run = train(tmp_path, "sft", "--max_steps", "2", **keys)
    (run / "train_results.json").unlink()  # a kill before the end leaves no finish marker
    train(tmp_path, "sft", "--max_steps", "4", **keys)
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # Resumed: the second run logged steps 3 and 4 only, on top of the first run's history.
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]


@pytest.mark.parametrize("cut", [
    "before_trainer_state",  # killed after the weights and optimizer, before trainer_state.json
    "half_trainer_state",  # killed while trainer_state.json was being written
    "half_weights",  # killed while model.safetensors was being written
])
def test_a_checkpoint_cut_short_is_skipped_and_the_run_resumes_from_the_one_before(tmp_path, base_model, capsys,
                                                                                   cut):
    keys = dict(model_name_or_path=str(base_model), save_strategy="steps", save_steps=2)
    run = train(tmp_path, "sft", "--max_steps", "4", **keys)
    (run / "train_results.json").unlink()
    last = run / "checkpoint-4"
    state = last / "trainer_state.json"
    if cut == "before_trainer_state":
        state.unlink()
    elif cut == "half_trainer_state":
        state.write_text(state.read_text()[:40])
    else:
        state.unlink()
        weights_file = last / "model.safetensors"
        weights_file.write_bytes(weights_file.read_bytes()[:100])
    capsys.readouterr()
    train(tmp_path, "sft", "--max_steps", "4", **keys)
    out = capsys.readouterr().out
    assert "checkpoint-4 is incomplete" in out and "resuming from the checkpoint before it" in out
    steps = [e["step"] for e in json.loads((run / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert steps == [1, 2, 3, 4]  # checkpoint-2's history, then steps 3 and 4 trained again
    assert json.loads(state.read_text())["global_step"] == 4  # and checkpoint-4 saved whole this time


@pytest.mark.parametrize("killed_in", ["save_model", "save_state", "recipe", "marker"])
def test_a_kill_at_any_point_of_the_final_save_leaves_a_run_that_resumes(tmp_path, base_model, monkeypatch,
                                                                        killed_in):
    keys = dict(model_name_or_path=str(base_model), save_strategy="steps", save_steps=2)
    real_write = train_module.write_atomic

    class Killed(BaseException):
        pass

    from transformers import Trainer

    real_save_model = Trainer.save_model

    def kill(self, *args, _internal_call=False, **kwargs):  # checkpoints save through save_model too: let them
        if killed_in == "save_state" or not _internal_call:
            raise Killed
        return real_save_model(self, *args, _internal_call=_internal_call, **kwargs)

    def write_until(path, text):
        if path.name == {"recipe": "recipe.yaml", "marker": "train_results.json"}.get(killed_in):
            raise Killed
        real_write(path, text)

    with monkeypatch.context() as patch:
        if killed_in in ("save_model", "save_state"):
            patch.setattr(Trainer, killed_in, kill)
        else:
            patch.setattr(train_module, "write_atomic", write_until)
        with pytest.raises(Killed):
            train(tmp_path, "sft", "--max_steps", "4", **keys)
    run = tmp_path / "run-sft"
    assert train_module.finished_run(run) is None  # no marker: the run is not taken for finished
    train(tmp_path, "sft", "--max_steps", "4", **keys)
    assert train_module.finished_run(run) is not None
    assert (run / "model.safetensors").is_file() and (run / "recipe.yaml").is_file()


def test_a_kill_during_a_merge_or_before_it_makes_the_pipeline_redo_the_merge(tmp_path, monkeypatch, capsys):
    from mathalign import merge as merge_module

    path = tiny_pipeline(tmp_path)
    real_merge = merge_module.merge_adapter

    def merge_then_die(adapter_dir, out_dir):
        real_merge(adapter_dir, out_dir)
        (Path(out_dir) / "model.safetensors").write_bytes(b"half")  # killed while writing the merged weights
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(merge_module, "merge_adapter", merge_then_die)
        with pytest.raises(KeyboardInterrupt):
            from mathalign.pipeline import run_pipeline

            run_pipeline(path, skip_eval=True)
    run = tmp_path / "run"
    assert (run / "dpo" / "train_results.json").is_file() and not (run / "dpo-merged").exists()
    capsys.readouterr()
    assert cli_main(["pipeline", str(path), "--skip_eval"]) == 0
    out = capsys.readouterr().out
    assert out.count("done already") == 2 and "dpo: training" in out and "holds a finished run" in out
    assert not (run / "dpo-merged.partial").exists()
    from safetensors.torch import load_file

    assert load_file(str(run / "dpo-merged" / "model.safetensors"))  # whole


# --- tokens never reach the disk -----------------------------------------------------------------------------------

def _files_holding(root: Path, secret: str) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_hub_token_is_never_written_to_disk(tmp_path, base_model, hub_env):  # noqa: F811  (fixtures)
    # The token given on the command line is the canary: the push works with it, and no file of the run holds it.
    env = {k: v for k, v in hub_env.items() if k != "HF_TOKEN"}
    recipe = write_recipe(tmp_path, "sft", model_name_or_path=str(base_model), save_strategy="steps", save_steps=2,
                          push_to_hub=True, hub_model_id=f"{HUB_USER}/canary")
    out = run_python(f"from mathalign.cli import main; raise SystemExit(main(['train', {str(recipe)!r}, "
                     f"'--hub_token', {HUB_TOKEN!r}]))", env)
    assert out.returncode == 0, out.stderr[-2000:]
    run = tmp_path / "run-sft"
    assert (run / "checkpoint-2" / "training_args.bin").is_file() and (run / "training_args.bin").is_file()
    assert _files_holding(run, HUB_TOKEN) == []
    args = torch.load(run / "training_args.bin", weights_only=False)
    assert args.hub_token is None


def test_a_pipeline_file_s_token_and_secret_env_are_not_copied(tmp_path, monkeypatch):
    canary = "hf_canary_do_not_write"
    path = tiny_pipeline(tmp_path)
    pipeline = yaml.safe_load(path.read_text())
    pipeline["stages"] = {"pretrain": {**pipeline["stages"]["pretrain"], "hub_token": canary,
                                       "env": {"HF_TOKEN": canary, "MY_API_KEY": canary, "OMP_NUM_THREADS": "2"}}}
    pipeline.pop("evaluation")
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    monkeypatch.setenv("HF_TOKEN", "")  # parse_recipe exports the env block; monkeypatch restores it after
    monkeypatch.setenv("MY_API_KEY", "")
    assert cli_main(["pipeline", str(path)]) == 0
    run = tmp_path / "run"
    assert _files_holding(run, canary) == []
    copied = yaml.safe_load((run / "pipeline.yaml").read_text())["stages"]["pretrain"]
    assert copied["env"] == {"OMP_NUM_THREADS": "2"} and "hub_token" not in copied


# --- bad values: one line, before any work ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "keys, overrides, message",
    [
        ({}, ["--max_steps", "0"], "max_steps on the command line must be a number of optimizer steps >= 1"),
        ({"max_steps": -5}, [], "max_steps in .* must be a number of optimizer steps >= 1"),
        ({"learning_rate": -1.0}, [], "learning_rate in .* must be a finite number > 0"),
        ({}, ["--learning_rate", "nan"], "learning_rate on the command line is NaN"),
        ({"per_device_train_batch_size": 0}, [], "per_device_train_batch_size in .* must be a whole number >= 1"),
        ({"save_strategy": "steps", "save_steps": -3}, [], "save_steps in .* must be a finite number > 0"),
        ({"max_steps": "abc"}, [], "invalid int value: 'abc'"),  # one line, not the 160-line usage
        ({"output_dir": None}, [], "sets no output_dir"),  # would write to ./trainer_output
        ({"use_peft": True}, [], "use_peft on a mathgpt model needs lora_target_modules"),
        ({"model_name_or_path": "runs-that-do-not-exist/sft"}, [], "'runs-that-do-not-exist/sft' is not a local "
         "path and not in the Hub cache, and HF_HUB_OFFLINE is set; train the stage that writes it first"),
        ({"model_name_or_path": "tests/no-such-run"}, [], "'tests/no-such-run' does not exist; train the stage"),
        ({"dataset_name": "tests/no-such-data"}, [], "'tests/no-such-data' is neither a data builder"),
        ({"tokenizer_prompt_normalizer": "gsm8k"}, [], "'gsm8k' has no prompt rewrites; use one of \\['arithmetic'\\]"),
    ],
)
def test_nonsense_values_fail_with_one_line_before_any_work(tmp_path, capsys, monkeypatch, keys, overrides, message):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # so `tests/` is a folder here
    recipe = write_recipe(tmp_path, "sft", **keys)
    if keys.get("output_dir", "") is None:
        recipe.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(recipe.read_text()).items()
                                          if k != "output_dir"}))
    assert cli_main(["train", str(recipe), *overrides]) == 2
    assert re.search(message, one_error_line(capsys)), message
    assert not (tmp_path / "run-sft").exists()


@pytest.mark.parametrize("text, message", [
    ("", "is empty: a recipe sets at least `stage` and `output_dir`"),
    ("# only a comment\n", "is empty"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("stage: [unclosed\n", "is not valid YAML"),
])
def test_empty_or_malformed_recipe_files_are_refused(tmp_path, capsys, text, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    assert cli_main(["train", str(recipe)]) == 2
    assert message in one_error_line(capsys)


def test_an_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "run-sft").write_text("a user's file")
    recipe = write_recipe(tmp_path, "sft")
    assert cli_main(["train", str(recipe)]) == 2
    assert "is a file; name a directory" in one_error_line(capsys)
    assert (tmp_path / "run-sft").read_text() == "a user's file"


@pytest.mark.parametrize("argv, message", [
    (["--num_processes", "0"], "argument --num_processes: must be a whole number >= 1, got '0'"),
    (["--accelerate_config", "no-such-config"], "accelerate config 'no-such-config' not found; give a file or one"),
    (["--accelerate_config", "cpu", "--num_processes", "2"], "runs a single process"),
])
def test_bad_launch_options_are_one_line(tmp_path, capsys, argv, message):
    recipe = write_recipe(tmp_path, "sft")
    code = cli_main(["train", str(recipe), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_failing_launched_stage_is_one_line(tmp_path, capsys):
    path = tiny_pipeline(tmp_path)
    pipeline = yaml.safe_load(path.read_text())
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "3+4=? The answer is 7."}\n{"text": \n')  # fails only when the stage reads it
    pipeline["stages"] = {"pretrain": {**pipeline["stages"]["pretrain"], "num_processes": 2,
                                       "dataset_name": str(broken)}}
    pipeline.pop("evaluation")
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    assert cli_main(["pipeline", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mathalign pipeline: error: stage 'pretrain' exited with status"), err[-3:]


# --- broken checkpoints and data files ------------------------------------------------------------------------------

def _copy(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


@pytest.mark.parametrize("damage, message", [
    ("truncated_weights", "model.safetensors is truncated"),
    ("corrupt_config", "config.json cannot be read"),
    ("huge_config", "config.json says num_hidden_layers=100,000,000 but the weights hold 2 layers"),
    ("wrong_embedding", "the embedding is"),
])
def test_a_broken_checkpoint_is_one_line_before_it_is_loaded(tiny_model_dir, tmp_path, capsys, damage, message):
    model = _copy(tiny_model_dir, tmp_path)
    config = json.loads((model / "config.json").read_text())
    if damage == "truncated_weights":
        data = (model / "model.safetensors").read_bytes()
        (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "corrupt_config":
        (model / "config.json").write_text('{"model_type": "mathgpt", ')
    elif damage == "huge_config":
        (model / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 10**8}))
    else:
        (model / "config.json").write_text(json.dumps({**config, "hidden_size": 10**6}))
    capsys.readouterr()
    assert cli_main(["chat", str(model), "--prompt", "3+4=?"]) == 2
    assert message in one_error_line(capsys, "chat")


def test_a_safetensors_header_longer_than_the_file_is_refused(tmp_path):
    from mathalign.errors import UserError
    from mathalign.sources import read_safetensors_header

    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(UserError, match="truncated"):
        read_safetensors_header(path)


def test_an_empty_data_file_is_one_line_in_eval_and_train(tiny_model_dir, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli_main(["eval", str(tiny_model_dir), "--data", str(empty)]) == 2
    assert "empty.jsonl is empty" in one_error_line(capsys, "eval")
    recipe = write_recipe(tmp_path, "sft", dataset_name=str(empty))
    assert cli_main(["train", str(recipe)]) == 2
    assert "empty.jsonl is empty" in one_error_line(capsys)

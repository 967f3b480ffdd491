"""`accelerate launch recipes/dpo.yaml`, literally: a flat recipe is YAML and Python at once (see mathalign/launch.py)."""

import __future__
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mathalign import train as train_module
from mathalign.cli import main as cli_main
from mathalign.errors import RecipeError
from mathalign.launch import LAUNCH_LINE, why_not_launchable
from mathalign.recipe import load_recipe
from test_train import TINY_DATA, base_model, weights  # noqa: F401  (base_model is a fixture)

REPO = Path(__file__).resolve().parent.parent
FLAT_RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml")
                      if "accelerate" not in p.parts and "stages" not in yaml.safe_load(p.read_text()))
PIPELINES = sorted(p for p in (REPO / "recipes").glob("*.yaml") if p not in FLAT_RECIPES)


def test_every_shipped_single_stage_recipe_is_yaml_and_python():
    assert {p.stem for p in FLAT_RECIPES} >= {"pretrain", "sft", "dpo", "grpo", "grpo_gsm8k", "grpo_aqua"}
    for path in FLAT_RECIPES:
        text = path.read_text()
        as_yaml = yaml.safe_load(text)
        # To YAML the launch line is one more key; the recipe parser sees the rest of the mapping, unchanged.
        assert as_yaml.pop("launch") == LAUNCH_LINE.split(": ", 1)[1], path
        assert load_recipe(path) == as_yaml, path
        for version in range(10, 15):  # the grammar of every Python the project supports
            ast.parse(text, filename=str(path), feature_version=(3, version))
        assert why_not_launchable(path) is None, path


@pytest.mark.parametrize("lazy_annotations", [False, True], ids=["python3.10-3.13", "python3.14"])
def test_the_launch_line_runs_first_and_nothing_after_it(monkeypatch, lazy_annotations):
    # Python <= 3.13 evaluates module annotations (`stage: dpo` would be a NameError); 3.14 leaves them unevaluated
    # but still evaluates the value of `name: type = value`. Either way the launch line's value exits first.
    calls = []

    def fake_run(path):
        calls.append(path)
        raise SystemExit(0)

    monkeypatch.setattr(train_module, "run_recipe_file", fake_run)
    flags = __future__.annotations.compiler_flag if lazy_annotations else 0
    for path in FLAT_RECIPES:
        code = compile(path.read_text(), str(path), "exec", flags=flags, dont_inherit=True)
        with pytest.raises(SystemExit):
            exec(code, {"__file__": str(path), "__name__": "__main__"})
    assert calls == [str(p) for p in FLAT_RECIPES]


@pytest.mark.parametrize("text, reason", [
    ("stage: sft\n", "has no launch line"),
    (f"stage: sft\n{LAUNCH_LINE}\n", "does not start with its launch line"),
    (f"# a comment\n{LAUNCH_LINE}\nstage: sft\nmodel_name_or_path: Qwen/Qwen2.5-0.5B\n",
     "line 4 (`model_name_or_path: Qwen/Qwen2.5-0.5B`) is not valid Python"),
    (f"{LAUNCH_LINE}\nstage: sft\nlora_target_modules:\n  - q_proj\n", "nested blocks are not Python"),
])
def test_why_a_file_is_not_launchable_is_one_sentence(tmp_path, text, reason):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    assert reason in why_not_launchable(path)


def test_a_launch_line_in_a_file_python_cannot_run_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(f"{LAUNCH_LINE}\nstage: sft\noutput_dir: runs/qwen2.5\n")
    with pytest.raises(RecipeError, match=r"line 3 .* quote values Python cannot read .* delete the launch line"):
        load_recipe(path)
    path.write_text("launch: now\nstage: sft\n")
    with pytest.raises(RecipeError, match="`launch` .* is reserved"):
        load_recipe(path)


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_check_says_a_pipeline_file_is_run_with_mathalign_pipeline(path, capsys):
    assert cli_main(["train", "--check", str(path)]) == 2
    assert "is a pipeline file (it has `stages`): run it with `mathalign pipeline" in capsys.readouterr().err


def test_check_tells_launchable_from_not(tmp_path, capsys):
    assert cli_main(["train", "--check", str(REPO / "recipes" / "dpo.yaml")]) == 0
    assert "`accelerate launch" in capsys.readouterr().out
    mine = tmp_path / "mine.yaml"
    mine.write_text("stage: sft\noutput_dir: runs/mine\n")
    assert cli_main(["train", "--check", str(mine)]) == 1
    assert "not launchable: " in capsys.readouterr().out


@pytest.mark.parametrize("launch_flags, processes", [
    (["--multi_gpu", "--num_processes", "2"], 2),  # DDP over two CPU processes (gloo)
    (["--config_file", str(REPO / "recipes" / "accelerate" / "cpu.yaml")], 1),  # a shipped accelerate config
    (["--cpu"], 1),  # one process, forced onto the CPU
])
def test_accelerate_launch_runs_a_shipped_recipe_file(tmp_path, base_model, launch_flags, processes):
    out_dir = tmp_path / "run"
    overrides = ["--model_name_or_path", str(base_model), "--output_dir", str(out_dir), "--max_steps", "2",
                 "--data_options", str(TINY_DATA).replace("'", '"'), "--per_device_train_batch_size", "4",
                 "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "1", "--max_length", "64"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *launch_flags, "recipes/sft.yaml", *overrides]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert done.returncode == 0, done.stderr[-3000:]
    state = yaml.safe_load((out_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # Each step saw the batch of every process: the Trainer counts the global batch.
    assert state["train_batch_size"] * processes == 4 * processes
    before, after = weights(base_model), weights(out_dir)
    assert any(not (before[k] == after[k]).all() for k in before)  # it trained
    assert "launch" not in yaml.safe_load((out_dir / "recipe.yaml").read_text())

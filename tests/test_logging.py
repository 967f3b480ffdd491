"""`report_to` none / tensorboard / trackio, and what DPO and GRPO log, through the real `mathalign train` entry point.

Every run is a few steps of the tiny checkpoint from conftest. TensorBoard and Trackio stores are read back with their
own readers and compared with the trainer's `log_history`, so a metric that is logged but never reaches the store (or
lands under another name) fails here.
"""

import json
import math
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from mathalign.cli import main as cli_main

REPO = Path(__file__).resolve().parent.parent
TINY_DATA = {"num_train": 32, "num_validation": 0, "num_test": 0, "num_test_ood": 0, "seed": 0}
BUILDER = {"sft": "sft", "dpo": "preferences", "grpo": "rl"}


def write_recipe(tmp_path: Path, stage: str, name: str | None = None, **keys) -> Path:
    """A tiny recipe for `stage` (3 steps, batch 8, a log line every step) with `keys` on top."""
    name = name or stage
    recipe = {
        "stage": stage,
        "dataset_name": BUILDER[stage],
        "data_options": TINY_DATA,
        "output_dir": str(tmp_path / f"run-{name}"),
        "max_steps": 3,
        "per_device_train_batch_size": 8,
        "learning_rate": 1.0e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        **keys,
    }
    if stage == "grpo":
        recipe.setdefault("num_generations", 4)
        recipe.setdefault("max_completion_length", 8)
    else:
        recipe.setdefault("max_length", 64)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def train(tmp_path: Path, stage: str, name: str | None = None, **keys) -> Path:
    """Train in this process through `mathalign train RECIPE`; returns the run directory."""
    recipe = write_recipe(tmp_path, stage, name, **keys)
    assert cli_main(["train", str(recipe)]) == 0
    return Path(yaml.safe_load(recipe.read_text())["output_dir"])


def log_history(run_dir: Path) -> list[dict]:
    """The per-step log entries (the final summary entry with train_runtime left out)."""
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return [entry for entry in state["log_history"] if "train_runtime" not in entry]


def event_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob("events.out.tfevents.*"))


# --- fixtures: one run per stage, shared by the tests that read it ---------------------------------------------------

@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, tiny_model_dir) -> Path:
    """Full-model DPO with an explicit reference, logged to TensorBoard."""
    tmp_path = tmp_path_factory.mktemp("dpo")
    return train(tmp_path, "dpo", model_name_or_path=str(tiny_model_dir), report_to="tensorboard")


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model after 60 SFT steps: it writes `The answer is N.` often enough that GRPO rewards vary."""
    tmp_path = tmp_path_factory.mktemp("sft")
    return train(tmp_path, "sft", model_name_or_path=str(tiny_model_dir), max_steps=60, learning_rate=1.0e-2,
                 logging_steps=20, data_options={**TINY_DATA, "num_train": 256})


GRPO_REWARDS = ["correctness_reward", "format_reward", "steps_reward"]
GRPO_WEIGHTS = [1.0, 0.5, 0.25]


@pytest.fixture(scope="module")
def grpo_runs(tmp_path_factory, sft_model) -> dict[float, Path]:
    """GRPO without (beta 0) and with (beta 0.1) a KL term; three reward functions with unequal weights."""
    tmp_path = tmp_path_factory.mktemp("grpo")
    return {beta: train(tmp_path, "grpo", name=f"grpo-beta{beta}", model_name_or_path=str(sft_model), beta=beta,
                        max_completion_length=12, reward_funcs=GRPO_REWARDS, reward_weights=GRPO_WEIGHTS)
            for beta in (0.0, 0.1)}


# --- report_to ------------------------------------------------------------------------------------------------------

def test_report_to_none_writes_no_event_files_but_keeps_the_log_history(tmp_path, tiny_model_dir):
    run = train(tmp_path, "sft", model_name_or_path=str(tiny_model_dir), max_steps=2)
    # tensorboard and trackio are both installed: a `none` that fell back to "all" would write their stores here.
    assert event_files(run) == [] and not (run / "runs").exists()
    assert [e["step"] for e in log_history(run) if "loss" in e] == [1, 2]


def test_tensorboard_event_files_hold_every_logged_scalar(dpo_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = event_files(dpo_run)
    assert files, f"no TensorBoard event file under {dpo_run}"
    events = EventAccumulator(str(files[0].parent), size_guidance={"scalars": 0})
    events.Reload()
    history = log_history(dpo_run)
    # The Trainer writes each log key `k` as the scalar `train/k` at the global step.
    for key in ("loss", "rewards/margins", "rewards/accuracies", "learning_rate"):
        logged = {e["step"]: e[key] for e in history if key in e}
        assert f"train/{key}" in events.Tags()["scalars"], (key, events.Tags()["scalars"])
        written = {s.step: s.value for s in events.Scalars(f"train/{key}")}
        assert written.keys() == logged.keys() == {1, 2, 3}, (key, written, logged)
        for step, value in logged.items():
            assert math.isclose(written[step], value, rel_tol=1e-5, abs_tol=1e-7), (key, step, written[step], value)


def test_trackio_logs_to_a_local_store_only(tmp_path, tiny_model_dir):
    pytest.importorskip("trackio")
    store, hf_home = tmp_path / "trackio", tmp_path / "hf_home"
    # `project` names the Trackio database; TRACKIO_DIR comes from the recipe's `env:` block, which mathalign exports
    # before any library reads it. No Space id: Trackio stays local (nothing is sent, no dashboard is started).
    recipe = write_recipe(tmp_path, "sft", model_name_or_path=str(tiny_model_dir), report_to="trackio",
                          project="mathalign-test", run_name="tiny-sft", env={"TRACKIO_DIR": str(store)})
    # A fresh process: Trackio reads TRACKIO_DIR once, when it is first imported. HF_HOME points at an empty
    # directory to show that nothing lands in Trackio's default location ($HF_HOME/trackio).
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("TRACKIO_DIR", None)
    env.pop("TRACKIO_SPACE_ID", None)
    env.pop("TRACKIO_SERVER_URL", None)
    out = subprocess.run([sys.executable, "-m", "mathalign.train", str(recipe)], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not (hf_home / "trackio").exists()

    database = store / "mathalign-test.db"
    assert database.is_file(), sorted(p.name for p in store.iterdir()) if store.exists() else "no store"
    with closing(sqlite3.connect(database)) as connection:  # Trackio's store: one SQLite file per project
        rows = connection.execute("SELECT run_name, metrics FROM metrics").fetchall()
    assert {name for name, _ in rows} == {"tiny-sft"}
    metrics = [json.loads(blob) for _, blob in rows]
    stored = {m["train/global_step"]: m["train/loss"] for m in metrics if "train/loss" in m}
    logged = {e["step"]: e["loss"] for e in log_history(tmp_path / "run-sft") if "loss" in e}
    assert stored.keys() == logged.keys() == {1, 2, 3}
    for step, loss in logged.items():
        assert math.isclose(stored[step], loss, rel_tol=1e-6), (step, stored[step], loss)


# --- what each stage logs --------------------------------------------------------------------------------------------

def test_dpo_logs_reward_margins_and_accuracies(dpo_run):
    history = [e for e in log_history(dpo_run) if "loss" in e]
    assert len(history) == 3
    for entry in history:
        assert 0.0 <= entry["rewards/accuracies"] <= 1.0, entry
        # margins = mean(beta * (chosen - rejected) log-ratios) = rewards/chosen - rewards/rejected
        assert math.isclose(entry["rewards/margins"], entry["rewards/chosen"] - entry["rewards/rejected"],
                            rel_tol=1e-4, abs_tol=1e-6), entry
    # Step 1: the policy is its reference, so every implicit reward is 0 and the loss is log 2.
    assert history[0]["rewards/margins"] == 0.0 and math.isclose(history[0]["loss"], math.log(2), rel_tol=1e-5)
    # Then DPO pushes the chosen answers up relative to the rejected ones.
    assert history[-1]["rewards/margins"] > 0.0 and history[-1]["rewards/accuracies"] > 0.0, history


@pytest.mark.parametrize("beta", [0.0, 0.1])  # no KL term (TRL's default) / a KL term to the reference
def test_grpo_logs_each_reward_function_and_kl_only_with_a_kl_term(grpo_runs, beta):
    history = [e for e in log_history(grpo_runs[beta]) if "loss" in e]
    assert len(history) == 3
    for entry in history:
        # One mean and std per reward function, under the function's registry name.
        for name in GRPO_REWARDS:
            assert {f"rewards/{name}/mean", f"rewards/{name}/std"} <= entry.keys(), sorted(entry)
        # `reward` is the weighted sum of the functions: the recipe's reward_weights reached the trainer.
        weighted = sum(w * entry[f"rewards/{n}/mean"] for n, w in zip(GRPO_REWARDS, GRPO_WEIGHTS))
        assert math.isclose(entry["reward"], weighted, rel_tol=1e-5, abs_tol=1e-7), entry
    assert any(e["reward"] > 0 for e in history), history  # the SFT model earns rewards: the check above is not 0 == 0
    if beta > 0:
        # KL to the reference: 0 before the first update, then positive once the policy has moved.
        assert history[0]["kl"] == 0.0 and history[-1]["kl"] > 0.0, [e["kl"] for e in history]
    else:
        assert not any("kl" in e for e in history)  # beta 0: no reference model, nothing to measure KL against

"""Multi-process launches that run for real on a CPU-only host: two accelerate "machines", and the FSDP and
DeepSpeed configs of recipes/accelerate/ (recipes/README.md, "Several machines" and "FSDP and DeepSpeed on a CPU").

Every launch runs mathalign.train's command line through `rank_probe`, which adds two things: after training, each
rank writes what it holds (its parameters, its distributed type and wrapper, its ranks) to a records directory
outside the run, so the checks compare what the ranks really ended with, not only what rank 0 saved.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from test_train import base_model, changed, weights, write_recipe  # noqa: F401  (base_model: a fixture)

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "recipes" / "accelerate"

RANK_PROBE = '''\
"""`python -m mathalign.train ARGS`, plus a record of what this rank ends training with."""
import json, os, sys
from safetensors.torch import save_file
from transformers import Trainer
from mathalign.train import cli

def train(self, *args, _train=Trainer.train, **kwargs):
    result = _train(self, *args, **kwargs)
    out, rank, engine = os.environ["RANK_RECORDS"], os.environ["RANK"], self.model_wrapped
    stage = engine.zero_optimization_stage() if hasattr(engine, "zero_optimization_stage") else None
    record = {key: os.environ.get(key) for key in ("RANK", "LOCAL_RANK", "GROUP_RANK", "WORLD_SIZE")}
    record.update(distributed_type=self.accelerator.distributed_type.value, wrapper=type(engine).__name__,
                  zero_stage=stage, should_save=self.args.should_save, cwd=os.getcwd())
    params = dict(self.model.named_parameters())
    if stage == 3:  # each rank holds a partition (ds_tensor) of every parameter
        record["held"] = sum(p.ds_tensor.numel() for p in params.values())
        record["total"] = sum(p.ds_numel for p in params.values())
    else:
        save_file({n: p.detach().contiguous() for n, p in params.items()}, f"{out}/rank{rank}.safetensors")
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(record, f)
    return result

Trainer.train = train
sys.exit(cli())  # a launched rank ends inside cli (mathalign.train.exit_launched_process)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_env(tmp_path: Path) -> dict:
    """The environment for launches through `-m rank_probe`: records under tmp_path/records, CPU only."""
    (tmp_path / "rank_probe.py").write_text(RANK_PROBE)
    (tmp_path / "records").mkdir()
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
            "RANK_RECORDS": str(tmp_path / "records"), "OMP_WAIT_POLICY": "PASSIVE",
            "CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu"}


def launch(commands: list[list[str]], env: dict, cwds: list[Path], timeout: int = 300) -> None:
    """Start every command at once (each in its own process group), wait for all, fail with their output."""
    procs = [subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) for c, cwd in zip(commands, cwds)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:  # a rank left waiting for the other: stop its whole launcher tree
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-4000:]


def records(tmp_path: Path) -> dict[int, dict]:
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in (tmp_path / "records").glob("rank*.json")}


def rank_params(tmp_path: Path, rank: int) -> dict[str, torch.Tensor]:
    return load_file(str(tmp_path / "records" / f"rank{rank}.safetensors"))


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def assert_saved_once_and_trained(run: Path, base: Path, rank0: dict | None) -> None:
    """The run directory holds one loadable model that differs from the base (and is rank 0's, when given)."""
    assert [p.name for p in run.rglob("model*.safetensors")] == ["model.safetensors"]
    saved = weights(run)
    assert changed(weights(base), saved), "training changed nothing"
    if rank0 is not None:  # the file is what the ranks held
        assert saved.keys() - rank0.keys() <= {"lm_head.weight"}  # DeepSpeed also writes the tied head
        assert all(torch.equal(saved[name], rank0.get(name, rank0["model.embed_tokens.weight"])) for name in saved)
    model = AutoModelForCausalLM.from_pretrained(run)
    ids = torch.tensor([[1, 2, 3]])
    assert torch.isfinite(model(input_ids=ids).logits).all()


@pytest.mark.slow
def test_two_machines_on_one_host_train_one_model_and_only_machine_0_writes_it(tmp_path, base_model):
    # Each "machine" runs in its own directory with its own copy of the same recipe, whose output_dir is relative:
    # like machines with their own disks, each would write its own run directory if it wrote anything.
    recipe = yaml.safe_load(write_recipe(tmp_path, "sft", model_name_or_path=str(base_model)).read_text())
    recipe["output_dir"] = "run"
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    for machine in machines:
        machine.mkdir()
        (machine / "sft.yaml").write_text(yaml.safe_dump(recipe))
    port = free_port()
    commands = [[sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "2", "--machine_rank", str(rank),
                 "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--num_processes", "2",
                 "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no",
                 "-m", "rank_probe", "sft.yaml"] for rank in (0, 1)]
    launch(commands, probe_env(tmp_path), machines)

    ranks = records(tmp_path)
    assert sorted(ranks) == [0, 1], ranks
    for rank, record in ranks.items():  # one process per machine, one world of two
        assert (record["GROUP_RANK"], record["LOCAL_RANK"], record["WORLD_SIZE"]) == (str(rank), "0", "2"), record
        assert (record["distributed_type"], record["wrapper"]) == ("MULTI_CPU", "DistributedDataParallel"), record
        assert Path(record["cwd"]) == machines[rank]
        assert record["should_save"] == (rank == 0)  # save_on_each_node is off: the global main process saves
    rank0, rank1 = rank_params(tmp_path, 0), rank_params(tmp_path, 1)
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[n], rank1[n]) for n in rank0)

    run = machines[0] / "run"
    assert_saved_once_and_trained(run, base_model, rank0)
    assert files_under(machines[1]) == [machines[1] / "sft.yaml"]  # machine 1 wrote nothing at all
    state = json.loads((run / "trainer_state.json").read_text())
    # 3 steps of 8 rows on each of 2 ranks = 48 of the 32 training rows: both machines' shards were consumed.
    assert state["global_step"] == 3 and state["epoch"] == pytest.approx(1.5), state
    assert yaml.safe_load((run / "recipe.yaml").read_text())["output_dir"] == "run"


@pytest.mark.slow
def test_machines_that_see_different_run_directories_stop_before_training(tmp_path, base_model):
    # Machine 0 holds a checkpoint of the run, machine 1 (its own disk) nothing: resuming on one and starting over on
    # the other would end in a collective that never completes. Both stop with the same one-line reason.
    recipe = yaml.safe_load(write_recipe(tmp_path, "sft", model_name_or_path=str(base_model), save_strategy="steps",
                                         save_steps=2).read_text())
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    for machine in machines:
        machine.mkdir()
        (machine / "sft.yaml").write_text(yaml.safe_dump({**recipe, "output_dir": "run"}))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": ""}
    first = subprocess.run([sys.executable, "-m", "mathalign.train", "sft.yaml", "--max_steps", "2"], cwd=machines[0],
                           capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    (machines[0] / "run" / "train_results.json").unlink()  # interrupted: machine 0 would resume from checkpoint-2
    port = free_port()
    commands = [[sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "2", "--machine_rank", str(rank),
                 "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--num_processes", "2",
                 "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no",
                 "-m", "mathalign.train", "sft.yaml", "--max_steps", "4"] for rank in (0, 1)]
    procs = [subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) for c, cwd in zip(commands, machines)]
    try:
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    for proc, output in zip(procs, outputs):
        assert proc.returncode != 0 and "see different contents in output_dir" in output, output[-3000:]
    assert not (machines[1] / "run").exists()  # machine 1 did not start over


def config_launch(tmp_path, base_model, config: str) -> tuple[Path, dict[int, dict]]:
    """Train 3 steps of the tiny SFT recipe with recipes/accelerate/CONFIG.yaml on 2 CPU processes."""
    recipe = write_recipe(tmp_path, "sft", model_name_or_path=str(base_model))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / f"{config}.yaml"),
               "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port()),
               "-m", "rank_probe", str(recipe)]
    launch([command], probe_env(tmp_path), [tmp_path])
    ranks = records(tmp_path)
    assert sorted(ranks) == [0, 1], ranks
    return tmp_path / "run-sft", ranks


@pytest.mark.slow
def test_the_fsdp_config_on_a_cpu_only_host_runs_as_ddp(tmp_path, base_model):
    # accelerate 1.16 turns a run into FSDP only from a GPU-like distributed type (MULTI_GPU, MULTI_XPU...); a CPU
    # run is MULTI_CPU and keeps plain DDP, with no error or warning (recipes/README.md). Should this fail because the
    # wrapper became FSDP, accelerate learnt FSDP on CPUs: make this the FSDP test and update the README.
    run, ranks = config_launch(tmp_path, base_model, "fsdp")
    assert {(r["distributed_type"], r["wrapper"]) for r in ranks.values()} == {("MULTI_CPU", "DistributedDataParallel")}
    rank0, rank1 = rank_params(tmp_path, 0), rank_params(tmp_path, 1)
    assert all(torch.equal(rank0[n], rank1[n]) for n in rank0)
    assert_saved_once_and_trained(run, base_model, rank0)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_trains_on_two_cpu_processes(tmp_path, base_model, stage):
    # DeepSpeed's CPU accelerator with gloo. The first launch on a machine compiles DeepSpeed's shared-memory
    # communication op (~1.5 min on 2 cores, cached under ~/.cache/torch_extensions).
    pytest.importorskip("deepspeed")
    run, ranks = config_launch(tmp_path, base_model, f"deepspeed_zero{stage}")
    for record in ranks.values():
        assert (record["distributed_type"], record["wrapper"], record["zero_stage"]) == (
            "DEEPSPEED", "DeepSpeedEngine", stage), record
    if stage == 2:  # optimizer states and gradients sharded, weights replicated: both ranks hold the same weights
        rank0, rank1 = rank_params(tmp_path, 0), rank_params(tmp_path, 1)
        assert all(torch.equal(rank0[n], rank1[n]) for n in rank0)
        assert_saved_once_and_trained(run, base_model, rank0)
    else:  # weights sharded: each rank holds about half of them; the saved model is gathered whole
        for record in ranks.values():
            assert record["total"] / 2 <= record["held"] < record["total"], record
        assert_saved_once_and_trained(run, base_model, None)
        assert weights(run).keys() == weights(base_model).keys()

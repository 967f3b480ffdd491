"""A wheel install (`pip install .`, not `-e`) carries its recipes and accelerate configs and trains from them."""

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = {"num_train": 32, "num_validation": 0, "num_test": 0, "num_test_ood": 0, "seed": 0}


def run(command, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_finds_its_recipes_and_trains(tmp_path):
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
         str(REPO)])
    wheel = next((tmp_path / "dist").glob("mathalign-*.whl"))
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    # The dependencies come from this environment's site-packages, listed in a .pth file; .pth files are not read
    # from a folder named there, so this checkout's editable install stays invisible to the fresh venv.
    fresh_site = Path(run([str(python), "-c", "import site; print(site.getsitepackages()[0])"]).stdout.strip())
    (fresh_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    elsewhere = tmp_path / "elsewhere"  # no recipes/ folder around: only the installed package's own
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = run([str(python), "-c", "import mathalign.launch as l; print(l.__file__); print(l.recipes_dir()); "
                 "print(l.resolve_accelerate_config('fsdp'))"], cwd=elsewhere, env=env).stdout.split()
    assert all(str(fresh_site) in line for line in where), where  # the wheel's files, not the checkout's

    mathalign = [str(fresh / "bin" / "mathalign")]
    assert "--pipeline" in run(mathalign + ["quickstart", "--help"], cwd=elsewhere, env=env).stdout
    run(mathalign + ["train", "pretrain", "--max_steps", "1", "--output_dir", "out", "--data_options", json.dumps(TINY),
                     "--mathgpt_config", json.dumps({"hidden_size": 32, "num_hidden_layers": 1,
                                                     "num_attention_heads": 2}),
                     "--per_device_train_batch_size", "4", "--save_strategy", "no", "--tokenizer_vocab_size", "300"],
        cwd=elsewhere, env=env)
    assert json.loads((elsewhere / "out" / "trainer_state.json").read_text())["global_step"] == 1
    assert (elsewhere / "out" / "train_results.json").is_file()

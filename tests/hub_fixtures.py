"""Fixtures for tests that talk to a Hub: a local Hub-compatible server and the environment to reach it.

huggingface_hub (and datasets) read HF_ENDPOINT / HF_HUB_OFFLINE when they are imported, and the test process runs
with HF_HUB_OFFLINE=1, so Hub round trips run in subprocesses started with `hub_env` (see `run_python`). Checks that
must fail before any network call can run in-process with `hub_in_process`, which points this process at the server.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import HubServer

HUB_TOKEN = "hf_mathalign_test"
HUB_USER = "tester"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def hub_server():
    """A Hub-compatible server on 127.0.0.1 (random port) that knows one token, HUB_TOKEN, for user HUB_USER."""
    server = HubServer(tokens={HUB_TOKEN: HUB_USER}).start()
    yield server
    server.stop()


def hub_subprocess_env(server: HubServer, hf_home) -> dict:
    """Environment for a subprocess that uses `server`: endpoint, token, no Xet, online, its own HF cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    }
    env.update(
        HF_ENDPOINT=server.endpoint,
        HF_TOKEN=HUB_TOKEN,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p),
    )
    return env


@pytest.fixture
def hub_env(hub_server, tmp_path) -> dict:
    """`hub_subprocess_env` for the session's server with a fresh HF cache in `tmp_path`."""
    return hub_subprocess_env(hub_server, tmp_path / "hf_home")


def run_python(script: str, env: dict, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `script` with a fresh interpreter (stdin closed, so no prompt can wait for an answer)."""
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=cwd or REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def hub_in_process(hub_server, monkeypatch, tmp_path):
    """Point huggingface_hub in *this* process at the server (constants it read at import), with no stored token.

    Only for checks that must fail before the network: anything that downloads belongs in a subprocess.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub_server.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no_stored_tokens"))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    return hub_server

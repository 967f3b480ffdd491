"""Shared hermetic fixtures: a tokenizer trained in-process and a 2-layer MathGPT. No network, no downloads."""

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch's spinning OpenMP threads slow parallel work here
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

import mathalign

ARITHMETIC_TEXTS = [
    f"{a}{op}{b}=? The answer is {r}."
    for a in range(0, 30, 3)
    for b in range(1, 30, 4)
    for op, r in (("+", a + b), ("-", a - b), ("*", a * b))
] + [
    "Evaluate: 5 + (10 - 3) <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 12 "
    "Expression now: 12 </think> Final Result: 12",
    "x-18=21, x=? The answer is 39 because 21+18 equals 39. Sorry, I do not know! #### 42 Final Answer: C",
]


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """A script under benchmarks/ (not a package) imported as a module, so tests call its functions."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE trained on a few hundred arithmetic lines (vocab 300)."""
    return mathalign.train_tokenizer(ARITHMETIC_TEXTS, vocab_size=300)


def make_tiny_model(tokenizer, seed: int = 0, **overrides) -> mathalign.MathGPTForCausalLM:
    torch.manual_seed(seed)
    options = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = mathalign.MathGPTConfig(**{**options, **overrides})
    return mathalign.MathGPTForCausalLM(config)


@pytest.fixture
def tiny_model(tiny_tokenizer):
    return make_tiny_model(tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A saved 2-layer MathGPT checkpoint with its tokenizer (read-only: copy it before changing it)."""
    path = tmp_path_factory.mktemp("tiny_model")
    make_tiny_model(tiny_tokenizer).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path

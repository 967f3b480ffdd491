"""nanoGPT import: a checkpoint built here, converted through the CLI, must compute what nanoGPT computes.

The reference below re-states nanoGPT's model.py (LayerNorm with optional bias, fused c_attn causal self-attention,
exact GELU MLP, pre-norm blocks, learned positions, lm_head tied to wte) in plain torch, independent of mathalign.
"""

import math
import os
import pickle
import time

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

import mathalign  # noqa: F401  (registers MathGPT with the Auto classes)
from mathalign.cli import main
from mathalign.convert import codebook_to_tokenizer, convert_nanogpt

# ------------------------------------------------------------------------------------------------------------------
# Reference nanoGPT forward


class RefLayerNorm(nn.Module):
    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class RefSelfAttention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.n_head, self.n_embd = a["n_head"], a["n_embd"]
        self.c_attn = nn.Linear(a["n_embd"], 3 * a["n_embd"], bias=a["bias"])
        self.c_proj = nn.Linear(a["n_embd"], a["n_embd"], bias=a["bias"])

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # the explicit (non-flash) path of nanoGPT
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class RefBlock(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.ln_1, self.ln_2 = RefLayerNorm(a["n_embd"], a["bias"]), RefLayerNorm(a["n_embd"], a["bias"])
        self.attn = RefSelfAttention(a)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(a["n_embd"], 4 * a["n_embd"], bias=a["bias"]),
                                      c_proj=nn.Linear(4 * a["n_embd"], a["n_embd"], bias=a["bias"])))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x))))


class RefGPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(a["vocab_size"], a["n_embd"]),
            wpe=nn.Embedding(a["block_size"], a["n_embd"]),
            h=nn.ModuleList([RefBlock(a) for _ in range(a["n_layer"])]),
            ln_f=RefLayerNorm(a["n_embd"], a["bias"]),
        ))
        self.lm_head = nn.Linear(a["n_embd"], a["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying, as nanoGPT

    def forward(self, idx):  # logits at every position (nanoGPT keeps only the last one at inference)
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


# ------------------------------------------------------------------------------------------------------------------
# Checkpoints built here

TEXT = "72/4=? The answer is 18.\nx-18=21, x=? The answer is 39.\n"
CHARS = sorted(set(TEXT + "0123456789+-*"))  # as nanoGPT's data/shakespeare_char/prepare.py builds its codebook
STOI = {ch: i for i, ch in enumerate(CHARS)}
ITOS = {i: ch for i, ch in enumerate(CHARS)}


def make_reference(bias: bool, seed: int = 0) -> tuple[dict, RefGPT]:
    torch.manual_seed(seed)
    model_args = dict(n_layer=2, n_head=4, n_embd=32, block_size=32, bias=bias, vocab_size=len(CHARS), dropout=0.0)
    ref = RefGPT(model_args)
    with torch.no_grad():  # random LayerNorm gains and biases too, so a mis-mapped one cannot go unnoticed
        for name, p in ref.named_parameters():
            is_gain = ".ln_" in name and name.endswith(".weight")
            p.copy_((1.0 if is_gain else 0.0) + 0.1 * torch.randn_like(p))
    return model_args, ref.eval()


def save_checkpoint(path, model_args, ref, compiled=False, mask_buffers=False, edit=None):
    state = dict(ref.state_dict())
    if mask_buffers:  # nanoGPT without flash attention stores its causal mask as `attn.bias`
        T = model_args["block_size"]
        for i in range(model_args["n_layer"]):
            state[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    if edit:
        edit(state)
    if compiled:
        state = {"_orig_mod." + k: v for k, v in state.items()}
    torch.save({"model": state, "model_args": model_args, "iter_num": 5000, "best_val_loss": torch.tensor(0.61),
                "config": {"dataset": "math_char", "batch_size": 64, "compile": compiled}}, path)
    return path


def save_meta(path, stoi=STOI, itos=ITOS):
    with open(path, "wb") as f:
        pickle.dump({"vocab_size": len(stoi), "stoi": stoi, "itos": itos}, f)
    return path


def encode(text):
    return torch.tensor([[STOI[c] for c in text]])


# ------------------------------------------------------------------------------------------------------------------
# Conversion equals the reference


@pytest.mark.parametrize(
    "bias, compiled, mask_buffers, with_meta",
    [
        (True, False, False, True),  # GPT-2 style: biases in every Linear and LayerNorm, with a codebook
        (False, True, False, True),  # nanoGPT's default bias=False, saved from a torch.compile'd model
        (True, True, True, False),  # old nanoGPT without flash attention (mask buffers), no codebook: model only
    ],
)
def test_cli_conversion_matches_reference_forward(tmp_path, capsys, bias, compiled, mask_buffers, with_meta):
    model_args, ref = make_reference(bias)
    ckpt = save_checkpoint(tmp_path / "ckpt.pt", model_args, ref, compiled=compiled, mask_buffers=mask_buffers)
    argv = ["convert", "nanogpt", str(ckpt), str(tmp_path / "out")]
    if with_meta:
        argv[3:3] = ["--meta", str(save_meta(tmp_path / "meta.pkl"))]

    assert main(argv) == 0
    assert f"bias={bias}" in capsys.readouterr().out

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.cat([encode(TEXT[:20]), encode(TEXT[20:40])])  # (2, 20)
    with torch.no_grad():
        expected = ref(ids)
        logits = model(ids).logits
    V = model_args["vocab_size"]
    torch.testing.assert_close(logits[..., :V], expected, atol=1e-5, rtol=0)
    if with_meta:
        # special tokens sit after the codebook; their logit is the mean of the original ones, never the argmax
        assert logits.shape[-1] == V + len(mathalign.SPECIAL_TOKENS)
        torch.testing.assert_close(logits[..., V:], expected.mean(-1, keepdim=True).expand(-1, -1, 6), atol=1e-5,
                                   rtol=0)
        assert AutoTokenizer.from_pretrained(tmp_path / "out").decode(ids[0]) == TEXT[:20]
    else:
        assert logits.shape[-1] == V and not (tmp_path / "out" / "tokenizer.json").exists()


def test_greedy_generate_matches_reference_greedy(tmp_path):
    model_args, ref = make_reference(bias=True, seed=1)
    model, tokenizer = convert_nanogpt(save_checkpoint(tmp_path / "ckpt.pt", model_args, ref), tmp_path / "out",
                                       meta_path=save_meta(tmp_path / "meta.pkl"))
    prompt = "x-18=21, x=?"
    idx = encode(prompt)
    with torch.no_grad():
        for _ in range(10):  # nanoGPT's generate with temperature -> 0: append the argmax
            idx = torch.cat([idx, ref(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
        inputs = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=10, do_sample=False)  # KV cache with learned positions
    assert out.tolist() == idx.tolist()
    assert tokenizer.decode(out[0]) == "".join(ITOS[i] for i in idx[0].tolist())


# ------------------------------------------------------------------------------------------------------------------
# The character tokenizer


@pytest.mark.parametrize(
    "text",
    [
        "72/4=? The answer is 18.",  # the seed's prompt style
        "x-18=21, x=?\n",  # newline is an ordinary codebook character
        "  two  spaces ",  # runs of spaces and trailing space survive (no normalisation, nothing stripped)
        "",  # nothing in, nothing out
    ],
)
def test_char_tokenizer_round_trip_keeps_codebook_ids(tmp_path, text):
    chars = sorted(set(TEXT + "two spaces"))
    stoi, itos = {c: i for i, c in enumerate(chars)}, dict(enumerate(chars))
    codebook_to_tokenizer(stoi, itos).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    ids = tokenizer(text)["input_ids"]
    assert ids == [stoi[c] for c in text]  # every character one token, with nanoGPT's id
    assert tokenizer.decode(ids) == text


def test_char_tokenizer_special_tokens_follow_codebook():
    tokenizer = codebook_to_tokenizer(STOI, ITOS)
    special_ids = tokenizer.convert_tokens_to_ids(mathalign.SPECIAL_TOKENS)
    assert sorted(special_ids) == list(range(len(STOI), len(STOI) + len(mathalign.SPECIAL_TOKENS)))
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer("Z")["input_ids"] == [tokenizer.unk_token_id]  # out-of-codebook characters become <unk>
    assert tokenizer.decode(tokenizer("18.<eos>")["input_ids"], skip_special_tokens=True) == "18."


# ------------------------------------------------------------------------------------------------------------------
# Bad input: one clear line, exit code 2, nothing executed, nothing written


class NotPlainData:
    """An arbitrary Python object: a weights-only load must refuse it."""


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a malicious pickle does: call os.system on load
        return (os.system, (f"touch {self.marker}",))


def drop_key(key):
    return lambda state: state.pop(key)


def bad_shape(key):
    return lambda state: state.__setitem__(key, torch.zeros(3, 3))


def add_key(key):
    return lambda state: state.__setitem__(key, torch.zeros(32))


MODEL_ARGS_EDITS = {
    "absurd n_layer": {"n_layer": 10**8},  # took 36 s, then MemoryError
    "n_layer too small": {"n_layer": 1},
    "n_embd of another model": {"n_embd": 64},
    "n_head not dividing n_embd": {"n_head": 5},
}


def write_bad(tmp_path, case):
    """Return (ckpt, meta) paths for one bad-input case."""
    model_args, ref = make_reference(bias=False)
    ckpt, meta = tmp_path / "ckpt.pt", save_meta(tmp_path / "meta.pkl")
    if case == "missing checkpoint":
        return tmp_path / "nope.pt", meta
    if case == "arbitrary object":
        torch.save({"model_args": model_args, "model": ref.state_dict(), "extra": NotPlainData()}, ckpt)
    elif case == "shell pickle as checkpoint":
        with open(ckpt, "wb") as f:
            pickle.dump({"model": RunsShell(tmp_path / "pwned")}, f, protocol=2)
    elif case == "shell pickle as meta":
        save_checkpoint(ckpt, model_args, ref)
        with open(meta, "wb") as f:
            pickle.dump({"vocab_size": 1, "stoi": RunsShell(tmp_path / "pwned"), "itos": {}}, f)
    elif case == "missing meta":
        save_checkpoint(ckpt, model_args, ref)
        meta = tmp_path / "nope.pkl"
    elif case == "not nanoGPT":
        torch.save(ref.state_dict(), ckpt)
    elif case == "codebook of another dataset":
        save_checkpoint(ckpt, model_args, ref)
        save_meta(meta, {"a": 0, "b": 1}, {0: "a", 1: "b"})
    elif case in MODEL_ARGS_EDITS:  # model_args that disagree with the tensors
        save_checkpoint(ckpt, {**model_args, **MODEL_ARGS_EDITS[case]}, ref)
    elif case == "expanded tensor":  # 1 value stored, 10**8 x 32 claimed: a small file, a 12.8 GB float copy
        save_checkpoint(ckpt, model_args, ref, edit=lambda state: state.__setitem__(
            "transformer.wpe.weight", torch.zeros(1).expand(10**8, 32)))
    else:
        edits = {"wrong shape": bad_shape("transformer.h.1.mlp.c_fc.weight"),
                 "missing key": drop_key("transformer.h.0.ln_2.weight"),
                 "unexpected key": add_key("transformer.h.0.ln_1.bias")}
        save_checkpoint(ckpt, model_args, ref, compiled=True, edit=edits[case])
    return ckpt, meta


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing checkpoint", "does not exist"),  # a typo in the path
        ("arbitrary object", "not safe to load (Unsupported global: GLOBAL "),  # refused
        ("shell pickle as checkpoint", "not safe to load"),  # a plain pickle calling os.system: refused, not run
        ("shell pickle as meta", "refers to posix.system"),  # meta.pkl gets the plain-data unpickler
        ("missing meta", "codebook"),  # --meta pointing nowhere
        ("not nanoGPT", "expected a dict with 'model_args' and 'model'"),  # a bare state dict
        ("codebook of another dataset", "has 2 characters but the checkpoint's vocab_size is"),
        ("wrong shape", "'transformer.h.1.mlp.c_fc.weight' has shape (3, 3) but model_args imply (128, 32)"),
        ("missing key", "missing key 'transformer.h.0.ln_2.weight'"),  # prefix stripped before the message
        ("unexpected key", "unexpected key 'transformer.h.0.ln_1.bias' (biases in a bias=False model?)"),
        ("absurd n_layer", "n_layer=100000000 but the state dict holds 2 blocks (transformer.h.0 .. transformer.h.1)"),
        ("n_layer too small", "n_layer=1 but the state dict holds 2 blocks"),
        ("n_embd of another model", "'transformer.wte.weight' has shape (30, 32) but model_args say vocab_size=30, "
                                    "n_embd=64, i.e. (30, 64)"),
        ("n_head not dividing n_embd", "n_embd=32 is not a multiple of n_head=5"),
        ("expanded tensor", "'transformer.wpe.weight' has shape (100000000, 32) (3,200,000,000 values) but its "
                            "storage holds only 4 bytes"),
    ],
)
def test_bad_inputs_fail_with_one_clear_line(tmp_path, capsys, case, message):
    ckpt, meta = write_bad(tmp_path, case)
    out = tmp_path / "out"
    start = time.perf_counter()
    assert main(["convert", "nanogpt", str(ckpt), "--meta", str(meta), str(out)]) == 2
    assert time.perf_counter() - start < 10  # refused before anything is allocated from model_args
    err = capsys.readouterr().err
    assert err.startswith("mathalign convert: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "pwned").exists()  # the malicious reduce never ran
    assert not out.exists()  # nothing half-written


def test_refuses_to_overwrite_a_non_empty_output_dir(tmp_path, capsys):
    model_args, ref = make_reference(bias=False)
    ckpt = save_checkpoint(tmp_path / "ckpt.pt", model_args, ref)
    meta = save_meta(tmp_path / "meta.pkl")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["convert", "nanogpt", str(ckpt), str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a folder that is not empty (1 entry: notes.txt)" in err and "--overwrite" in err
    assert err.count("\n") == 1 and (out / "notes.txt").read_text() == "keep me"
    # --overwrite replaces the folder: nothing of what was there is left next to the new checkpoint
    assert main(["convert", "nanogpt", str(ckpt), "--meta", str(meta), str(out), "--overwrite"]) == 0
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert not (out / "notes.txt").exists()
    assert main(["convert", "nanogpt", str(ckpt), str(out), "--overwrite"]) == 0  # no codebook this time
    assert not (out / "tokenizer.json").exists()  # so no stale tokenizer of the earlier conversion
    # an existing file is refused the same way, and replaced with --overwrite
    (tmp_path / "file").write_text("a file")
    assert main(["convert", "nanogpt", str(ckpt), str(tmp_path / "file")]) == 2
    assert "is an existing file; choose another path, or pass --overwrite" in capsys.readouterr().err
    assert main(["convert", "nanogpt", str(ckpt), str(tmp_path / "file"), "--overwrite"]) == 0
    assert (tmp_path / "file" / "config.json").exists()
    # a folder that holds the checkpoint itself is never replaced
    assert main(["convert", "nanogpt", str(ckpt), str(tmp_path), "--overwrite"]) == 2
    assert "holds the input" in capsys.readouterr().err and ckpt.exists()

"""Import nanoGPT checkpoints: `ckpt.pt` (+ `meta.pkl` character codebook) -> a MathGPT checkpoint directory.

    mathalign convert nanogpt out-math-char/ckpt.pt --meta data/math_char/meta.pkl runs/nanogpt

nanoGPT (karpathy/nanoGPT `train.py`) saves `{"model_args", "model", "iter_num", "best_val_loss", "config", ...}`,
where `model` is the state dict of its `GPT`. MathGPT with `position_embedding_type="learned"` and
`norm_type="layernorm"` computes exactly the same function, so the import is a renaming plus one split:

    transformer.wte / wpe              -> model.embed_tokens / model.embed_positions
    transformer.h.{i}.ln_1 / ln_2      -> model.layers.{i}.input_layernorm / post_attention_layernorm
    transformer.h.{i}.attn.c_attn      -> model.layers.{i}.self_attn.{q,k,v}_proj   (fused rows [q; k; v])
    transformer.h.{i}.attn.c_proj      -> model.layers.{i}.self_attn.o_proj
    transformer.h.{i}.mlp.c_fc / c_proj -> model.layers.{i}.mlp.up_proj / down_proj
    transformer.ln_f                   -> model.norm
    lm_head (tied to wte)              -> lm_head (tied to embed_tokens)

Safety: checkpoints are read with `torch.load(weights_only=True)` and `meta.pkl` with an unpickler that only knows
plain containers, so neither file can run code; anything else is refused, never unpickled "just this once". Sizes
are taken from the tensors, never from `model_args` alone: `model_args` must agree with the state dict (as many
blocks as `n_layer`, shapes that `n_embd`, `vocab_size` and `block_size` imply, tensors that hold every value their
shape claims) before anything is allocated, so a small file that claims `n_layer=10**8` is refused at once instead
of running out of memory. An existing OUT_DIR that is not empty is refused unless `overwrite`, which replaces it.

Tokens: the codebook's ids stay the model's ids. mathalign's special tokens (`<pad> <bos> <eos> <unk> <think>
</think>`) get the ids after them, and the embedding gains one row per special token, initialised to the mean of the
trained rows: logits of the original characters are unchanged, and a new token's logit is the mean of the original
logits, so it never wins greedy decoding before it is trained (the nanoGPT model has never seen an end token).
"""

import os
import pickle
import re
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from data_builders.outputs import check_output, write_folder

from .model import MathGPTConfig, MathGPTForCausalLM
from .tokenizer import BOS, EOS, PAD, SPECIAL_TOKENS, UNK, wrap_tokenizer

# model_args keys of nanoGPT's GPTConfig. Anything else is a variant (another norm, activation, attention...) whose
# forward this converter cannot vouch for, so it is refused rather than silently mis-imported.
REQUIRED_MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size")
OPTIONAL_MODEL_ARGS = ("dropout",)
COMPILE_PREFIX = "_orig_mod."  # torch.compile wraps the model; its state dict keys carry this prefix


# ----------------------------------------------------------------------------------------------------------------
# Reading the files safely


def load_nanogpt_checkpoint(ckpt_path: str | os.PathLike) -> dict:
    """Read a nanoGPT `ckpt.pt` with `torch.load(weights_only=True)`; refuse files holding arbitrary Python objects.

    Returns the checkpoint dict (`model_args`, `model`, and whatever else nanoGPT stored: `iter_num`,
    `best_val_loss`, `config`, `optimizer`).
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"nanoGPT checkpoint {str(path)!r} does not exist (expected e.g. out/ckpt.pt).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is several paragraphs; keep its one informative line (e.g. "Unsupported global: ...").
        match = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
        detail = match.group(1).strip().split(". ")[0] if match else "not a weights-only pickle"
        raise ValueError(
            f"{str(path)!r} contains Python objects that are not safe to load ({detail}); mathalign reads "
            "checkpoints with torch.load(weights_only=True) only. Re-save it as plain data, e.g. "
            "torch.save({'model_args': dict(...), 'model': model.state_dict()}, path)."
        ) from None
    except (EOFError, RuntimeError) as err:  # empty, truncated or not a torch file at all
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{str(path)!r} is not a readable PyTorch checkpoint ({first_line}); is the file complete?"
        ) from None
    if not isinstance(checkpoint, dict) or "model_args" not in checkpoint or "model" not in checkpoint:
        found = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{str(path)!r} is not a nanoGPT checkpoint: expected a dict with 'model_args' and 'model' "
            f"(as nanoGPT's train.py saves), found {found}."
        )
    return checkpoint


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles only plain data (dicts, lists, strings, numbers); any other global is refused before it loads."""

    ALLOWED = {("builtins", name) for name in ("dict", "list", "str", "int")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a character codebook never needs")


def load_codebook(meta_path: str | os.PathLike) -> tuple[dict[str, int], dict[int, str]]:
    """Read nanoGPT's `meta.pkl` (`{"vocab_size", "stoi", "itos"}`) without executing anything it contains.

    Returns `(stoi, itos)` after checking that they are inverse maps over single characters with ids 0..n-1.
    """
    path = Path(meta_path)
    if not path.is_file():
        raise FileNotFoundError(f"codebook {str(path)!r} does not exist (nanoGPT writes it as data/<name>/meta.pkl).")
    try:
        with open(path, "rb") as f:
            meta = _PlainDataUnpickler(f).load()
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{str(path)!r} is not safe to load: {err}. A nanoGPT meta.pkl holds only plain dicts of characters "
            "and ints; recreate it with nanoGPT's prepare.py."
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError) as err:
        raise ValueError(f"{str(path)!r} is not a readable pickle ({type(err).__name__}: {err}).") from None

    if not isinstance(meta, dict) or not isinstance(meta.get("stoi"), dict) or not isinstance(meta.get("itos"), dict):
        raise ValueError(
            f"{str(path)!r} is not a character codebook: expected a dict with 'stoi' and 'itos' dicts "
            "(as nanoGPT's data/shakespeare_char/prepare.py writes)."
        )
    stoi, itos = meta["stoi"], meta["itos"]
    for char, index in stoi.items():
        if not isinstance(char, str) or len(char) != 1 or not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(
                f"{str(path)!r}: stoi maps {char!r} -> {index!r}; a character codebook maps single characters to "
                "integer ids."
            )
    if sorted(stoi.values()) != list(range(len(stoi))):
        raise ValueError(f"{str(path)!r}: stoi ids must be exactly 0..{len(stoi) - 1}, each used once.")
    if {i: c for c, i in stoi.items()} != itos:
        raise ValueError(f"{str(path)!r}: itos is not the inverse of stoi; the codebook is corrupt.")
    if meta.get("vocab_size", len(stoi)) != len(stoi):
        raise ValueError(f"{str(path)!r}: vocab_size={meta['vocab_size']!r} but stoi has {len(stoi)} characters.")
    return stoi, itos


# ----------------------------------------------------------------------------------------------------------------
# The tokenizer


def codebook_to_tokenizer(
    stoi: dict[str, int], itos: dict[int, str], model_max_length: int = 256
) -> PreTrainedTokenizerFast:
    """Build a character-level fast tokenizer whose ids are the codebook's, plus mathalign's special tokens after them.

    Every character is its own token (a `Split` pre-tokenizer isolates each one, a `WordLevel` model looks it up),
    and the decoder concatenates, so `decode(encode(text)) == text` for any text made of codebook characters;
    other characters become `<unk>`.

    >>> tok = codebook_to_tokenizer({"1": 0, "+": 1, "=": 2}, {0: "1", 1: "+", 2: "="})
    >>> tok("1+1=")["input_ids"], tok.eos_token_id
    ([0, 1, 0, 2], 5)
    """
    if {i: c for c, i in stoi.items()} != itos or sorted(itos) != list(range(len(itos))):
        raise ValueError("codebook_to_tokenizer: stoi and itos must be inverse maps over ids 0..n-1.")
    clashes = [t for t in SPECIAL_TOKENS if t in stoi]
    if clashes:
        raise ValueError(f"codebook_to_tokenizer: the codebook already holds the special tokens {clashes}.")
    vocab = {itos[i]: i for i in range(len(itos))}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)  # after the codebook, so the trained ids do not move
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one piece per char
    tokenizer.decoder = decoders.Fuse()  # join the characters back with nothing in between
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return wrap_tokenizer(tokenizer, model_max_length=model_max_length)


# ----------------------------------------------------------------------------------------------------------------
# The model


def _check_model_args(model_args) -> dict:
    if not isinstance(model_args, dict):
        raise ValueError(f"nanoGPT model_args must be a dict, got {type(model_args).__name__}.")
    missing = [k for k in REQUIRED_MODEL_ARGS if k not in model_args]
    if missing:
        raise ValueError(f"nanoGPT model_args lacks {missing}; expected the keys {list(REQUIRED_MODEL_ARGS)}.")
    unknown = sorted(set(model_args) - set(REQUIRED_MODEL_ARGS) - set(OPTIONAL_MODEL_ARGS))
    if unknown:
        raise ValueError(
            f"nanoGPT model_args has keys {unknown} that nanoGPT's GPTConfig does not; this looks like a modified "
            "nanoGPT whose forward the converter cannot reproduce exactly."
        )
    for key in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
        value = model_args[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"nanoGPT model_args['{key}'] must be a positive integer, got {value!r}.")
    if not isinstance(model_args["bias"], bool):
        raise ValueError(f"nanoGPT model_args['bias'] must be True or False, got {model_args['bias']!r}.")
    if model_args["n_embd"] % model_args["n_head"]:
        raise ValueError(f"nanoGPT model_args: n_embd={model_args['n_embd']} is not a multiple of "
                         f"n_head={model_args['n_head']}; nanoGPT's attention needs one.")
    dropout = model_args.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"nanoGPT model_args['dropout'] must be a number in [0, 1), got {dropout!r}.")
    return model_args


def _expected_shapes(model_args: dict) -> dict[str, tuple[int, ...]]:
    """Every parameter of nanoGPT's GPT for these model_args, with its shape (lm_head is tied, listed apart)."""
    C, V, T, bias = model_args["n_embd"], model_args["vocab_size"], model_args["block_size"], model_args["bias"]
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C)}

    def linear(name, n_out, n_in):
        shapes[f"{name}.weight"] = (n_out, n_in)
        if bias:
            shapes[f"{name}.bias"] = (n_out,)

    def layernorm(name):
        shapes[f"{name}.weight"] = (C,)
        if bias:
            shapes[f"{name}.bias"] = (C,)

    for i in range(model_args["n_layer"]):
        block = f"transformer.h.{i}"
        layernorm(f"{block}.ln_1")
        linear(f"{block}.attn.c_attn", 3 * C, C)
        linear(f"{block}.attn.c_proj", C, C)
        layernorm(f"{block}.ln_2")
        linear(f"{block}.mlp.c_fc", 4 * C, C)
        linear(f"{block}.mlp.c_proj", C, 4 * C)
    layernorm("transformer.ln_f")
    return shapes


def _clean_state_dict(model_args: dict, state_dict) -> dict[str, torch.Tensor]:
    """Strip torch.compile prefixes, drop nanoGPT's causal-mask buffers, and check every key and shape."""
    if not isinstance(state_dict, dict):
        raise ValueError(f"nanoGPT 'model' must be a state dict, got {type(state_dict).__name__}.")
    block_size = model_args["block_size"]
    weights = {}
    for key, value in state_dict.items():
        name = key[len(COMPILE_PREFIX):] if isinstance(key, str) and key.startswith(COMPILE_PREFIX) else key
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"nanoGPT state dict entry {key!r} is a {type(value).__name__}, not a tensor.")
        _check_backed(name, value)
        # Without flash attention nanoGPT registers its causal mask as a buffer named `attn.bias`: not a weight.
        is_mask = re.fullmatch(r"transformer\.h\.\d+\.attn\.bias", str(name))
        if is_mask and value.shape == (1, 1, block_size, block_size):
            continue
        if name in weights:
            raise ValueError(f"nanoGPT state dict holds {name!r} twice (with and without {COMPILE_PREFIX!r}).")
        weights[name] = value

    _check_sizes(model_args, weights)  # model_args agree with the tensors: _expected_shapes is as small as they are
    expected = _expected_shapes(model_args)
    lm_head = weights.pop("lm_head.weight", None)
    unexpected = sorted(set(weights) - set(expected))
    if unexpected:
        hint = " (biases in a bias=False model?)" if any(k.endswith(".bias") for k in unexpected) else ""
        raise ValueError(f"nanoGPT state dict has unexpected key {unexpected[0]!r}{hint}; "
                         f"{len(unexpected)} unexpected in all.")
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ValueError(f"nanoGPT state dict is missing key {missing[0]!r}; {len(missing)} missing in all "
                         f"(model_args: n_layer={model_args['n_layer']}, bias={model_args['bias']}).")
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise ValueError(
                f"nanoGPT state dict key {name!r} has shape {tuple(weights[name].shape)} but model_args imply {shape}."
            )
    if not all(w.is_floating_point() for w in weights.values()):
        bad = next(k for k, w in weights.items() if not w.is_floating_point())
        raise ValueError(f"nanoGPT state dict key {bad!r} is not a floating-point tensor ({weights[bad].dtype}).")
    if lm_head is not None and not torch.equal(lm_head, weights["transformer.wte.weight"]):
        raise ValueError(
            "nanoGPT state dict key 'lm_head.weight' differs from 'transformer.wte.weight'; nanoGPT ties them and "
            "MathGPT would keep only one, so this checkpoint is not plain nanoGPT."
        )
    return weights


def _check_backed(name, tensor: torch.Tensor) -> None:
    """A tensor must hold the values its shape claims: an expanded or strided view of a few values would be
    materialised at its full size by the conversion (a small file, a huge allocation)."""
    needed = tensor.numel() * tensor.element_size()
    held = tensor.untyped_storage().nbytes()
    if needed > held:
        raise ValueError(
            f"nanoGPT state dict key {name!r} has shape {tuple(tensor.shape)} ({tensor.numel():,} values) but its "
            f"storage holds only {held:,} bytes (an expanded view?); re-save the checkpoint with plain tensors.")


def _check_sizes(model_args: dict, weights: dict[str, torch.Tensor]) -> None:
    """model_args against the tensors themselves, before anything is allocated from model_args: as many blocks as
    `n_layer`, and embeddings of the shapes `vocab_size`, `block_size` and `n_embd` imply."""
    blocks = set()
    for name in weights:
        match = re.match(r"transformer\.h\.(\d{1,9})\.", str(name))
        if match:
            blocks.add(int(match.group(1)))
    n_layer = model_args["n_layer"]
    if len(blocks) != n_layer or max(blocks, default=-1) != n_layer - 1:  # distinct ints: exactly 0..n_layer-1
        held = f"{len(blocks)} blocks (transformer.h.{min(blocks)} .. transformer.h.{max(blocks)})" if blocks \
            else "no blocks (transformer.h.*)"
        raise ValueError(f"nanoGPT model_args say n_layer={n_layer} but the state dict holds {held}; the "
                         "checkpoint is inconsistent or not nanoGPT's.")
    for key, arg_names in (("transformer.wte.weight", ("vocab_size", "n_embd")),
                           ("transformer.wpe.weight", ("block_size", "n_embd"))):
        shape = tuple(model_args[a] for a in arg_names)
        if key not in weights:
            raise ValueError(f"nanoGPT state dict is missing key {key!r}.")
        if tuple(weights[key].shape) != shape:
            said = ", ".join(f"{a}={model_args[a]}" for a in arg_names)
            raise ValueError(f"nanoGPT state dict key {key!r} has shape {tuple(weights[key].shape)} but model_args "
                             f"say {said}, i.e. {shape}.")


def nanogpt_to_mathgpt(model_args: dict, state_dict: dict, *, vocab_size: int | None = None) -> MathGPTForCausalLM:
    """Build a `MathGPTForCausalLM` that computes exactly what nanoGPT's `GPT(GPTConfig(**model_args))` computes.

    `state_dict` is nanoGPT's (keys `transformer.wte.weight`, ..., `lm_head.weight`), with or without torch.compile's
    `_orig_mod.` prefixes. Missing or unexpected keys and wrong shapes raise `ValueError` naming the key.
    `vocab_size` (>= model_args["vocab_size"]) appends embedding rows for new tokens, each set to the mean of the
    trained rows, so the logits of the original ids stay exactly the same. Weights are stored as float32.
    """
    model_args = _check_model_args(model_args)
    weights = {k: w.detach().to(torch.float32) for k, w in _clean_state_dict(model_args, state_dict).items()}
    n_embd, n_vocab = model_args["n_embd"], model_args["vocab_size"]
    vocab_size = n_vocab if vocab_size is None else vocab_size
    if vocab_size < n_vocab:
        raise ValueError(f"nanogpt_to_mathgpt: vocab_size={vocab_size} is smaller than the checkpoint's {n_vocab}.")
    dropout = float(model_args.get("dropout", 0.0))
    config = MathGPTConfig(
        vocab_size=vocab_size,
        hidden_size=n_embd,
        num_hidden_layers=model_args["n_layer"],
        num_attention_heads=model_args["n_head"],
        intermediate_size=4 * n_embd,
        hidden_act="gelu",  # exact (erf) GELU, as nanoGPT's nn.GELU()
        max_position_embeddings=model_args["block_size"],
        position_embedding_type="learned",
        norm_type="layernorm",
        layer_norm_eps=1e-5,  # nanoGPT's LayerNorm hard-codes 1e-5
        bias=model_args["bias"],
        embd_dropout=dropout,  # nanoGPT uses one dropout rate everywhere
        attention_dropout=dropout,
        resid_dropout=dropout,
        tie_word_embeddings=True,
    )

    wte = weights["transformer.wte.weight"]  # (n_vocab, n_embd)
    if vocab_size > n_vocab:
        # new token ids get the mean row: their logit is then the mean of the original logits at every position
        wte = torch.cat([wte, wte.mean(dim=0, keepdim=True).expand(vocab_size - n_vocab, n_embd)])
    converted = {
        "model.embed_tokens.weight": wte,
        "model.embed_positions.weight": weights["transformer.wpe.weight"],
        "lm_head.weight": wte,
    }

    def copy(src, dst):
        for suffix in ("weight", "bias"):
            if f"{src}.{suffix}" in weights:
                converted[f"{dst}.{suffix}"] = weights[f"{src}.{suffix}"]

    for i in range(model_args["n_layer"]):
        src, dst = f"transformer.h.{i}", f"model.layers.{i}"
        copy(f"{src}.ln_1", f"{dst}.input_layernorm")
        # c_attn computes [q | k | v] = x @ W.T with W of shape (3 * n_embd, n_embd): its rows split into q, k, v.
        for suffix in ("weight", "bias"):
            if f"{src}.attn.c_attn.{suffix}" in weights:
                q, k, v = weights[f"{src}.attn.c_attn.{suffix}"].split(n_embd, dim=0)
                for proj, tensor in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                    converted[f"{dst}.self_attn.{proj}.{suffix}"] = tensor.contiguous()
        copy(f"{src}.attn.c_proj", f"{dst}.self_attn.o_proj")
        copy(f"{src}.ln_2", f"{dst}.post_attention_layernorm")
        copy(f"{src}.mlp.c_fc", f"{dst}.mlp.up_proj")
        copy(f"{src}.mlp.c_proj", f"{dst}.mlp.down_proj")
    copy("transformer.ln_f", "model.norm")

    model = MathGPTForCausalLM(config)
    model.load_state_dict(converted, strict=True)  # every MathGPT parameter must come from the checkpoint
    model.tie_weights()
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# The whole import


def convert_nanogpt(
    ckpt_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    meta_path: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> tuple[MathGPTForCausalLM, PreTrainedTokenizerFast | None]:
    """Convert a nanoGPT `ckpt.pt` (and its `meta.pkl` codebook) into a MathGPT checkpoint directory `out_dir`.

    The directory then loads with `AutoModelForCausalLM.from_pretrained(out_dir)` (after `import mathalign`, or with
    `trust_remote_code=True` elsewhere) and, when `meta_path` is given, `AutoTokenizer.from_pretrained(out_dir)`.
    Returns `(model, tokenizer)`; the tokenizer is None without a codebook. An existing file or non-empty folder at
    `out_dir` is refused before anything is read unless `overwrite=True`, which replaces it once the new checkpoint
    is complete (nothing of an earlier conversion, such as its tokenizer, is left behind).

    Example (the same as `mathalign convert nanogpt out/ckpt.pt --meta data/math_char/meta.pkl runs/nanogpt`):

        model, tokenizer = convert_nanogpt("out/ckpt.pt", "runs/nanogpt", meta_path="data/math_char/meta.pkl")
    """
    inputs = [p for p in (ckpt_path, meta_path) if p is not None]
    out = check_output(out_dir, overwrite, inputs=inputs, name="OUT_DIR")
    checkpoint = load_nanogpt_checkpoint(ckpt_path)
    model_args = _check_model_args(checkpoint["model_args"])

    tokenizer = None
    vocab_size = model_args["vocab_size"]
    if meta_path is not None:
        stoi, itos = load_codebook(meta_path)
        if len(stoi) != model_args["vocab_size"]:
            raise ValueError(
                f"codebook {str(meta_path)!r} has {len(stoi)} characters but the checkpoint's vocab_size is "
                f"{model_args['vocab_size']}; pass the meta.pkl of the dataset this model was trained on."
            )
        tokenizer = codebook_to_tokenizer(stoi, itos, model_max_length=model_args["block_size"])
        vocab_size = len(tokenizer)

    model = nanogpt_to_mathgpt(model_args, checkpoint["model"], vocab_size=vocab_size)
    if tokenizer is not None:
        for config in (model.config, model.generation_config):
            config.pad_token_id = tokenizer.convert_tokens_to_ids(PAD)
            config.bos_token_id = tokenizer.convert_tokens_to_ids(BOS)
            config.eos_token_id = tokenizer.convert_tokens_to_ids(EOS)

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)

    write_folder(out, write, overwrite, inputs=inputs, name="OUT_DIR")
    return model, tokenizer


__all__ = ["codebook_to_tokenizer", "convert_nanogpt", "load_codebook", "load_nanogpt_checkpoint", "nanogpt_to_mathgpt"]

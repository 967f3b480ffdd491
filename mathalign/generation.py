"""Batched generation and model loading: what evaluation, chat, attention maps and the preference builder share.

    >>> from mathalign.generation import generate_batched, load_model_and_tokenizer
    >>> model, tokenizer = load_model_and_tokenizer("runs/sft")
    >>> texts, lengths, ids = generate_batched(model, tokenizer, ["72/4=?", "x-18=21, x=?"], max_new_tokens=96)

Prompts are left-padded and generated in batches with the KV cache (greedy, stop at eos): sorting the prompts by
length first keeps padding small. Left padding keeps every prompt's last token at the same position, so the whole
batch continues together; attention masks and position ids keep the padding invisible (a test checks that a batched
answer equals the one-at-a-time answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .sources import check_source, from_pretrained, is_local

# Budgets where no gold completion says how long an answer runs (chat, prompt-only data). Generation stops at EOS,
# so room to spare costs nothing; arithmetic's longest `worked` answer (x*64=6336=?, six halvings) is 68 tokens.
DEFAULT_MAX_NEW_TOKENS = {"arithmetic": 96, "expressions": 192, "gsm8k": 512, "aqua": 512}
FALLBACK_MAX_NEW_TOKENS = 128


def load_model_and_tokenizer(model_or_path, tokenizer=None, attn_implementation: str | None = None, device=None):
    """(model, tokenizer) from a checkpoint directory, a LoRA adapter directory, a Hub id, or a model object.

    An adapter directory (it holds `adapter_config.json`) loads with `peft.AutoPeftModelForCausalLM`, its
    tokenizer from the adapter directory when saved there, else from the base model. The model is put in eval mode
    on `device` (default: CUDA when available, else CPU).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import mathalign  # noqa: F401  (registers MathGPT with the Auto classes)


    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if isinstance(model_or_path, (str, Path)):
        name = str(model_or_path)
        path = Path(name).expanduser()
        if path.is_dir():
            if (path / "adapter_config.json").is_file():
                from peft import AutoPeftModelForCausalLM
                from peft.auto import get_default_import_allowlist

                # An adapter saved without a task type names its base class by module: allow MathGPT's.
                allowlist = [*get_default_import_allowlist(), "mathalign"]
                model = from_pretrained(AutoPeftModelForCausalLM, str(path), "LoRA adapter",
                                        import_allowlist=allowlist, **kwargs)
                tokenizer_source = str(path) if _has_tokenizer(path) else model.peft_config["default"].base_model_name_or_path
            elif (path / "config.json").is_file():
                model = from_pretrained(AutoModelForCausalLM, str(path), "model", **kwargs)
                tokenizer_source = str(path)
            else:
                raise FileNotFoundError(
                    f"{name} is not a model directory (no config.json or adapter_config.json); pass a checkpoint "
                    "saved with save_pretrained, a LoRA adapter directory, or a Hub model id."
                )
        elif path.exists() or is_local(name):
            raise FileNotFoundError(f"model path {name} does not exist; pass a checkpoint directory or a Hub model id.")
        else:  # a Hub id such as Qwen/Qwen2.5-0.5B-Instruct
            check_source(name, "model")
            try:
                model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
            except OSError as err:
                raise FileNotFoundError(
                    f"cannot load model {name!r} (not a local directory, and the Hub said: {str(err).splitlines()[0]})"
                ) from None
            tokenizer_source = name
        if tokenizer is None:
            tokenizer = from_pretrained(AutoTokenizer, tokenizer_source, "tokenizer")
    else:
        model = model_or_path
        if tokenizer is None:
            raise ValueError("pass the tokenizer along with an in-memory model (tokenizer=...).")
    if tokenizer.pad_token_id is None:  # Hub tokenizers without a pad token: pad with eos (masked out anyway)
        tokenizer.pad_token = tokenizer.eos_token
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not getattr(model, "hf_device_map", None) and not getattr(model, "is_quantized", False):
        model = model.to(device)
    model.eval()
    return model, tokenizer


def _has_tokenizer(path: Path) -> bool:
    return any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))



def _eos_ids(model, tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return sorted(i for i in ids if i is not None)


def render_prompt(prompt, tokenizer) -> str:
    """A prompt as the text the model reads: strings as they are, conversations through the chat template."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


@torch.inference_mode()
def generate_batched(
    model,
    tokenizer,
    prompts: Sequence[str],
    batch_size: int = 64,
    max_new_tokens: int = 32,
    min_new_tokens: int | None = None,
    use_cache: bool = True,
    progress: bool = True,
    desc: str = "generating",
    temperature: float | None = None,
) -> tuple[list[str], list[int], list[list[int]]]:
    """Completions of `prompts`: (texts, generated lengths in tokens, generated token ids), in input order.

    Greedy by default; with a `temperature` they are sampled (seed torch first for reproducible samples).
    Prompts are sorted by length and left-padded in batches of `batch_size`; each completion stops at eos (the eos
    itself is neither decoded nor counted). `use_cache=False` and `batch_size=1` give the slow reference path.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
    device = next(model.parameters()).device
    texts: list[str | None] = [None] * len(prompts)
    lengths: list[int] = [0] * len(prompts)
    token_ids: list[list[int]] = [[] for _ in prompts]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress or len(batches) < 2):
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # left padding: the last prompt tokens line up
            ids = encoded[i]
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=temperature is not None,
            num_beams=1,
            **({} if temperature is None else {"temperature": temperature, "top_k": 0, "top_p": 1.0}),
            eos_token_id=eos_ids,
            pad_token_id=pad_id,
            use_cache=use_cache,
        )
        for row, i in enumerate(batch):
            new = output[row, width:].tolist()
            end = next((k for k, t in enumerate(new) if t in eos_ids), len(new))
            token_ids[i] = new[:end]
            lengths[i] = end
            texts[i] = tokenizer.decode(new[:end], skip_special_tokens=False)
    return texts, lengths, token_ids


__all__ = ["DEFAULT_MAX_NEW_TOKENS", "FALLBACK_MAX_NEW_TOKENS", "generate_batched", "load_model_and_tokenizer",
           "render_prompt"]

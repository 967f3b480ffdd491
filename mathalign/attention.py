"""Look inside the model: attention heatmaps per layer, attention entropy per layer, and a callback that logs it.

    mathalign attention runs/sft --prompt "x-18=21, x=?" --out runs/sft/attention

Attention entropy (in nats) of one query position is -sum_k p_k log p_k over the keys it can see; a layer's value
is the mean over heads, query positions and prompts. Low entropy means sharp attention (a head that looks up one
operand), high entropy means attention spread over the context. Entropy collapsing towards zero during RL is a
warning sign the nanochat family of projects watches for. Causal attention makes early positions low-entropy by
construction (position 0 sees one key), so compare a layer with itself over training rather than layers with
each other.

The weights come from eager attention (`attn_implementation="eager"`, `output_attentions=True`); the SDPA kernels
never materialise them. The callback switches the model to eager for its measurement and back afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import TrainerCallback

# A fixed probe batch covering both prompt styles (the callback's default when a recipe names no prompts).
DEFAULT_PROBE_PROMPTS = ["72/4=?", "x-18=21, x=?", "17+19=?", "26/x=2, x=?", "Evaluate: 5 + (10 - 3)"]


def _base_model(model):
    """The transformers model under a PEFT wrapper (where `set_attn_implementation` and `config` live)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.inference_mode()
def attention_weights(model, tokenizer, prompts: Sequence[str]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run `prompts` (left-padded) through the model with eager attention.

    Returns (one (B, H, T, T) float tensor per layer, the (B, T) attention mask). The model's attention
    implementation and train/eval mode are restored afterwards.
    """
    base = _base_model(model)
    previous = base.config._attn_implementation
    was_training = model.training
    if previous != "eager":
        base.set_attn_implementation("eager")
    model.eval()
    try:
        batch = tokenizer(list(prompts), return_tensors="pt", padding=True, padding_side="left")
        device = next(model.parameters()).device
        out = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            output_attentions=True,
            use_cache=False,
        )
    finally:
        if previous != "eager":
            base.set_attn_implementation(previous)
        model.train(was_training)
    if not out.attentions or any(a is None for a in out.attentions):
        raise ValueError(f"{type(base).__name__} returned no attention weights; it needs eager attention support.")
    return [a.float().cpu() for a in out.attentions], batch["attention_mask"]


def attention_entropy(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None = None) -> list[float]:
    """Mean attention entropy (nats) per layer over heads and real (non-padding) query positions."""
    entropies = []
    for probs in attentions:  # (B, H, T, S)
        ent = -(probs * probs.clamp_min(1e-12).log()).sum(-1)  # (B, H, T)
        ent = torch.nan_to_num(ent)  # fully masked padding rows may be NaN; they are excluded below
        if attention_mask is not None:
            rows = attention_mask.bool()[:, None, :].expand_as(ent)  # (B, H, T)
            entropies.append(float(ent[rows].mean()))
        else:
            entropies.append(float(ent.mean()))
    return entropies


def measure_attention_entropy(model, tokenizer, prompts: Sequence[str] = DEFAULT_PROBE_PROMPTS) -> dict[str, float]:
    """{`attention_entropy/layer_i`: mean entropy} for a batch of prompts (the keys the callback logs)."""
    attentions, mask = attention_weights(model, tokenizer, prompts)
    return {f"attention_entropy/layer_{i}": round(e, 4) for i, e in enumerate(attention_entropy(attentions, mask))}


def token_labels(tokenizer, input_ids: Sequence[int]) -> list[str]:
    """Readable axis labels: each token decoded on its own, spaces shown as `·`."""
    return [tokenizer.decode([int(i)], skip_special_tokens=False).replace(" ", "·") or "''" for i in input_ids]


def plot_attention_layer(weights: torch.Tensor, tokens: list[str], layer: int, out_png, entropy: float | None = None):
    """One PNG for a layer: a (query x key) heatmap per head, tiled, with token labels on both axes."""
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    num_heads, length = weights.shape[0], weights.shape[-1]
    cols = min(num_heads, 4)
    rows = math.ceil(num_heads / cols)
    tile = max(2.6, min(6.0, 0.22 * length + 1.2))
    fig = Figure(figsize=(tile * cols + 1.2, tile * rows + 0.8), layout="constrained")
    step = max(1, math.ceil(length / 40))  # at most ~40 labels per axis stay legible
    font = 9 if length <= 16 else 7
    image = None
    for h in range(num_heads):
        ax = fig.add_subplot(rows, cols, h + 1)
        # A square-root colour scale keeps weak but real attention visible next to a 1.0 peak.
        image = ax.imshow(weights[h].numpy(), cmap="viridis", norm=PowerNorm(0.5, 0.0, 1.0), interpolation="nearest")
        ax.set_title(f"head {h}", fontsize=9)
        ticks = list(range(0, length, step))
        ax.set_xticks(ticks)
        short = max(len(tokens[i]) for i in ticks) <= 2  # single characters read best upright
        ax.set_xticklabels([tokens[i] for i in ticks], rotation=0 if short else 90, fontsize=font)
        ax.set_yticks(ticks)
        ax.set_yticklabels([tokens[i] for i in ticks], fontsize=font)
        if h % cols == 0:
            ax.set_ylabel("query (attending) token")
        if h >= num_heads - cols:
            ax.set_xlabel("key (attended) token")
    title = f"Layer {layer} attention"
    if entropy is not None:
        title += f" — mean entropy {entropy:.3f} nats"
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.colorbar(image, ax=fig.axes, shrink=0.8, label="attention weight")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return out_png


def inspect_attention(model, tokenizer, prompt: str, out_dir, max_new_tokens: int = 0) -> dict:
    """Write `attention_layer_<i>.png` per layer for `prompt` (optionally followed by the model's own greedy answer)
    and return {"text", "tokens", "entropy": [per layer], "files": [paths]}."""
    text = prompt
    if max_new_tokens > 0:
        from mathalign.generation import generate_batched

        [completion], _, _ = generate_batched(model, tokenizer, [prompt], batch_size=1,
                                              max_new_tokens=max_new_tokens, progress=False)
        text = prompt + completion
    attentions, mask = attention_weights(model, tokenizer, [text])
    entropy = attention_entropy(attentions, mask)
    ids = tokenizer(text)["input_ids"]
    tokens = token_labels(tokenizer, ids)
    files = [
        plot_attention_layer(layer[0], tokens, i, Path(out_dir) / f"attention_layer_{i}.png", entropy[i])
        for i, layer in enumerate(attentions)
    ]
    return {"text": text, "tokens": tokens, "entropy": entropy, "files": files}


class AttentionEntropyCallback(TrainerCallback):
    """Log the mean attention entropy per layer (`attention_entropy/layer_i`) at every logging step.

    On every training log (each `logging_steps`), the model reads a fixed small batch of prompts with eager
    attention, and the entropies join that step's logs and `trainer_state.json`'s `log_history`. The tokenizer
    defaults to the trainer's `processing_class`. For reporters (TensorBoard, trackio) to see the values too, the
    callback must run before them: `attach_to(trainer)` puts it first (`trainer.add_callback` puts it last).

    >>> AttentionEntropyCallback(tokenizer, prompts=["72/4=?", "Evaluate: 5 + (10 - 3)"]).attach_to(trainer)
    """

    def __init__(self, tokenizer=None, prompts: Sequence[str] | None = None):
        self.prompts = [str(p) for p in (prompts or DEFAULT_PROBE_PROMPTS)]
        if not self.prompts:
            raise ValueError("AttentionEntropyCallback needs at least one probe prompt.")
        self.tokenizer = tokenizer

    def attach_to(self, trainer) -> "AttentionEntropyCallback":
        """Register with `trainer` ahead of the reporting callbacks, so they receive the entropies too."""
        trainer.callback_handler.callbacks.insert(0, self)
        return self

    def on_log(self, args, state, control, logs=None, model=None, processing_class=None, **kwargs):
        if logs is None or model is None or not _is_training_log(logs):
            return
        tokenizer = self.tokenizer or processing_class
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
        if tokenizer is None:
            return
        values = measure_attention_entropy(model, tokenizer, self.prompts)
        logs.update(values)
        # Trainer.log stored a copy of `logs` in log_history before calling us: update that copy as well.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(values)


def _is_training_log(logs: dict) -> bool:
    """A periodic training log (not evaluation results, not the end-of-training summary)."""
    return not any(k.startswith(("eval_", "test_")) for k in logs) and "train_runtime" not in logs


__all__ = [
    "AttentionEntropyCallback",
    "DEFAULT_PROBE_PROMPTS",
    "attention_entropy",
    "attention_weights",
    "inspect_attention",
    "measure_attention_entropy",
    "plot_attention_layer",
]

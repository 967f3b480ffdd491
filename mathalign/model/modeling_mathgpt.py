"""MathGPT: a small GPT written as a transformers model.

What differs from a vanilla GPT-2 / nanoGPT block, and why:
- Separate `q_proj`, `k_proj`, `v_proj`, `o_proj` instead of a fused `c_attn`, so PEFT LoRA can target each one
  (nanoGPT checkpoints are split on import, see `mathalign.convert`).
- Rotary position embeddings by default (better length generalisation on arithmetic); `learned` absolute positions
  remain available so nanoGPT checkpoints import exactly, and `nope` uses none (causal attention alone orders tokens).
- Optional Abacus digit positions (`abacus_embeddings`, McLeish et al. 2024): each token's place in its run of digits
  indexes a learned table added to the token embeddings, with a random per-example offset in training. The index is
  computed from input_ids, restarts where packed examples do, and continues a run across KV-cache steps
  (`generate` recomputes it from the whole sequence, see `prepare_inputs_for_generation`). `abacus_rope_heads`
  heads use the same index as their rotary position instead (position coupling).
- Attention goes through transformers' attention interface (sdpa by default, eager for `output_attentions`), masks
  come from `create_causal_mask`, which honours left padding, the KV cache and packed sequences given by
  `position_ids`, so padding-free training batches never attend across examples.
- Padding-free batches (TRL's `packing`: one row, positions restarting at every example) attend per example under
  sdpa: examples of similar length are laid out as the rows of one small batch (`PackedLayout`), so attention costs
  what the examples cost, not the (tokens x tokens) block-diagonal mask of the whole flattened row. That is what
  flash attention's variable-length kernels do on GPUs; here it makes packing pay on CPUs too.

Self-contained on purpose (only relative imports of its own configuration): `save_pretrained` ships this file with
the weights, so `AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)` works without mathalign.
"""

from collections.abc import Callable

import torch
from torch import nn

from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils.output_capturing import capture_outputs

from .configuration_mathgpt import MathGPTConfig


class MathGPTRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def make_norm(config: MathGPTConfig) -> nn.Module:
    if config.norm_type == "rmsnorm":
        return MathGPTRMSNorm(config.hidden_size, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.bias)


class MathGPTRotaryEmbedding(nn.Module):
    """cos/sin tables for rotary embeddings, computed from position_ids (so packing and caching just work)."""

    def __init__(self, config: MathGPTConfig):
        super().__init__()
        self.register_buffer("inv_freq", self.compute_inv_freq(config), persistent=False)

    @staticmethod
    def compute_inv_freq(config: MathGPTConfig) -> torch.Tensor:
        dim = config.head_dim
        return 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))  # (head_dim/2,)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(x.device)  # (B, T, head_dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, head_dim)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    if cos.dim() == 3:  # (B, T, head_dim): the same positions for every head
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, head_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def example_starts(position_ids: torch.Tensor) -> torch.Tensor:
    """True where a packed example starts: positions restart (anything but +1) and at the first token. (B, T) bool."""
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] - position_ids[:, :-1] != 1
    return starts


def _index_in_run(is_digit: torch.Tensor, starts: torch.Tensor, carry: torch.Tensor) -> torch.Tensor:
    """1, 2, ... along each run of digits, from its first one; 0 elsewhere. `starts` (B, T) bool: a run never
    continues into a token marked there; `carry` (B,): the index of the (unseen) token before t=0. (B, T)"""
    t = torch.arange(is_digit.shape[1], device=is_digit.device).expand_as(is_digit)  # (B, T)
    # Where the run containing t began, minus one: the last non-digit at or before t, or the slot before a digit that
    # starts a packed example; before either, the run carried in from the cache (-1 - carry, so t=0 gets carry + 1).
    boundary = (-1 - carry).view(-1, 1).expand_as(is_digit)
    boundary = torch.where(starts, t - 1, boundary)
    boundary = torch.where(is_digit, boundary, t)
    return (t - boundary.cummax(dim=1).values) * is_digit  # (B, T)


def abacus_index(input_ids: torch.Tensor, digit_token_ids: list[int], position_ids: torch.Tensor | None = None,
                 carry: torch.Tensor | None = None, prompt_end_token_ids: list[int] | None = None) -> torch.Tensor:
    """Each token's place in its run of consecutive digit tokens: 1, 2, ... for digits, 0 for anything else. (B, T)

    `position_ids` (optional) mark packed examples: a run never continues from one example into the next.
    `carry` (B,) is the index of the token just before `input_ids` (the last one a KV cache holds): a run that
    began in earlier steps continues from it.
    `prompt_end_token_ids` (optional): digits before the first of these tokens in an example (its prompt, which the
    model always reads whole) count from their number's last digit, so every operand's units digit is 1, its tens 2,
    ...; from that token on, numbers count from their first digit as they are generated. A units-first (reversed)
    answer then gives each digit the index of the operand digits it is computed from, whatever their lengths.

    >>> abacus_index(torch.tensor([[7, 1, 2, 3, 5, 4, 5, 6]]), digit_token_ids=[1, 2, 3, 4, 6]).tolist()
    [[0, 1, 2, 3, 0, 1, 0, 1]]
    >>> abacus_index(torch.tensor([[1, 2, 3, 5, 4, 9, 1, 2]]), [1, 2, 3, 4], prompt_end_token_ids=[9]).tolist()
    [[3, 2, 1, 0, 1, 0, 1, 2]]
    """
    is_digit = torch.isin(input_ids, torch.tensor(digit_token_ids, device=input_ids.device))  # (B, T)
    carry = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device) if carry is None else carry
    starts = example_starts(position_ids).expand_as(input_ids) if position_ids is not None else torch.zeros_like(
        is_digit)
    index = _index_in_run(is_digit, starts, carry)
    if not prompt_end_token_ids:
        return index
    # The same count from the other end (the sequence flipped: an example's last token starts its flipped run).
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    from_end = _index_in_run(is_digit.flip(1), ends.flip(1), torch.zeros_like(carry)).flip(1)
    # In the prompt: no prompt-end token yet in this example (a running count, restarted where each example does).
    is_end = torch.isin(input_ids, torch.tensor(prompt_end_token_ids, device=input_ids.device)).long()
    seen = is_end.cumsum(dim=1)
    seen_before_example = torch.where(starts, seen - is_end, torch.zeros_like(seen)).cummax(dim=1).values
    in_prompt = (seen - seen_before_example) == 0
    return torch.where(in_prompt, from_end, index)


def add_abacus_offsets(index: torch.Tensor, position_ids: torch.Tensor | None, max_offset: int) -> torch.Tensor:
    """Training only: one random offset in [0, max_offset] per example (per row, or per packed example), added to
    every digit's index, so table rows beyond the longest training number are trained too."""
    example = torch.zeros_like(index)  # (B, T): which example of its row each token is in; one per row...
    if position_ids is not None:  # ...or several packed ones
        example = (example_starts(position_ids).cumsum(dim=1) - 1).expand_as(index)
    draws = torch.randint(0, max_offset + 1, index.shape, device=index.device)  # one per (row, example) slot
    return torch.where(index > 0, index + draws.gather(1, example), index)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """softmax(q k^T / sqrt(d) + mask) v, returning the attention probabilities (for `output_attentions`)."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, T, S)
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)  # (B, H, T, head_dim)
    return attn_output.transpose(1, 2).contiguous(), attn_weights  # (B, T, H, head_dim)


class PackedLayout:
    """How to attend per example within one padding-free row (TRL's packing): positions restart at every example.

    The examples are sorted by length and cut into groups of similar length; each group is laid out as a
    (examples, longest in the group) batch for one causal attention call, so the cost follows each example's own
    length instead of the whole row's (a block-diagonal mask over N tokens costs N x N) or the longest example's.
    Unused slots only follow an example's last token, where causal attention never looks.
    """

    SHORTER = 0.75  # an example below this share of its group's longest starts a new group

    def __init__(self, starts: list[int], length: int, device: torch.device):
        bounds = list(zip(starts, starts[1:] + [length]))  # (start, end) of each example in the row
        self.num_examples = len(bounds)
        by_length = sorted(bounds, key=lambda b: b[0] - b[1])  # longest first
        groups = [[by_length[0]]]
        for bound in by_length[1:]:
            longest = groups[-1][0][1] - groups[-1][0][0]
            if bound[1] - bound[0] < self.SHORTER * longest:
                groups.append([])
            groups[-1].append(bound)
        self.groups = []  # per group: index (examples, longest) into the row, and which slots hold a token
        row_order = []  # the row position of every used slot, group after group
        for group in groups:
            longest = group[0][1] - group[0][0]
            index = torch.zeros(len(group), longest, dtype=torch.long)
            used = torch.zeros(len(group), longest, dtype=torch.bool)
            for i, (begin, end) in enumerate(group):
                index[i, : end - begin] = torch.arange(begin, end)
                used[i, : end - begin] = True
            row_order.append(index[used])
            self.groups.append((index.to(device), used.to(device)))
        self.restore = torch.argsort(torch.cat(row_order)).to(device)  # grouped slots -> row order

    @classmethod
    def of(cls, position_ids: torch.Tensor | None) -> "PackedLayout | None":
        """The layout of a packed row, or None when there is nothing to unpack (a batch of rows, one example)."""
        if position_ids is None or position_ids.shape[0] != 1 or position_ids.shape[1] < 2:
            return None
        positions = position_ids[0]
        starts = torch.diff(positions, prepend=positions[:1] - 1) != 1  # True where a new example starts...
        starts[0] = True  # ...and at the first token, whatever its position
        starts = torch.nonzero(starts).flatten().tolist()
        return cls(starts, positions.numel(), positions.device) if len(starts) > 1 else None

    def attention(self, query, key, value, dropout: float, scaling: float) -> torch.Tensor:
        """Causal attention within each example: (1, H, N, D) inputs -> (1, N, H, D), like the attention interface."""
        outputs = []
        for index, used in self.groups:
            # (1, H, N, D) -> (examples, H, longest, D)
            q, k, v = (x[0][:, index].transpose(0, 1) for x in (query, key, value))
            out = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True,
                                                             scale=scaling)
            outputs.append(out.transpose(1, 2)[used])  # (tokens of the group, H, D)
        return torch.cat(outputs)[self.restore].unsqueeze(0)


class MathGPTAttention(nn.Module):
    def __init__(self, config: MathGPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = 1  # plain multi-head attention (no grouped keys/values)
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, past_key_values=None,
                packed_layout: PackedLayout | None = None, **kwargs):
        input_shape = hidden_states.shape[:-1]  # (B, T)
        hidden_shape = (*input_shape, -1, self.head_dim)  # (B, T, H, head_dim)
        query = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)  # (B, H, T, head_dim)
        key = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        if position_embeddings is not None:  # rotary; learned positions were added to the embeddings instead
            cos, sin = position_embeddings
            query, key = apply_rotary_pos_emb(query, key, cos, sin)

        if past_key_values is not None:
            key, value = past_key_values.update(key, value, self.layer_idx)  # (B, H, S, head_dim), S = past + T

        dropout = self.attention_dropout if self.training else 0.0
        if packed_layout is not None:
            attn_output = packed_layout.attention(query, key, value, dropout, self.scaling)
            return self.o_proj(attn_output.reshape(*input_shape, -1)), None

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()  # (B, T, hidden)
        return self.o_proj(attn_output), attn_weights


class MathGPTMLP(nn.Module):
    def __init__(self, config: MathGPTConfig):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.bias)
        self.act_fn = ACT2FN[config.hidden_act]
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.bias)

    def forward(self, x):
        return self.down_proj(self.act_fn(self.up_proj(x)))


class MathGPTDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: MathGPTConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = make_norm(config)
        self.self_attn = MathGPTAttention(config, layer_idx)
        self.post_attention_layernorm = make_norm(config)
        self.mlp = MathGPTMLP(config)
        self.resid_dropout = nn.Dropout(config.resid_dropout)

    def forward(self, hidden_states, attention_mask=None, position_embeddings=None, past_key_values=None, **kwargs):
        attn_output, _ = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            **kwargs,
        )
        hidden_states = hidden_states + self.resid_dropout(attn_output)
        hidden_states = hidden_states + self.resid_dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
        return hidden_states


class MathGPTPreTrainedModel(PreTrainedModel):
    config_class = MathGPTConfig
    config: MathGPTConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MathGPTDecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs = {"hidden_states": MathGPTDecoderLayer, "attentions": MathGPTAttention}

    def _init_weights(self, module):
        super()._init_weights(module)
        # from_pretrained builds the model on the meta device: non-persistent buffers must be recomputed here.
        if isinstance(module, MathGPTRotaryEmbedding):
            init.copy_(module.inv_freq, module.compute_inv_freq(self.config))
        # GPT-2 / nanoGPT: scale the residual output projections by 1/sqrt(2 * n_layer).
        if isinstance(module, (MathGPTAttention, MathGPTMLP)):
            proj = module.o_proj if isinstance(module, MathGPTAttention) else module.down_proj
            std = self.config.initializer_range / (2 * self.config.num_hidden_layers) ** 0.5
            init.normal_(proj.weight, mean=0.0, std=std)  # skips weights already loaded from a checkpoint


class MathGPTModel(MathGPTPreTrainedModel):
    """The backbone: embeddings, blocks and final norm; returns hidden states (no LM head)."""

    def __init__(self, config: MathGPTConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.position_embedding_type == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        if config.position_embedding_type == "rope" or config.abacus_rope_heads:
            self.rotary_emb = MathGPTRotaryEmbedding(config)
        # "nope": no position module at all
        if config.abacus_embeddings:
            self.embed_abacus = nn.Embedding(config.abacus_table_size, config.hidden_size)
        self.embd_dropout = nn.Dropout(config.embd_dropout)
        self.layers = nn.ModuleList([MathGPTDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = make_norm(config)
        self.gradient_checkpointing = False
        self.post_init()

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        abacus_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""
        abacus_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Abacus digit positions (`abacus_embeddings` models): each token's place in its run of digits, 0 for
            non-digits. Computed from `input_ids` when not given; `generate` passes them.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("MathGPTModel: pass exactly one of `input_ids` or `inputs_embeds`.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, hidden)
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        caller_position_ids = position_ids  # packed examples restart here (None: one example per row)
        # A cache created here is empty: build the mask as for a cache-less forward, since create_causal_mask only
        # detects packed sequences (from position_ids) when there is no cache. Otherwise packed training or
        # evaluation batches would silently attend across examples.
        mask_cache = past_key_values
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)

        # A padding-free row (TRL's packing: positions restart at every example) attends per example under sdpa, with
        # no mask at all (see PackedLayout); anything else gets one additive/boolean mask for every layer, with packed
        # sequences read off position_ids.
        packed_layout = None
        if self.config._attn_implementation == "sdpa" and attention_mask is None and mask_cache is None:
            packed_layout = PackedLayout.of(position_ids)  # None unless the caller's positions restart in one row
        if position_ids is None:
            past_seen = past_key_values.get_seq_length() if past_key_values is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen
            position_ids = position_ids.unsqueeze(0)  # (1, T)

        causal_mask = None
        if packed_layout is None:
            causal_mask = create_causal_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                past_key_values=mask_cache,
                position_ids=position_ids,
            )

        hidden_states = inputs_embeds
        position_embeddings = None
        if self.config.position_embedding_type == "learned":
            if int(position_ids.max()) >= self.config.max_position_embeddings:
                raise ValueError(
                    f"MathGPTModel: position {int(position_ids.max())} is beyond max_position_embeddings="
                    f"{self.config.max_position_embeddings} of this learned-position model; shorten the input."
                )
            hidden_states = hidden_states + self.embed_positions(position_ids)
        elif self.config.position_embedding_type == "rope":
            position_embeddings = self.rotary_emb(hidden_states, position_ids)
        if self.config.uses_abacus_index:
            abacus_ids = self.digit_positions(input_ids, abacus_ids, caller_position_ids, past_key_values)
        if self.config.abacus_embeddings:
            hidden_states = hidden_states + self.embed_abacus(abacus_ids)
        if self.config.abacus_rope_heads:
            position_embeddings = self.coupled_rotary(hidden_states, abacus_ids, position_embeddings)
        hidden_states = self.embd_dropout(hidden_states)

        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=position_embeddings,
                past_key_values=past_key_values,
                position_ids=position_ids,
                packed_layout=packed_layout,
                **kwargs,
            )
        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states, past_key_values=past_key_values if use_cache else None
        )

    def coupled_rotary(self, hidden_states, abacus_ids, sequence_rotary) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head cos/sin (B, H, T, head_dim): the first `abacus_rope_heads` heads rotate by Abacus index, the rest
        by sequence position (rope) or not at all (learned, nope: cos 1, sin 0)."""
        batch, length = hidden_states.shape[:2]
        abacus_cos, abacus_sin = self.rotary_emb(hidden_states, abacus_ids.expand(batch, length))
        if sequence_rotary is None:
            sequence_rotary = (torch.ones_like(abacus_cos), torch.zeros_like(abacus_sin))
        heads = self.config.abacus_rope_heads
        rest = self.config.num_attention_heads - heads
        return tuple(torch.cat([by_digit.unsqueeze(1).expand(-1, heads, -1, -1),
                                by_sequence.expand(batch, length, -1).unsqueeze(1).expand(-1, rest, -1, -1)], dim=1)
                     for by_digit, by_sequence in zip((abacus_cos, abacus_sin), sequence_rotary))

    def digit_positions(self, input_ids, abacus_ids, position_ids, past_key_values) -> torch.Tensor:
        """The Abacus index of every input token (see `abacus_index`), with the training offset, checked in range.

        A KV cache remembers the index its last token had (`abacus_last_index`), so a forward that feeds the next
        tokens without `abacus_ids` continues a number begun in earlier steps.
        """
        if abacus_ids is None:
            if input_ids is None:
                raise ValueError("MathGPTModel: Abacus embeddings find digits in `input_ids`; with `inputs_embeds` "
                                 "pass `abacus_ids` too.")
            past_seen = past_key_values.get_seq_length() if past_key_values is not None else 0
            carry = getattr(past_key_values, "abacus_last_index", None) if past_seen else None
            if past_seen and carry is None:
                raise ValueError("MathGPTModel: this KV cache was not filled by an Abacus model's forward, so the "
                                 "digit run its last token ends is unknown; pass `abacus_ids`.")
            prompt_end = self.config.abacus_prompt_end_token_ids
            if past_seen and prompt_end:
                raise ValueError("MathGPTModel: with `abacus_prompt_end_token_ids` a step after a KV cache cannot tell "
                                 "prompt digits from generated ones on its own; pass `abacus_ids` (`generate` "
                                 "does).")
            abacus_ids = abacus_index(input_ids, self.config.digit_token_ids, position_ids, carry, prompt_end)
            if self.training and not past_seen and self.config.abacus_max_offset:
                abacus_ids = add_abacus_offsets(abacus_ids, position_ids, self.config.abacus_max_offset)
        if past_key_values is not None:
            past_key_values.abacus_last_index = abacus_ids[:, -1]  # (B,)
        if int(abacus_ids.max()) >= self.config.abacus_table_size:
            raise ValueError(
                f"MathGPTModel: Abacus digit index {int(abacus_ids.max())} is beyond the table "
                f"(max_position_embeddings + abacus_max_offset + 1 = {self.config.abacus_table_size} rows); "
                "a number this long does not fit this model."
            )
        return abacus_ids


class MathGPTForCausalLM(MathGPTPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: MathGPTConfig):
        super().__init__(config)
        self.model = MathGPTModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        abacus_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            abacus_ids=abacus_ids,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        # Only compute logits for the positions asked for (generation needs the last one only).
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])  # (B, T_kept, vocab)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        model_inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        step_ids = model_inputs.get("input_ids")
        if self.config.uses_abacus_index and step_ids is not None:
            # Abacus indices of this step's tokens, read off the whole sequence so far: a number the prompt or the
            # previous steps began goes on counting. The ids are the record generate keeps right through beam
            # reordering, cache cropping and copying, so nothing else needs to.
            index = abacus_index(input_ids, self.config.digit_token_ids,
                                 prompt_end_token_ids=self.config.abacus_prompt_end_token_ids)
            index = index[:, -step_ids.shape[1]:]  # (B, T_step)
            model_inputs["abacus_ids"] = index.to(step_ids.device)
        return model_inputs


__all__ = ["MathGPTForCausalLM", "MathGPTModel", "MathGPTPreTrainedModel"]

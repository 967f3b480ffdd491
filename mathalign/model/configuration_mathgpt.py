"""MathGPT configuration.

A transformers 5 config: typed dataclass fields with their defaults, checked by huggingface_hub's `@strict` (types on
every assignment, the `validate_*` methods after `__init__` and again by `save_pretrained`).

Self-contained on purpose: `save_pretrained` copies this file next to the weights so that a process without
mathalign installed can load a checkpoint with `trust_remote_code=True`. Import nothing from mathalign here.
"""

import dataclasses
from functools import wraps
from typing import Literal

from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import StrictDataclassError
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

POSITION_EMBEDDING_TYPES = ("rope", "learned", "nope")
NORM_TYPES = ("layernorm", "rmsnorm")


class MathGPTConfigError(StrictDataclassError, ValueError):
    """A value a MathGPT cannot be built with; the message names the key.

    A `ValueError`, as before configs were dataclasses (command lines print those as one line), and a
    `StrictDataclassError`, as transformers 5 configs raise.
    """


def _errors_name_the_key(cls):
    """Let the construction of `cls` raise one `MathGPTConfigError` saying which key is wrong, and why.

    `@strict` wraps what a field check or a `validate_*` method raises into its own error types, which are not
    `ValueError`s; the wrapped error's cause is the message written for that key.
    """
    strict_init = cls.__init__

    @wraps(strict_init)
    def __init__(self, *args, **kwargs):
        try:
            strict_init(self, *args, **kwargs)
        except StrictDataclassError as err:
            raise MathGPTConfigError(f"{cls.__name__}: {err.__cause__ or err}") from err

    cls.__init__ = __init__
    return cls


@_errors_name_the_key
@strict
class MathGPTConfig(PreTrainedConfig):
    r"""
    Configuration of a [`MathGPTForCausalLM`]: a small pre-norm GPT in the style of nanoGPT.

    Defaults give a ~0.45M-parameter model that learns two-digit arithmetic in minutes on a laptop CPU. Keyword
    arguments only; a bad value raises `MathGPTConfigError` (a `ValueError`) naming the key.

    ```python
    >>> from mathalign import MathGPTConfig, MathGPTForCausalLM
    >>> config = MathGPTConfig(vocab_size=512, hidden_size=128, num_hidden_layers=2, num_attention_heads=4)
    >>> model = MathGPTForCausalLM(config)
    ```

    Positions come in two independent parts, so a recipe reads as "ordinary positions: X; digit positions: Y":
    - `position_embedding_type` places every token in the sequence: `"rope"` (rotary, the default), `"learned"`
      (a GPT-2/nanoGPT absolute table, so nanoGPT checkpoints import exactly) or `"nope"` (no position signal at
      all: causal attention alone tells tokens apart; Kazemnejad et al. 2023 found it generalises to longer
      inputs than either on arithmetic tasks).
    - `abacus_embeddings=True` adds Abacus digit positions (McLeish et al. 2024, "Transformers Can Do Arithmetic
      with the Right Embeddings"), on top of any of the three: a learned vector indexed by each token's place in
      its run of consecutive digit tokens (1 for a number's first digit, 2 for its second, ...; 0 for any other
      token), added to the token embedding. It needs `digit_token_ids`; `mathalign.tokenizer.digit_token_ids`
      computes them, and a recipe's `mathgpt_config` gets them filled in. In training mode each sequence adds one
      random offset in [0, `abacus_max_offset`] to its nonzero indices, so the rows for numbers longer than any
      seen in training are trained too. `abacus_prompt_end_token_ids` (the tokens holding `?`: a recipe's
      `mathgpt_config` may give the text `"?"`) makes the prompt's numbers count from their units digit instead,
      lining them up by place value with an answer written units first.
    - `abacus_rope_heads=N` gives the Abacus indices to the first N heads as their rotary positions instead
      (position coupling, Cho et al. 2024): a digit meets the digits of the place above its own at the same rotary
      distance whatever the numbers' lengths, with no table row to train per place. The other heads keep
      `position_embedding_type`. It works with or without `abacus_embeddings` and needs `digit_token_ids` too.

    ```yaml
    mathgpt_config: {position_embedding_type: nope, abacus_embeddings: true}  # the paper's Abacus + NoPE
    ```
    """

    model_type = "mathgpt"
    keys_to_ignore_at_inference = ["past_key_values"]

    vocab_size: int = 512  # a BPE vocab over arithmetic text; digits stay single tokens
    hidden_size: int = 128  # residual stream width (nanoGPT's n_embd)
    num_hidden_layers: int = 2  # transformer blocks (n_layer)
    num_attention_heads: int = 4  # heads per block (n_head); must divide hidden_size
    intermediate_size: int | None = None  # MLP width; None -> 4 * hidden_size as in GPT-2
    hidden_act: str = "gelu"  # a key of transformers' ACT2FN; nanoGPT uses exact GELU
    max_position_embeddings: int = 256  # longest sequence; also the size of the learned position table
    position_embedding_type: Literal[POSITION_EMBEDDING_TYPES] = "rope"  # rotary, GPT-2/nanoGPT absolute, or none
    rope_theta: float | int = 10000.0  # rotary base frequency
    abacus_embeddings: bool = False  # add Abacus digit positions (index within a run of digits) to the embeddings
    # Largest random offset added to digit indices in training. Index i is trained by every number whose run, after
    # its offset, covers i, so a model trained on numbers of up to L digits has trained rows 1..L + 32. 32 reaches
    # past what fits a 128-token context (an a+b=c problem with 35-digit operands is ~120 tokens) while each row
    # still sees about L/33 of the numbers; the paper used 100 for a 20-digit training set and 100-digit tests.
    abacus_max_offset: int = 32
    digit_token_ids: list[int] | None = None  # the tokens that are digits (" 1" pieces too); abacus needs them
    # Tokens that end a prompt (`?`): digits before the first one count from their units, so operands line up by
    # place value with an answer written units first. None: every number counts from its first digit (the paper's
    # layout, which reverses the operands in the text instead).
    abacus_prompt_end_token_ids: list[int] | None = None
    # Heads whose rotary positions are the Abacus indices instead of sequence positions (position coupling, Cho et
    # al. 2024): a query meets the digits one place above its own at the same rotary distance, whatever the length.
    abacus_rope_heads: int = 0
    norm_type: Literal[NORM_TYPES] = "layernorm"  # LayerNorm as nanoGPT, or RMSNorm
    layer_norm_eps: float | int = 1e-5  # epsilon of either norm
    bias: bool = False  # biases in Linear and LayerNorm layers (nanoGPT's `bias`)
    embd_dropout: float | int = 0.0  # dropout after the embeddings
    attention_dropout: float | int = 0.0  # dropout on attention probabilities
    resid_dropout: float | int = 0.0  # dropout on the attention and MLP outputs
    initializer_range: float | int = 0.02  # std of the normal initialisation
    use_cache: bool = True  # return past_key_values (generation)
    tie_word_embeddings: bool = True  # lm_head shares the token embedding (nanoGPT does too)
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    # Always a dict on the *instance* (see __post_init__): TRL reloads reference models by path and reads
    # config.auto_map; a class-level dict would be shared by every config and break `register_for_auto_class`.
    auto_map: dict | None = None

    # Written to config.json only when abacus_embeddings is on: a checkpoint without them keeps the config.json that
    # older releases (and their shipped code) read, key for key.
    _ABACUS_KEYS = ("abacus_embeddings", "abacus_max_offset", "digit_token_ids", "abacus_prompt_end_token_ids",
                    "abacus_rope_heads")

    def __post_init__(self, **kwargs):
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        self.auto_map = dict(self.auto_map or {})
        super().__post_init__(**kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_key_value_heads(self) -> int:
        # Plain multi-head attention; the property lets DynamicCache and generation utilities size things.
        return self.num_attention_heads

    @property
    def uses_abacus_index(self) -> bool:
        """Whether the model reads Abacus digit positions: as a learned table, as rotary positions, or both."""
        return self.abacus_embeddings or self.abacus_rope_heads > 0

    @property
    def abacus_table_size(self) -> int:
        """Rows of the Abacus table: index 0 (not a digit), then runs as long as a whole sequence, plus the offset."""
        return self.max_position_embeddings + self.abacus_max_offset + 1

    def to_diff_dict(self) -> dict:
        diff = super().to_diff_dict()
        if not self.uses_abacus_index:
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for key in self._ABACUS_KEYS:
                if key in diff and diff[key] == defaults[key]:
                    del diff[key]
        return diff

    def validate_architecture(self):
        """Part of `@strict` validation: sizes a model can be built with."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}.")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads}); e.g. hidden_size={self.num_attention_heads * 32}."
            )
        if (self.position_embedding_type == "rope" or self.abacus_rope_heads) and self.head_dim % 2:
            raise ValueError(
                f"rotary embeddings need an even head_dim (`hidden_size` / `num_attention_heads`), got "
                f"{self.hidden_size} / {self.num_attention_heads} = {self.head_dim}."
            )
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"`hidden_act` must be one of {sorted(ACT2FN)}, got {self.hidden_act!r}.")
        super().validate_architecture()  # after the checks above: it reads head_dim

    def validate_abacus(self):
        """Part of `@strict` validation: the digit ids Abacus embeddings index by, and the training offset."""
        if self.abacus_max_offset < 0:
            raise ValueError(f"`abacus_max_offset` must be >= 0, got {self.abacus_max_offset!r}.")
        if not 0 <= self.abacus_rope_heads <= self.num_attention_heads:
            raise ValueError(f"`abacus_rope_heads` must be in [0, num_attention_heads={self.num_attention_heads}], "
                             f"got {self.abacus_rope_heads!r}.")
        if self.uses_abacus_index and not self.digit_token_ids:
            key = "abacus_embeddings" if self.abacus_embeddings else "abacus_rope_heads"
            raise ValueError(
                f"`{key}` needs `digit_token_ids`, the ids of the tokenizer's digit tokens: pass "
                "`digit_token_ids=mathalign.tokenizer.digit_token_ids(tokenizer)` (a recipe's `mathgpt_config` "
                "fills them in from its tokenizer)."
            )
        for key in ("digit_token_ids", "abacus_prompt_end_token_ids"):
            outside = [i for i in getattr(self, key) or () if not 0 <= i < self.vocab_size]
            if outside:
                raise ValueError(f"`{key}` must be token ids below vocab_size={self.vocab_size}, got {outside}.")
        if self.abacus_prompt_end_token_ids and not self.uses_abacus_index:
            raise ValueError("`abacus_prompt_end_token_ids` changes how Abacus positions count: it needs "
                             "`abacus_embeddings=True` or `abacus_rope_heads`.")

    def validate_dropout(self):
        """Part of `@strict` validation: dropout rates are probabilities below one."""
        for name in ("embd_dropout", "attention_dropout", "resid_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)!r}.")

    def validate_scales(self):
        """Part of `@strict` validation: the norm epsilon, rotary base and init std."""
        for name in ("layer_norm_eps", "rope_theta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}.")
        if not self.initializer_range >= 0:
            raise ValueError(f"`initializer_range` must be >= 0, got {self.initializer_range!r}.")


__all__ = ["MathGPTConfig", "MathGPTConfigError"]

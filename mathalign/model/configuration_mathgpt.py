"""MathGPT configuration.

Self-contained on purpose: `save_pretrained` copies this file next to the weights so that a process without
mathalign installed can load a checkpoint with `trust_remote_code=True`. Import nothing from mathalign here.
"""

from transformers import PretrainedConfig

POSITION_EMBEDDING_TYPES = ("rope", "learned")
NORM_TYPES = ("layernorm", "rmsnorm")


class MathGPTConfig(PretrainedConfig):
    r"""
    Configuration of a [`MathGPTForCausalLM`]: a small pre-norm GPT in the style of nanoGPT.

    Defaults give a ~0.45M-parameter model that learns two-digit arithmetic in minutes on a laptop CPU.

    ```python
    >>> from mathalign import MathGPTConfig, MathGPTForCausalLM
    >>> config = MathGPTConfig(vocab_size=512, hidden_size=128, num_hidden_layers=2, num_attention_heads=4)
    >>> model = MathGPTForCausalLM(config)
    ```
    """

    model_type = "mathgpt"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 512,  # a BPE vocab over arithmetic text; digits stay single tokens
        hidden_size: int = 128,  # residual stream width (nanoGPT's n_embd)
        num_hidden_layers: int = 2,  # transformer blocks (n_layer)
        num_attention_heads: int = 4,  # heads per block (n_head); must divide hidden_size
        intermediate_size: int | None = None,  # MLP width; None -> 4 * hidden_size as in GPT-2
        hidden_act: str = "gelu",  # nanoGPT uses exact GELU
        max_position_embeddings: int = 256,  # longest sequence; also the size of the learned position table
        position_embedding_type: str = "rope",  # "rope" (rotary, default) or "learned" (GPT-2/nanoGPT absolute)
        rope_theta: float = 10000.0,  # rotary base frequency
        norm_type: str = "layernorm",  # "layernorm" (nanoGPT) or "rmsnorm"
        layer_norm_eps: float = 1e-5,
        bias: bool = False,  # biases in Linear and LayerNorm layers (nanoGPT's `bias`)
        embd_dropout: float = 0.0,  # dropout after the embeddings
        attention_dropout: float = 0.0,  # dropout on attention probabilities
        resid_dropout: float = 0.0,  # dropout on the attention and MLP outputs
        initializer_range: float = 0.02,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,  # lm_head shares the token embedding (nanoGPT does too)
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        auto_map: dict | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size if intermediate_size is not None else 4 * hidden_size
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.position_embedding_type = position_embedding_type
        self.rope_theta = rope_theta
        self.norm_type = norm_type
        self.layer_norm_eps = layer_norm_eps
        self.bias = bias
        self.embd_dropout = embd_dropout
        self.attention_dropout = attention_dropout
        self.resid_dropout = resid_dropout
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        # An *instance* attribute: TRL reloads reference models by path and reads config.auto_map; a class
        # attribute would break `register_for_auto_class`.
        self.auto_map = dict(auto_map or {})
        self._validate_mathgpt()
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_key_value_heads(self) -> int:
        # Plain multi-head attention; the property lets DynamicCache and generation utilities size things.
        return self.num_attention_heads

    def _validate_mathgpt(self):
        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MathGPTConfig: `{name}` must be a positive integer, got {value!r}.")

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings"):
            positive_int(name)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"MathGPTConfig: `hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads}); e.g. hidden_size={self.num_attention_heads * 32}."
            )
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"MathGPTConfig: `position_embedding_type` must be one of {POSITION_EMBEDDING_TYPES}, "
                f"got {self.position_embedding_type!r}."
            )
        if self.position_embedding_type == "rope" and self.head_dim % 2:
            raise ValueError(f"MathGPTConfig: rotary embeddings need an even head_dim, got {self.head_dim}.")
        if self.norm_type not in NORM_TYPES:
            raise ValueError(f"MathGPTConfig: `norm_type` must be one of {NORM_TYPES}, got {self.norm_type!r}.")
        for name in ("embd_dropout", "attention_dropout", "resid_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"MathGPTConfig: `{name}` must be in [0, 1), got {value!r}.")


__all__ = ["MathGPTConfig"]

"""MathGPT: configuration and modeling (self-contained files, shipped with checkpoints as remote code)."""

from .configuration_mathgpt import MathGPTConfig
from .modeling_mathgpt import MathGPTForCausalLM, MathGPTModel, MathGPTPreTrainedModel

__all__ = ["MathGPTConfig", "MathGPTForCausalLM", "MathGPTModel", "MathGPTPreTrainedModel"]

"""mathalign: measure SFT, DPO, GRPO and LoRA in minutes on a CPU, with the real Hugging Face stack.

Importing mathalign registers MathGPT with the transformers Auto classes, so `AutoConfig`,
`AutoModelForCausalLM` and `AutoTokenizer` load MathGPT checkpoints in this process; saved checkpoints also carry
the modeling code (`auto_map`), so other processes load them with `trust_remote_code=True`.
"""

import logging

# bitsandbytes logs at import, on every CPU machine, that an optional kernel package is missing: noise, not news.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .model import MathGPTConfig, MathGPTForCausalLM, MathGPTModel, MathGPTPreTrainedModel
from .tokenizer import SPECIAL_TOKENS, train_tokenizer, wrap_tokenizer

__version__ = "0.1.0"

AutoConfig.register(MathGPTConfig.model_type, MathGPTConfig, exist_ok=True)
AutoModel.register(MathGPTConfig, MathGPTModel, exist_ok=True)
AutoModelForCausalLM.register(MathGPTConfig, MathGPTForCausalLM, exist_ok=True)
# save_pretrained copies configuration_mathgpt.py / modeling_mathgpt.py next to the weights and writes auto_map.
MathGPTConfig.register_for_auto_class()
MathGPTModel.register_for_auto_class("AutoModel")
MathGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "MathGPTConfig",
    "MathGPTForCausalLM",
    "MathGPTModel",
    "MathGPTPreTrainedModel",
    "SPECIAL_TOKENS",
    "__version__",
    "train_tokenizer",
    "wrap_tokenizer",
]

"""Merge a LoRA adapter into its base model, so the result loads anywhere without PEFT."""

from pathlib import Path


def merge_adapter(adapter_dir: str, out_dir: str) -> Path:
    """Load `adapter_dir` with its base, `merge_and_unload()`, save model + tokenizer to `out_dir`.

    The merged model gives the same logits as base + adapter (tested), and is a plain checkpoint: for MathGPT it also
    carries the remote code, like any checkpoint mathalign saves.
    """
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir} has no adapter_config.json: it is not a LoRA adapter directory.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} exists and is not empty; choose a new output directory.")
    import json

    base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_dir}/adapter_config.json names no base model (it was trained on a model that "
                         "was never saved); set base_model_name_or_path there to the base checkpoint.")
    model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir, dtype="auto")
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir)
    tokenizer_source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else \
        model.peft_config["default"].base_model_name_or_path
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(out_dir)
    recipe = adapter_dir / "recipe.yaml"
    if recipe.is_file():  # the recipe the merged weights were trained with: its data says what the model knows
        (out_dir / "recipe.yaml").write_text(recipe.read_text())
    return out_dir

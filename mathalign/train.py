"""One runner for every stage: parse the recipe, build model, data and PEFT, run the TRL trainer, save.

    python -m mathalign.train recipes/sft.yaml --max_steps 5
    accelerate launch -m mathalign.train recipes/dpo.yaml
    accelerate launch --multi_gpu --num_processes 2 -m mathalign.train --config recipes/dpo.yaml

(`accelerate launch recipes/dpo.yaml` cannot work: accelerate runs files with Python. `mathalign train RECIPE`
launches through accelerate for you.)

Stages differ only in the trainer class and the data they need; the tail (resume, train, save, metrics) is shared.
"""

import json
import logging
import os
import sys
from pathlib import Path

import yaml

from .recipe import RecipeError, parse_recipe, plain_recipe

logger = logging.getLogger("mathalign.train")

# The data builder each stage reads when the recipe names none, and the columns the stage's trainer needs.
DEFAULT_BUILDER = {"pretrain": "pretrain", "sft": "sft", "dpo": "preferences", "grpo": "rl"}
REQUIRED_COLUMNS = {
    "pretrain": {"text"},
    "sft": {"prompt", "completion"},
    "dpo": {"prompt", "chosen", "rejected"},
    "grpo": {"prompt"},
}


# --- data ----------------------------------------------------------------------------------------------------------

def load_data(script_args, model_name_or_path: str | None = None):
    """A DatasetDict from a builder name, a saved directory, a data file or a Hub id.

    On-policy preference data (`negatives: [sampled]`) samples the stage's own model unless `negatives_model` is set.
    """
    from datasets import DatasetDict, load_dataset, load_from_disk

    name = script_args.dataset_name or DEFAULT_BUILDER[script_args.stage]
    options = dict(script_args.data_options or {})
    if name == "preferences" and "sampled" in str(options.get("negatives", "")) and not options.get("negatives_model"):
        if model_name_or_path is None:
            raise RecipeError("`sampled` negatives need a model to sample: set model_name_or_path (or "
                              "data_options.negatives_model).")
        options["negatives_model"] = model_name_or_path
    path = Path(name)
    if path.is_dir():
        data = load_from_disk(str(path))
    elif path.suffix in (".json", ".jsonl", ".parquet", ".csv"):
        if not path.is_file():
            raise RecipeError(f"dataset file not found: {path}")
        kind = {".jsonl": "json"}.get(path.suffix, path.suffix[1:])
        data = load_dataset(kind, data_files=str(path))
    else:
        import data_builders

        if name in data_builders.BUILDERS:
            data = data_builders.get_builder(name).build(**options)
        elif _looks_like_hub_id(name):
            data = load_dataset(name, script_args.dataset_config)  # a Hub dataset id
        else:
            raise RecipeError(
                f"dataset {name!r} is neither a data builder ({', '.join(sorted(data_builders.BUILDERS))}), "
                "an existing directory or data file, nor a Hub id (USER/NAME)."
            )
    if not isinstance(data, DatasetDict):
        data = DatasetDict({script_args.dataset_train_split: data})
    if script_args.dataset_train_split not in data:
        raise RecipeError(f"dataset {name!r} has no split {script_args.dataset_train_split!r} "
                          f"(it has {', '.join(data)}); set `dataset_train_split`.")
    missing = REQUIRED_COLUMNS[script_args.stage] - set(data[script_args.dataset_train_split].column_names)
    if missing:
        raise RecipeError(f"stage {script_args.stage!r} needs the columns {sorted(missing)}, which dataset {name!r} "
                          f"lacks (it has {data[script_args.dataset_train_split].column_names}).")
    return data


def train_and_eval_splits(data, script_args):
    train = data[script_args.dataset_train_split]
    if script_args.stage == "pretrain":
        # Plain language modelling: with prompt/completion columns present SFTTrainer would mask the prompts.
        data = data.select_columns(["text"])
        train = data[script_args.dataset_train_split]
    if script_args.max_train_samples is not None:
        train = train.select(range(min(script_args.max_train_samples, len(train))))
    split = script_args.dataset_test_split
    evaluation = data[split] if split and split in data else None
    return train, evaluation


# --- tokenizer and model ---------------------------------------------------------------------------------------------

def load_or_train_tokenizer(script_args, model_args, training_args, train_dataset):
    from transformers import AutoTokenizer

    from .tokenizer import train_tokenizer

    source = script_args.tokenizer_name_or_path or model_args.model_name_or_path
    if source:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=training_args.trust_remote_code)
        if tokenizer.pad_token is None:  # most base LMs ship without one; never reuse eos (see tokenizer.py)
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
        return tokenizer
    columns = [c for c in ("text", "prompt", "completion", "chosen", "rejected") if c in train_dataset.column_names]
    logger.info("Training a %d-token tokenizer on the %s column(s) of the training set", 
                script_args.tokenizer_vocab_size, "/".join(columns))

    def texts():
        for column in columns:
            yield from (t for t in train_dataset[column] if isinstance(t, str))

    return train_tokenizer(texts(), vocab_size=script_args.tokenizer_vocab_size,
                           merge_number_spaces=script_args.tokenizer_merge_number_spaces)


def build_model(script_args, model_args, training_args, tokenizer):
    """From scratch (MathGPT from `mathgpt_config`) or from a checkpoint path / Hub id, quantised if asked."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import get_quantization_config

    from .model import MathGPTConfig, MathGPTForCausalLM

    if not model_args.model_name_or_path:
        options = dict(script_args.mathgpt_config or {})
        options.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        if model_args.load_in_4bit or model_args.load_in_8bit:
            raise RecipeError("quantisation (load_in_4bit/8bit) needs a trained base model: set model_name_or_path.")
        model = MathGPTForCausalLM(MathGPTConfig(**options))
        logger.info("New MathGPT: %.2fM parameters", model.num_parameters() / 1e6)
        return model

    path = model_args.model_name_or_path
    quantization_config = get_quantization_config(model_args)
    dtype = model_args.dtype
    if dtype in (None, "auto"):
        # fp32 on CPU (bf16 is ~100x slower there); the checkpoint's own dtype on GPUs.
        dtype = torch.float32 if training_args.use_cpu else "auto"
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if quantization_config is not None and quantization_config.load_in_4bit:
        quantization_config.bnb_4bit_compute_dtype = torch.float32 if training_args.use_cpu else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(
        path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=dtype,
        quantization_config=quantization_config,
        # Quantised weights must sit on this process's device (one GPU per process under DDP).
        device_map={"": training_args.device} if quantization_config is not None else None,
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))  # e.g. a <pad> token was added above
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def _looks_like_hub_id(path: str) -> bool:
    return path.count("/") == 1 and not path.startswith((".", "/"))


def build_ref_model(script_args, model_args, training_args):
    """An explicit frozen reference for DPO/GRPO without LoRA (under LoRA TRL disables the adapter instead)."""
    from transformers import AutoModelForCausalLM

    if model_args.use_peft:
        return None
    path = script_args.ref_model_name_or_path or model_args.model_name_or_path
    if not path:
        return None  # a model trained from scratch here: TRL copies it
    return AutoModelForCausalLM.from_pretrained(path, trust_remote_code=training_args.trust_remote_code,
                                                dtype="float32" if training_args.use_cpu else "auto")


# --- the run -------------------------------------------------------------------------------------------------------

def check_model_sources(script_args, model_args):
    """Every model or tokenizer the recipe names must be a directory here or look like a Hub id."""
    for key, source in (("model_name_or_path", model_args.model_name_or_path),
                        ("tokenizer_name_or_path", script_args.tokenizer_name_or_path),
                        ("ref_model_name_or_path", script_args.ref_model_name_or_path)):
        if source and not Path(source).exists() and not _looks_like_hub_id(source):
            raise RecipeError(f"{key} {source!r} is neither an existing directory nor a Hub id (USER/NAME).")


def check_rewards(training_args, script_args, stage: str):
    """GRPO's reward functions by name, with one weight each (checked before any data or model is built)."""
    if stage != "grpo":
        return None
    from .rewards import resolve_rewards

    try:
        reward_funcs, weights = resolve_rewards(script_args.reward_funcs, training_args.reward_weights)
    except ValueError as err:
        raise RecipeError(str(err)) from None
    training_args.reward_weights = weights
    return reward_funcs


def make_stop_callback(script_args, tokenizer, evaluation):
    """The `stop_at_accuracy` callback of a recipe that sets it, else None."""
    if script_args.stop_at_accuracy is None:
        return None
    from .accuracy_stop import StopAtAccuracyCallback

    try:
        return StopAtAccuracyCallback(tokenizer, evaluation, script_args.stop_at_accuracy,
                                      every=script_args.stop_at_accuracy_steps)
    except ValueError as err:
        raise RecipeError(str(err)) from None


def make_trainer(stage, model, ref_model, tokenizer, train, evaluation, training_args, peft_config, reward_funcs):
    from trl import DPOTrainer, GRPOTrainer

    from .sft_trainer import MathAlignSFTTrainer

    common = dict(model=model, args=training_args, train_dataset=train, eval_dataset=evaluation,
                  processing_class=tokenizer, peft_config=peft_config)
    if stage in ("pretrain", "sft"):
        return MathAlignSFTTrainer(**common)  # TRL's SFTTrainer; the model's own loss on CPUs (faster there)
    if stage == "dpo":
        return DPOTrainer(ref_model=ref_model, **common)
    return GRPOTrainer(reward_funcs=reward_funcs, **common)


def last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None


def main(script_args, model_args, training_args, recipe: dict | None = None):
    """Train one stage as the parsed recipe says; returns the trainer's metrics."""
    from transformers import set_seed
    from trl import get_peft_config

    stage = script_args.stage
    check_model_sources(script_args, model_args)
    reward_funcs = check_rewards(training_args, script_args, stage)
    if model_args.model_name_or_path is None and stage in ("dpo", "grpo"):
        logger.warning("%s from a randomly initialised model: set model_name_or_path to an SFT checkpoint.", stage)

    hub_token = check_push_target(training_args)
    apply_logging_defaults(training_args, recipe)
    data = load_data(script_args, model_args.model_name_or_path)
    train, evaluation = train_and_eval_splits(data, script_args)
    if evaluation is None and training_args.eval_strategy != "no":
        training_args.eval_strategy = "no"
    tokenizer = load_or_train_tokenizer(script_args, model_args, training_args, train)
    stop_callback = make_stop_callback(script_args, tokenizer, evaluation)  # bad settings fail before training
    set_seed(training_args.seed)  # the recipe's seed decides a new model's initial weights too
    model = build_model(script_args, model_args, training_args, tokenizer)
    apply_ddp_defaults(training_args, model)
    ref_model = build_ref_model(script_args, model_args, training_args) if stage in ("dpo", "grpo") else None
    if stage == "grpo" and training_args.beta == 0:
        ref_model = None  # no KL term: TRL needs no reference
    peft_config = get_peft_config(model_args)

    trainer = make_trainer(stage, model, ref_model, tokenizer, train, evaluation, training_args, peft_config,
                           reward_funcs)
    if script_args.log_attention_entropy:
        from .attention import AttentionEntropyCallback

        AttentionEntropyCallback(tokenizer, prompts=_probe_prompts(train)).attach_to(trainer)  # before logging callbacks

    if stop_callback is not None:
        stop_callback.attach_to(trainer)
    resume = training_args.resume_from_checkpoint or last_checkpoint(training_args.output_dir)
    if resume:
        logger.info("Resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    return save_run(trainer, result, recipe or {}, training_args, hub_token)


def apply_logging_defaults(training_args, recipe: dict | None = None) -> None:
    """Name the project and the run for the logging integrations (Trackio...) unless the recipe names them.

    TrainingArguments would log to project "huggingface" under a random run name; mathalign's runs go to project
    "mathalign" under their output directory's name, so a pipeline's stages show up as pretrain, sft, dpo, grpo.
    A key counts as set when the recipe or the command line names it (`recipe` as `parse_recipe` returns it); without
    that record, when it still holds TrainingArguments' default.
    """
    named = set(recipe) if recipe is not None else {
        key for key, default in (("project", "huggingface"), ("run_name", None))
        if getattr(training_args, key) != default}
    if "project" not in named:
        training_args.project = "mathalign"
    if "run_name" not in named:
        training_args.run_name = Path(training_args.output_dir).resolve().name


def apply_ddp_defaults(training_args, model) -> None:
    """Under DDP, a MathGPT skips the search for unused parameters unless the recipe asks for it.

    transformers turns `find_unused_parameters` on for every model trained without activation checkpointing, which
    walks the autograd graph after each backward (DDP warns that it found nothing and that the walk costs time).
    Every MathGPT parameter (LoRA adapters included) takes part in every forward, so the walk is skipped. On this
    2-core CPU the steps per second did not measurably change (two processes, 400 steps: within the host's +-10%);
    the warning goes. Other models keep transformers' choice.
    """
    from peft import PeftModel

    from .model import MathGPTPreTrainedModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    if training_args.ddp_find_unused_parameters is None and isinstance(base, MathGPTPreTrainedModel):
        training_args.ddp_find_unused_parameters = False


def check_push_target(training_args):
    """With `push_to_hub: true`, fail on a bad `hub_model_id` or a missing token now, not after training.

    mathalign pushes once at the end with `mathalign.hub.push_model` (card with usage, recipe and remote code)
    rather than the Trainer's background pushes of every checkpoint, so the Trainer's own pushing is turned off.
    """
    if not training_args.push_to_hub:
        return None
    from .hub import check_can_push

    if not training_args.hub_model_id:
        raise RecipeError("push_to_hub needs hub_model_id: USER/NAME, the repository to publish to.")
    token = check_can_push(training_args.hub_model_id, training_args.hub_token)
    training_args.push_to_hub = False
    return token


def _probe_prompts(train, n: int = 8) -> list[str]:
    column = "prompt" if "prompt" in train.column_names else "text"
    return [str(x) for x in train[column][:n]]


def save_run(trainer, result, recipe: dict, training_args, hub_token=None) -> dict:
    """The shared tail: final model + tokenizer, metrics, trainer state and the recipe that made them."""
    metrics = dict(result.metrics)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    trainer.model.config.use_cache = True  # TRL turns the KV cache off for training; generation wants it back
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        out = Path(training_args.output_dir)
        (out / "recipe.yaml").write_text(yaml.safe_dump(plain_recipe(recipe), sort_keys=False))
        if hub_token is not None:
            from .hub import push_model

            push_model(out, training_args.hub_model_id, private=bool(training_args.hub_private_repo), token=hub_token)
    return metrics


def run(argv: list[str] | None = None) -> dict:
    """Parse `RECIPE [--key value ...]` and train."""
    script_args, model_args, training_args, recipe = parse_recipe(argv)
    return main(script_args, model_args, training_args, recipe)


def cli(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.WARNING, datefmt="%H:%M:%S")
    logger.setLevel(logging.INFO)
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        run(argv)
    except (RecipeError, FileNotFoundError) as err:
        print(f"mathalign.train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())

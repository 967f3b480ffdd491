"""One runner for every stage: parse the recipe, build model, data and PEFT, run the TRL trainer, save.

    python -m mathalign.train recipes/sft.yaml --max_steps 5
    accelerate launch recipes/dpo.yaml                          # the recipe's first line hands it to this module
    accelerate launch --multi_gpu --num_processes 2 recipes/dpo.yaml
    accelerate launch -m mathalign.train recipes/dpo.yaml

Stages differ only in the trainer class and the data they need; the tail (resume, train, save, metrics) is shared.

A run directory is safe to re-run: a finished run (its `train_results.json`, written last and atomically) is left
as it is; an interrupted one resumes from its newest complete checkpoint (one whose `trainer_state.json`, which the
Trainer writes last, reads back), and a checkpoint cut short by a kill is removed first.
"""

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import yaml

from .errors import RecipeError, UserError
from .recipe import parse_recipe, plain_recipe, prompt_rewrites
from .sources import check_source, from_pretrained, is_local, load_local_dataset

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

    A builder that uses the stage's model (on-policy preference data samples it for `negatives: [sampled]`) says so
    with `options_for_model(options, model_name_or_path)`.
    """
    from datasets import DatasetDict, load_dataset

    name = script_args.dataset_name or DEFAULT_BUILDER[script_args.stage]
    options = dict(script_args.data_options or {})
    path = Path(name)
    if path.is_dir() or path.suffix in (".json", ".jsonl", ".parquet", ".csv"):
        data = load_local_dataset(path, script_args.dataset_train_split)
    else:
        import data_builders

        if name in data_builders.BUILDERS:
            builder = data_builders.get_builder(name)
            if hasattr(builder, "options_for_model"):
                options = builder.options_for_model(options, model_name_or_path)
            data = builder.build(**options)
        elif not is_local(name):
            check_source(name, "dataset_name", "dataset", _DATASET_HINT)
            data = load_dataset(name, script_args.dataset_config)  # a Hub dataset id
        else:
            raise RecipeError(
                f"dataset_name {name!r} is neither a data builder ({', '.join(sorted(data_builders.BUILDERS))}), "
                f"nor an existing directory or data file{_DATASET_HINT}."
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


_DATASET_HINT = "; build it first (`mathalign data build sft --out data/sft`) or name a builder (sft, preferences, rl)"


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
        tokenizer = from_pretrained(AutoTokenizer, source, "tokenizer",
                                    trust_remote_code=training_args.trust_remote_code)
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
                           merge_number_spaces=script_args.tokenizer_merge_number_spaces,
                           rewrites=prompt_rewrites(script_args.tokenizer_prompt_normalizer))



def build_model(script_args, model_args, training_args, tokenizer):
    """From scratch (MathGPT from `mathgpt_config`) or from a checkpoint path / Hub id, quantised if asked."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import get_quantization_config

    from .model import MathGPTConfig, MathGPTForCausalLM
    from .tokenizer import digit_token_ids, token_ids_containing

    if not model_args.model_name_or_path:
        options = dict(script_args.mathgpt_config or {})
        options.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        uses_abacus = options.get("abacus_embeddings") or options.get("abacus_rope_heads")
        if uses_abacus and options.get("digit_token_ids") is None:
            options["digit_token_ids"] = digit_token_ids(tokenizer)  # Abacus counts digit runs with these
        if isinstance(options.get("abacus_prompt_end_token_ids"), str):  # `"?"`: every token holding that text
            options["abacus_prompt_end_token_ids"] = token_ids_containing(tokenizer, options[
                "abacus_prompt_end_token_ids"])
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
    model = from_pretrained(
        AutoModelForCausalLM,
        path,
        "model",
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


def build_ref_model(script_args, model_args, training_args):
    """An explicit frozen reference for DPO/GRPO without LoRA (under LoRA TRL disables the adapter instead)."""
    from transformers import AutoModelForCausalLM

    if model_args.use_peft:
        return None
    path = script_args.ref_model_name_or_path or model_args.model_name_or_path
    if not path:
        return None  # a model trained from scratch here: TRL copies it
    return from_pretrained(AutoModelForCausalLM, path, "reference model",
                           trust_remote_code=training_args.trust_remote_code,
                           dtype="float32" if training_args.use_cpu else "auto")


# --- the run -------------------------------------------------------------------------------------------------------

_MODEL_HINT = "; train the stage that writes it first (e.g. `mathalign train recipes/sft.yaml`) or fix the path"


def check_model_sources(script_args, model_args):
    """Every model or tokenizer the recipe names must be a local path or a repository on the Hub."""
    for key, source in (("model_name_or_path", model_args.model_name_or_path),
                        ("tokenizer_name_or_path", script_args.tokenizer_name_or_path),
                        ("ref_model_name_or_path", script_args.ref_model_name_or_path)):
        if source:
            check_source(source, key, hint=_MODEL_HINT)


def local_model_type(path: str | None) -> str | None:
    """The `model_type` a run starts from: `mathgpt` from scratch, a local checkpoint's own, None when unknown."""
    if not path:
        return "mathgpt"
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None  # a broken config.json is reported when the model loads


def check_lora_targets(model_args, model_type: str | None, where: str = "the recipe") -> None:
    """LoRA on a model PEFT has no default target modules for (MathGPT) needs `lora_target_modules`: say so now."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULT_TARGETS

    if model_args.use_peft and not model_args.lora_target_modules and model_type and \
            model_type not in DEFAULT_TARGETS:
        raise RecipeError(f"{where}: use_peft on a {model_type} model needs lora_target_modules (PEFT knows no "
                          "default for it), e.g. `lora_target_modules: all-linear` or `[q_proj, v_proj]`.")


def check_output_dir(training_args) -> None:
    out = Path(training_args.output_dir)
    if out.exists() and not out.is_dir():
        raise RecipeError(f"output_dir {str(out)!r} is a file; name a directory for the run.")


def _read_json(path: Path) -> dict:
    """A JSON object from a file; {} when it is missing, cut short or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def finished_run(output_dir) -> dict | None:
    """The metrics of the finished run in `output_dir` (its train_results.json, written last), else None."""
    return _read_json(Path(output_dir) / "train_results.json") or None


def check_run(script_args, model_args, training_args, recipe: dict | None = None) -> dict | None:
    """Everything that can be checked before data, tokenizer and model are built; returns the metrics of a finished
    run in output_dir (and says so), which is then left as it is, unless `resume_from_checkpoint` asks to go on."""
    check_output_dir(training_args)
    check_model_sources(script_args, model_args)
    check_lora_targets(model_args, local_model_type(model_args.model_name_or_path))
    finished = finished_run(training_args.output_dir)
    if finished is not None and not training_args.resume_from_checkpoint:
        step = (checkpoints(training_args.output_dir) or [None])[-1]
        further = f"--resume_from_checkpoint {step} with a higher max_steps" if step else "a new output_dir"
        print(f"{training_args.output_dir} holds a finished run: nothing to do (to train it further: {further}; to "
              "train anew: another output_dir, or remove this one).", flush=True)
        return finished
    return None


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


def checkpoints(output_dir) -> list[Path]:
    """The `checkpoint-N` folders of a run, oldest first."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[11:]))


def is_complete_checkpoint(path: Path) -> bool:
    """The Trainer writes trainer_state.json after the model, optimizer and RNG states: a checkpoint whose
    trainer_state.json reads back is whole."""
    return bool(_read_json(path / "trainer_state.json"))


def last_checkpoint(output_dir: str) -> str | None:
    """The newest complete checkpoint; newer incomplete ones (a kill while saving) are removed, and said so."""
    for path in reversed(checkpoints(output_dir)):
        if is_complete_checkpoint(path):
            return str(path)
        print(f"{path} is incomplete (the run stopped while saving it): removed; resuming from the checkpoint "
              "before it.", flush=True)
        if int(os.environ.get("RANK", "0")) == 0:
            shutil.rmtree(path, ignore_errors=True)
    return None


def main(script_args, model_args, training_args, recipe: dict | None = None):
    """Train one stage as the parsed recipe says; returns the trainer's metrics."""
    from transformers import set_seed
    from trl import get_peft_config

    stage = script_args.stage
    finished = check_run(script_args, model_args, training_args)
    resume = None if finished else training_args.resume_from_checkpoint or last_checkpoint(training_args.output_dir)
    check_ranks_agree(training_args, finished=finished is not None, resume=resume)
    if finished is not None:
        return finished
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
    if resume:
        logger.info("Resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    return save_run(trainer, result, recipe or {}, training_args, hub_token)


def check_ranks_agree(training_args, **views) -> None:
    """Every process must see the same run directory (finished or not, the same checkpoint to resume from).

    On several machines without a shared filesystem, a checkpoint on machine 0 only would make it resume while the
    others start over, and the run then dies in a collective; say so before training instead.
    """
    if training_args.world_size <= 1:
        return
    import torch.distributed as dist

    seen = [None] * dist.get_world_size()
    dist.all_gather_object(seen, {key: str(value) for key, value in views.items()})
    if any(view != seen[0] for view in seen):
        raise RecipeError(f"the processes see different contents in output_dir {training_args.output_dir!r} "
                          f"(by rank: {seen}): put output_dir on a filesystem every machine shares, or copy the run "
                          "directory to every machine.")


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
    The token leaves the training arguments in every case: the Trainer pickles them into training_args.bin, in the
    run and in every checkpoint.
    """
    token, training_args.hub_token = training_args.hub_token, None
    if not training_args.push_to_hub:
        return None
    from .hub import check_can_push

    if not training_args.hub_model_id:
        raise RecipeError("push_to_hub needs hub_model_id: USER/NAME, the repository to publish to.")
    token = check_can_push(training_args.hub_model_id, token)
    training_args.push_to_hub = False
    return token


def _probe_prompts(train, n: int = 8) -> list[str]:
    column = "prompt" if "prompt" in train.column_names else "text"
    return [str(x) for x in train[column][:n]]


def save_run(trainer, result, recipe: dict, training_args, hub_token=None) -> dict:
    """The shared tail: final model + tokenizer, trainer state, the recipe that made them, then the metrics.

    `train_results.json` is written last and atomically: it marks the run finished (a re-run leaves it alone, the
    pipeline skips the stage), so a kill at any point before it leaves a run that resumes instead.
    """
    metrics = dict(result.metrics)
    trainer.log_metrics("train", metrics)
    trainer.model.config.use_cache = True  # TRL turns the KV cache off for training; generation wants it back
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    if trainer.accelerator.is_main_process:
        out = Path(training_args.output_dir)
        write_atomic(out / "recipe.yaml", yaml.safe_dump(plain_recipe(recipe), sort_keys=False))
        write_atomic(out / "all_results.json", json.dumps({**_read_json(out / "all_results.json"), **metrics},
                                                           indent=4, sort_keys=True))
        write_atomic(out / "train_results.json", json.dumps(metrics, indent=4, sort_keys=True))
        if hub_token is not None:
            from .hub import push_model

            push_model(out, training_args.hub_model_id, private=bool(training_args.hub_private_repo), token=hub_token)
    return metrics


def write_atomic(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a temporary file beside it, renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    code, launched = 0, False
    try:
        run(argv)
    except (UserError, FileNotFoundError) as err:
        print(f"mathalign.train: error: {err}", file=sys.stderr)
        code = 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
            launched = True
    if launched:
        exit_launched_process(code)
    return code


def exit_launched_process(code: int) -> None:
    """End a launched rank now, skipping the interpreter's teardown.

    Process groups that other libraries still reference (DeepSpeed keeps its ZeRO groups) are freed during that
    teardown, and gloo can then abort the process (SIGABRT, "terminate called without an active exception") after a
    finished, saved run, which the launcher reports as a failed rank: about one launch in twenty without
    `destroy_process_group`, rarer but seen with it. Everything worth keeping is written by now; streams and log
    handlers are flushed first.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing left to keep
            pass
    os._exit(code)


def run_recipe_file(path: str) -> None:
    """What a recipe's launch line calls when Python runs the file (`accelerate launch recipes/dpo.yaml ARGS`):
    train it with this process's command-line overrides, then exit."""
    sys.exit(cli([path, *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(cli())

"""Recipes: flat YAML files whose keys are dataclass fields, overridable from the command line.

A recipe is parsed into three dataclasses, exactly as `trl sft --config` does with `TrlParser`:
- `MathAlignArguments` (this file): the stage, the data, the model to start from, rewards;
- `trl.ModelConfig`: model loading, LoRA (`use_peft`, `lora_*`) and quantisation (`load_in_4bit`, `load_in_8bit`);
- the stage's TRL config: `SFTConfig` (pretrain, sft), `DPOConfig` or `GRPOConfig`.

Everything is checked before any work: an unknown key fails with the closest valid names, a value of the wrong type
fails naming the key. On a machine without a GPU the precision and device settings are chosen for the CPU.
"""

import dataclasses
import difflib
import enum
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from trl import DPOConfig, GRPOConfig, ModelConfig, SFTConfig, TrlParser

from .errors import RecipeError
from .launch import drop_launch_key, has_accelerator

STAGES = ("pretrain", "sft", "dpo", "grpo")


@dataclass
class MathAlignArguments:
    """mathalign's own recipe keys (TRL's and PEFT's keys live in their own dataclasses)."""

    stage: str = field(
        default="sft",
        metadata={"help": "What to train: `pretrain` (LM on text), `sft` (prompt/completion), `dpo` "
                          "(prompt/chosen/rejected) or `grpo` (prompts + reward functions).", "choices": STAGES},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A data builder (`pretrain`, `sft`, `preferences`, `rl`, `gsm8k`, `aqua`), a directory "
                          "saved with `save_to_disk`, a .json/.jsonl/.parquet file, or a Hub dataset id. "
                          "Default: the builder that matches the stage."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    data_options: dict | str | None = field(
        default=None,
        metadata={"help": "Keyword arguments for the data builder, e.g. `{task: arithmetic, num_train: 20000}` "
                          "(a JSON string on the command line)."},
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str | None = field(
        default="validation", metadata={"help": "Split for evaluation during training (None: no evaluation)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training rows (quick experiments)."}
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Tokenizer to use. Default: the model's; when training from scratch without one, a "
                          "tokenizer is trained on the training text first."},
    )
    tokenizer_vocab_size: int = field(default=512, metadata={"help": "Vocabulary size of a newly trained tokenizer."})
    tokenizer_merge_number_spaces: bool = field(
        default=False,
        metadata={"help": "A newly trained tokenizer keeps the space before a number with its first digit (` 17` -> "
                          "` 1`, `7`): 19% fewer tokens on the expressions task, and ` -7` tokenises unlike ` - 7`."},
    )
    tokenizer_prompt_normalizer: str | None = field(
        default=None,
        metadata={"help": "A task family (`arithmetic`) whose prompt rewrites a newly trained tokenizer applies as its "
                          "normalizer, saved in tokenizer.json: every user of the model then gets `3 + 4 = ?` read "
                          "as `3+4=?` through plain `AutoTokenizer`."},
    )
    mathgpt_config: dict | str | None = field(
        default=None,
        metadata={"help": "MathGPTConfig keyword arguments for a model trained from scratch (when "
                          "`model_name_or_path` is not set), e.g. `{hidden_size: 128, num_hidden_layers: 2}`."},
    )
    ref_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "DPO/GRPO reference model. Default: the starting model (under LoRA: the same model with "
                          "its adapter disabled)."},
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["correctness_reward", "format_reward"],
        metadata={"help": "GRPO reward functions by name (see `mathalign.rewards`); weights come from "
                          "`reward_weights`."},
    )
    log_attention_entropy: bool = field(
        default=False, metadata={"help": "Log the mean attention entropy per layer at every logging step."}
    )
    stop_at_accuracy: float | None = field(
        default=None,
        metadata={"help": "End training at the first check whose greedy accuracy on 256 problems of the evaluation "
                          "split (dataset_test_split) reaches this share, e.g. 0.65: a model under-trained on "
                          "purpose at an accuracy rather than an epoch count (the alignment lab's base). Logged as "
                          "`eval_greedy_accuracy`."},
    )
    stop_at_accuracy_steps: int = field(
        default=10, metadata={"help": "Optimizer steps between two `stop_at_accuracy` checks."}
    )


@dataclass
class MathAlignSFTConfig(SFTConfig):
    """TRL's SFTConfig plus `trust_remote_code`, which DPOConfig and GRPOConfig already have."""

    trust_remote_code: bool = field(default=False, metadata={"help": "Allow a Hub model or tokenizer to run its own code."})


def training_config_class(stage: str):
    """The TRL config dataclass for a stage."""
    if stage not in STAGES:
        raise RecipeError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}.")
    return {"pretrain": MathAlignSFTConfig, "sft": MathAlignSFTConfig, "dpo": DPOConfig, "grpo": GRPOConfig}[stage]


def dataclass_types(stage: str):
    return (MathAlignArguments, ModelConfig, training_config_class(stage))


def load_recipe(path: str | os.PathLike) -> dict:
    """Read a recipe YAML file into a dict (keys not validated yet), without its launch line (see `launch.py`)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}" if not path.exists() else f"{path} is not a file.")
    try:
        text = path.read_text()
        recipe = yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())
        raise RecipeError(f"{path} is not valid YAML: {reason}") from None
    if recipe is None:
        raise RecipeError(f"{path} is empty: a recipe sets at least `stage` and `output_dir` (copy one from "
                          "recipes/, e.g. recipes/sft.yaml).")
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path} must be a YAML mapping of `key: value` lines, got a {type(recipe).__name__}.")
    return drop_launch_key(recipe, path, text)


def _field_types(types_: tuple) -> dict[str, object]:
    """Recipe key -> declared type. Read from the annotations: HfArgumentParser rewrites `Field.type` in place."""
    fields = {}
    for cls in types_:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                fields.setdefault(f.name, hints.get(f.name, f.type))
    return fields


def recipe_stage(recipe: dict | None, args: list[str]) -> str | None:
    """The stage a run trains: `--stage VALUE` on the command line, else the recipe's `stage` (default sft); None
    when there is neither a `--stage` value nor a recipe."""
    if "--stage" in args and args.index("--stage") + 1 < len(args):
        return args[args.index("--stage") + 1]
    return None if recipe is None else recipe.get("stage", "sft")


def check_keys(keys, fields: dict, where: str, stage: str | None = None) -> None:
    """Fail on the first unknown key with the closest valid names, and the command that lists the stage's keys."""
    for key in keys:
        if key in fields or key == "env":
            continue
        close = difflib.get_close_matches(key, list(fields), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = f"mathalign train --help-keys {stage}" if stage else "mathalign train --help-keys STAGE"
        raise RecipeError(f"unknown recipe key {key!r} in {where}.{hint} (`{listing}` lists all.)")


def _expected_types(annotation) -> tuple[type, ...] | None:
    """The plain Python types a field accepts, or None when anything goes."""
    if isinstance(annotation, str):
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        accepted = []
        for arg in typing.get_args(annotation):
            sub = _expected_types(arg)
            if sub is None:
                return None
            accepted.extend(sub)
        return tuple(accepted)
    if annotation is type(None):
        return (type(None),)
    if origin is typing.Literal:
        return tuple({type(a) for a in typing.get_args(annotation)})
    if origin is not None:
        annotation = origin
    if annotation is float:
        return (float, int)
    if isinstance(annotation, type) and annotation in (int, str, bool, list, dict):
        return (annotation,)
    if isinstance(annotation, type) and issubclass(annotation, str):  # str enums such as IntervalStrategy
        return (str,)
    return None


def check_types(recipe: dict, fields: dict, where: str) -> None:
    """YAML values must match the field types (TrlParser only converts strings, so check the rest here)."""
    for key, value in recipe.items():
        if key == "env" or isinstance(value, str):  # strings are converted (and checked) by the argument parser
            continue
        accepted = _expected_types(fields[key])
        if accepted is None:
            continue
        if isinstance(value, bool) and bool not in accepted:
            ok = False
        else:
            ok = isinstance(value, accepted)
        if not ok:
            names = " or ".join(sorted({t.__name__ for t in accepted}))
            raise RecipeError(f"recipe key {key!r} in {where} must be {names}, got {value!r}.")


def _cli_keys(args: list[str]) -> list[str]:
    return [a[2:].split("=", 1)[0] for a in args if a.startswith("--")]


def parse_recipe(argv: list[str] | None = None, recipe: dict | None = None, where: str | None = None):
    """Parse `RECIPE.yaml [--key value ...]` (or `--config RECIPE.yaml ...`) into the stage's dataclasses.

    `recipe` gives the keys as a dict instead of a file (the pipeline does this); `where` names it in errors.
    Returns `(script_args, model_args, training_args, recipe_dict)`.
    """
    args = list(argv or [])
    recipe_path = None
    if recipe is not None:
        recipe = dict(recipe)
    else:
        if "--config" in args:
            i = args.index("--config")
            if i + 1 >= len(args):
                raise RecipeError("--config needs a recipe file path.")
            recipe_path = args[i + 1]
            del args[i : i + 2]
        elif args and not args[0].startswith("-"):
            recipe_path = args.pop(0)
        recipe = load_recipe(recipe_path) if recipe_path else {}
    where = where or recipe_path or "the command line"
    if "stages" in recipe:
        raise RecipeError(f"{where} is a pipeline file (it has `stages`): run it with `mathalign pipeline {where}`.")

    stage = recipe_stage(recipe, args)
    types_ = dataclass_types(stage)
    fields = _field_types(types_)
    check_keys(recipe, fields, where, stage)
    check_keys(_cli_keys(args), fields, "the command line", stage)
    check_types(recipe, fields, where)

    # Environment variables from the recipe's `env:` block, as TrlParser does.
    env = recipe.pop("env", {}) or {}
    if not isinstance(env, dict):
        raise RecipeError(f"`env` in {where} must be a mapping of NAME: value.")
    for name, value in env.items():
        os.environ[name] = str(value)

    if not has_accelerator():
        # No GPU: bf16 is ~100x slower than fp32 on CPUs and TRL refuses it anyway. Appended last, so they win.
        args += ["--bf16", "false", "--fp16", "false", "--use_cpu", "true"]

    if not {"activation_checkpointing", "gradient_checkpointing"} & (set(recipe) | set(_cli_keys(args))):
        # TRL turns checkpointing on by default (under its deprecated name); it only slows small models down.
        # Recipes for large models ask for it explicitly.
        recipe["activation_checkpointing"] = False

    parser = _RecipeParser(types_)
    parser.set_defaults_with_config(**recipe)
    try:
        script_args, model_args, training_args, remaining = parser.parse_args_into_dataclasses(
            args=args, return_remaining_strings=True
        )
    except RecipeError as err:  # a value argparse could not convert
        raise RecipeError(f"{where} or the command line: {err}") from None
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{where}: {err}") from None
    if remaining:
        raise RecipeError(f"unexpected command-line arguments: {' '.join(remaining)}")

    for name in ("data_options", "mathgpt_config"):
        value = getattr(script_args, name)
        if isinstance(value, str):
            try:
                setattr(script_args, name, json.loads(value))
            except json.JSONDecodeError:
                raise RecipeError(f"--{name} must be a JSON object, e.g. '{{\"num_train\": 1000}}'.") from None
        if getattr(script_args, name) is not None and not isinstance(getattr(script_args, name), dict):
            raise RecipeError(f"`{name}` must be a mapping.")
    if script_args.stage != stage:
        raise RecipeError("set `stage` in the recipe or with --stage, once.")
    if "output_dir" not in recipe and "output_dir" not in _cli_keys(args):
        raise RecipeError(f"{where} sets no output_dir: name the directory the run writes to (`output_dir: "
                          "runs/NAME` in the recipe, or --output_dir).")
    check_values(script_args, training_args, where, set(_cli_keys(args)))
    # The keys as the run sees them: the file's, then the command line's as parsed (enums made plain again).
    resolved = plain_recipe({**recipe, **{k: getattr(o, k) for o in (script_args, model_args, training_args)
                                          for k in _cli_keys(argv or []) if hasattr(o, k)}})
    return script_args, model_args, training_args, resolved


class _RecipeParser(TrlParser):
    """TrlParser whose errors are one line (argparse prints the whole usage, ~160 lines, before a bad value)."""

    def error(self, message):
        raise RecipeError(message)


# (key, test, what it must be): values every stage would accept in type but not in sense, checked before any work.
_POSITIVE_INT = (lambda v: v >= 1, "a whole number >= 1")
_POSITIVE = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
_NON_NEGATIVE = (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
VALUE_RULES = {
    "max_steps": (lambda v: v == -1 or v >= 1, "a number of optimizer steps >= 1 (or -1: train num_train_epochs)"),
    "num_train_epochs": _POSITIVE,
    "learning_rate": _POSITIVE,
    "per_device_train_batch_size": _POSITIVE_INT,
    "per_device_eval_batch_size": _POSITIVE_INT,
    "gradient_accumulation_steps": _POSITIVE_INT,
    "save_steps": _POSITIVE,
    "logging_steps": _POSITIVE,
    "warmup_steps": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "max_grad_norm": _NON_NEGATIVE,
    "max_train_samples": _POSITIVE_INT,
    "stop_at_accuracy_steps": _POSITIVE_INT,
    "tokenizer_vocab_size": _POSITIVE_INT,
    "max_length": _POSITIVE_INT,
    "max_completion_length": _POSITIVE_INT,
    "num_generations": (lambda v: v >= 2, "at least 2 (GRPO compares the completions of each prompt)"),
}


def check_values(script_args, training_args, where: str, cli_keys: set[str] = frozenset()) -> None:
    """Refuse values that would train nonsense (`max_steps: 0`, a NaN learning rate, batch size 0) up front."""
    for obj in (script_args, training_args):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name, None)
            source = "on the command line" if f.name in cli_keys else f"in {where}"
            if isinstance(value, float) and math.isnan(value):
                raise RecipeError(f"{f.name} {source} is NaN; give a number.")
            rule = VALUE_RULES.get(f.name)
            if rule is None or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if f.name == "save_steps" and training_args.save_strategy == "no":
                continue
            test, what = rule
            if not test(value):
                raise RecipeError(f"{f.name} {source} must be {what}, got {value!r}.")
    prompt_rewrites(getattr(script_args, "tokenizer_prompt_normalizer", None))


def prompt_rewrites(family: str | None) -> tuple[tuple[str, str], ...]:
    """The `tokenizer_rewrites` of the family a recipe's `tokenizer_prompt_normalizer` names (none for None); a
    family without any is refused with the ones that have them."""
    from .tasks import TASKS

    if family is None:
        return ()
    with_rewrites = sorted(name for name, task in TASKS.items() if task.tokenizer_rewrites)
    if family not in with_rewrites:
        raise RecipeError(f"tokenizer_prompt_normalizer: {family!r} has no prompt rewrites; use one of "
                          f"{with_rewrites} or leave it unset.")
    return TASKS[family].tokenizer_rewrites


# Keys never written to a run's recipe.yaml: the file is published with the model card.
SECRET_KEYS = ("hub_token",)
# `env` entries never written to disk either (the values stay in the environment of the process that read them).
SECRET_ENV = re.compile(r"TOKEN|KEY|SECRET|PASSW|AUTH|CREDENTIAL", re.IGNORECASE)


def redact(recipe: dict) -> dict:
    """`recipe` without secrets: no `hub_token`, no `env` entry whose name says token, key, secret or password."""
    clean = {key: value for key, value in recipe.items() if key not in SECRET_KEYS}
    if isinstance(clean.get("env"), dict):
        clean["env"] = {name: value for name, value in clean["env"].items() if not SECRET_ENV.search(str(name))}
    return clean


def _plain(value):
    """`value` as YAML-safe data: enums by value, tuples/sets as lists, paths and other objects as strings."""
    if isinstance(value, enum.Enum):  # TrainingArguments turns strategy/scheduler/optimizer names into enums
        return _plain(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. accelerator_config
        return _plain(dataclasses.asdict(value))
    return str(value)  # os.PathLike and anything else a parser may hand back


def plain_recipe(recipe: dict) -> dict:
    """A run's recipe as plain YAML data (what `recipe.yaml` holds): enums become their values, secrets are left out.

    The result reads back with `yaml.safe_load` and parses again with `parse_recipe`.
    """
    return {str(key): _plain(value) for key, value in redact(recipe).items()}


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)"


def _help(f: dataclasses.Field) -> str:
    return " ".join(str(f.metadata.get("help", "")).split())[:140]


def _keys_help(cls) -> list[str]:
    return [f"  {f.name} = {_default(f)!r}  {_help(f)}"
            for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")]


def _common_training_keys_help() -> list[str]:
    """The training keys every stage's config has; where a default or meaning differs by stage, it says so."""
    configs = [{f.name: f for f in dataclasses.fields(training_config_class(s)) if f.init} for s in STAGES]
    lines = []
    for name, f in configs[0].items():
        if name.startswith("_") or not all(name in c for c in configs[1:]):
            continue
        same_default = len({repr(_default(c[name])) for c in configs}) == 1
        same_help = len({_help(c[name]) for c in configs}) == 1
        default = repr(_default(f)) if same_default else "(depends on the stage)"
        lines.append(f"  {name} = {default}  {_help(f) if same_help else 'Differs by stage: see --help-keys STAGE.'}")
    return lines


def all_keys_help(stage: str | None = None) -> str:
    """One line per recipe key: name, default and help (for `mathalign train --help-keys`).

    With a stage, every key of that stage; without one, the keys every stage accepts, and how to see the rest.
    """
    if stage is not None:
        lines = []
        for cls in dataclass_types(stage):
            lines += [f"# {cls.__name__}", *_keys_help(cls)]
        return "\n".join(lines)
    lines = [f"# {MathAlignArguments.__name__}", *_keys_help(MathAlignArguments),
             f"# {ModelConfig.__name__}", *_keys_help(ModelConfig),
             "# training keys every stage has (TrainingArguments and more)", *_common_training_keys_help(),
             f"# Each stage has more: `mathalign train --help-keys dpo` (stages: {', '.join(STAGES)}), or "
             "`mathalign train RECIPE --help-keys` for the recipe's stage."]
    return "\n".join(lines)


__all__ = ["MathAlignArguments", "RecipeError", "STAGES", "load_recipe", "parse_recipe", "plain_recipe", "redact",
           "training_config_class"]

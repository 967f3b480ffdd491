"""`mathalign train RECIPE` (through accelerate) and `mathalign merge ADAPTER OUT` (LoRA into its base)."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

TRAIN_EPILOG = """\
examples:
  mathalign train recipes/sft.yaml
  mathalign train recipes/dpo.yaml --max_steps 5 --output_dir runs/dpo-try
  mathalign train recipes/grpo.yaml --num_processes 2                  # two-process DDP (CPU: gloo)
  mathalign train recipes/grpo.yaml --accelerate_config deepspeed_zero2  # recipes/accelerate/<NAME>.yaml, its 8 GPUs
  mathalign train recipes/grpo.yaml --accelerate_config fsdp --num_processes 4   # the config on 4 GPUs

the same run, launched by hand (accelerate runs Python modules, not YAML files):
  python -m mathalign.train recipes/dpo.yaml
  accelerate launch -m mathalign.train recipes/dpo.yaml
  accelerate launch --multi_gpu --num_processes 2 -m mathalign.train --config recipes/dpo.yaml
  accelerate launch --config_file recipes/accelerate/fsdp.yaml --num_processes 4 -m mathalign.train recipes/dpo.yaml

Any recipe key can be overridden as --key value. Every key, with its default and help:
  mathalign train recipes/dpo.yaml --help-keys    # the keys of the recipe's stage
  mathalign train --help-keys dpo                 # the keys of a stage (pretrain, sft, dpo, grpo)
  mathalign train --help-keys                     # the keys every stage has
"""

ACCELERATE_CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "accelerate"


def add_parser(subparsers):
    train = subparsers.add_parser(
        "train",
        help="train one stage (pretrain, sft, dpo, grpo) from a YAML recipe",
        description="Train one stage from a YAML recipe whose keys are TRL / PEFT / mathalign dataclass fields.",
        epilog=TRAIN_EPILOG,
        formatter_class=_raw_formatter(),
    )
    train.add_argument("recipe", nargs="?", help="the recipe YAML file, e.g. recipes/sft.yaml")
    train.add_argument("--num_processes", type=int, default=None,
                       help="processes to train with: DDP without --accelerate_config (default 1); with one, "
                            "overrides the config's num_processes and keeps its DeepSpeed/FSDP settings")
    train.add_argument("--accelerate_config", default=None,
                       help="an accelerate config: a file path or a name from recipes/accelerate/ "
                            "(cpu, multi_gpu, deepspeed_zero2, deepspeed_zero3, fsdp)")
    train.add_argument("--help-keys", metavar="STAGE", nargs="?", const="", default=None,
                       help="list every recipe key with its default and help: those of STAGE (pretrain, sft, dpo, "
                            "grpo), else of the recipe's stage, else the keys every stage has")
    train.set_defaults(func=run_train, _allow_extra=True)

    merge = subparsers.add_parser(
        "merge",
        help="merge a LoRA adapter into its base model and save a plain checkpoint",
        description="Merge a LoRA adapter into its base model (`merge_and_unload`) and save model + tokenizer.",
        epilog="example:\n  mathalign merge runs/dpo-lora runs/dpo-merged",
        formatter_class=_raw_formatter(),
    )
    merge.add_argument("adapter_dir", help="a directory with adapter_config.json (a LoRA training run)")
    merge.add_argument("out_dir", help="where to write the merged model")
    merge.set_defaults(func=run_merge)


def _raw_formatter():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def resolve_accelerate_config(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = ACCELERATE_CONFIGS / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = sorted(p.stem for p in ACCELERATE_CONFIGS.glob("*.yaml"))
    raise FileNotFoundError(f"accelerate config {name_or_path!r} not found; give a file or one of {names}.")


def _distributed_type(config: Path) -> str | None:
    try:
        settings = yaml.safe_load(config.read_text())
    except yaml.YAMLError:
        return None  # accelerate reports a broken config itself
    return str(settings.get("distributed_type")) if isinstance(settings, dict) else None


def needs_launcher(num_processes: int | None, config: str | None) -> bool:
    """Whether a run goes through `accelerate launch` (several processes, or a config) rather than this process."""
    return (num_processes or 1) > 1 or bool(config)


def accelerate_command(recipe: str | None, extra: list[str], num_processes: int | None,
                       config: str | None) -> list[str]:
    """The `accelerate launch ... -m mathalign.train ...` command line for a training run.

    Without a config, N > 1 processes run as DDP (`--multi_gpu`: GPUs, or gloo on a CPU-only machine). With a config,
    only `--num_processes` is passed on: `--multi_gpu` would override the config's DeepSpeed or FSDP setting.
    """
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config:
        path = resolve_accelerate_config(config)
        command += ["--config_file", str(path)]
        if num_processes is not None:
            if num_processes > 1 and _distributed_type(path) == "NO":
                raise ValueError(
                    f"{path.name} runs a single process (distributed_type: NO); for --num_processes {num_processes} "
                    "train without --accelerate_config (DDP: GPUs, or gloo on a CPU) or with a multi-process config "
                    "(multi_gpu, deepspeed_zero2, deepspeed_zero3, fsdp).")
            command += ["--num_processes", str(num_processes)]
    elif num_processes is not None and num_processes > 1:
        command += ["--multi_gpu", "--num_processes", str(num_processes)]
    command += ["-m", "mathalign.train"]
    return command + ([recipe] if recipe else []) + extra


def help_keys_stage(value: str, recipe: str | None, extra: list[str]) -> str | None:
    """The stage `--help-keys` lists: the one named, else the recipe's (or `--stage`'s), else None (every stage)."""
    from .recipe import STAGES, RecipeError, load_recipe, recipe_stage

    if value in STAGES:
        return value
    if value:
        if not Path(value).is_file():
            raise RecipeError(f"--help-keys takes a stage ({', '.join(STAGES)}) or a recipe file, got {value!r}; "
                              "e.g. `mathalign train --help-keys dpo`.")
        recipe = value  # `mathalign train --help-keys RECIPE`
    return recipe_stage(load_recipe(recipe) if recipe else None, extra)


def run_train(args, extra: list[str] | None = None) -> int:
    from .recipe import all_keys_help, parse_recipe

    extra = list(extra or [])
    if args.help_keys is not None:
        print(all_keys_help(help_keys_stage(args.help_keys, args.recipe, extra)))
        return 0
    if not args.recipe and not extra:
        raise ValueError("give a recipe, e.g. `mathalign train recipes/sft.yaml` (see --help).")
    argv = ([args.recipe] if args.recipe else []) + extra
    parse_recipe(argv)  # every key and value checked here, before a process is launched
    if not needs_launcher(args.num_processes, args.accelerate_config):
        from .train import run

        run(argv)
        return 0
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    command = accelerate_command(args.recipe, extra, args.num_processes, args.accelerate_config)
    print("launching:", " ".join(command), flush=True)
    return subprocess.call(command, env=env)


def run_merge(args) -> int:
    from .merge import merge_adapter

    out = merge_adapter(args.adapter_dir, args.out_dir)
    print(f"merged model written to {out}")
    return 0

"""`mathalign train RECIPE` (through accelerate) and `mathalign merge ADAPTER OUT` (LoRA into its base)."""

from pathlib import Path

TRAIN_EPILOG = """\
examples:
  mathalign train recipes/sft.yaml
  mathalign train recipes/dpo.yaml --max_steps 5 --output_dir runs/dpo-try
  mathalign train recipes/grpo.yaml --num_processes 2                  # two-process DDP (CPU: gloo)
  mathalign train recipes/grpo.yaml --accelerate_config deepspeed_zero2  # recipes/accelerate/<NAME>.yaml, its 8 GPUs
  mathalign train recipes/grpo.yaml --accelerate_config fsdp --num_processes 4   # the config on 4 GPUs

the same run, launched by hand:
  accelerate launch recipes/dpo.yaml --max_steps 5            # a recipe file is also a Python script
  accelerate launch --multi_gpu --num_processes 2 recipes/dpo.yaml
  accelerate launch --config_file recipes/accelerate/fsdp.yaml --num_processes 4 recipes/dpo.yaml
  accelerate launch -m mathalign.train recipes/dpo.yaml       # the same, for recipes without the launch line
  python -m mathalign.train recipes/dpo.yaml
  mathalign train --check my_recipe.yaml                      # is it a valid recipe, and launchable that way?

Any recipe key can be overridden as --key value. Every key, with its default and help:
  mathalign train recipes/dpo.yaml --help-keys    # the keys of the recipe's stage
  mathalign train --help-keys dpo                 # the keys of a stage (pretrain, sft, dpo, grpo)
  mathalign train --help-keys                     # the keys every stage has
"""


def add_parser(subparsers):
    train = subparsers.add_parser(
        "train",
        help="train one stage (pretrain, sft, dpo, grpo) from a YAML recipe",
        description="Train one stage from a YAML recipe whose keys are TRL / PEFT / mathalign dataclass fields.",
        epilog=TRAIN_EPILOG,
        formatter_class=_raw_formatter(),
    )
    train.add_argument("recipe", nargs="?", help="the recipe YAML file, e.g. recipes/sft.yaml, or the name of one "
                                                 "shipped with mathalign (pretrain, sft, dpo, grpo, "
                                                 "qwen2.5-0.5b/grpo_gsm8k)")
    train.add_argument("--num_processes", type=_at_least_one, default=None,
                       help="processes to train with: DDP without --accelerate_config (default 1); with one, "
                            "overrides the config's num_processes and keeps its DeepSpeed/FSDP settings")
    train.add_argument("--accelerate_config", default=None,
                       help="an accelerate config: a file path or a name from recipes/accelerate/ "
                            "(cpu, multi_gpu, deepspeed_zero2, deepspeed_zero3, fsdp)")
    train.add_argument("--help-keys", metavar="STAGE", nargs="?", const="", default=None,
                       help="list every recipe key with its default and help: those of STAGE (pretrain, sft, dpo, "
                            "grpo), else of the recipe's stage, else the keys every stage has")
    train.add_argument("--check", action="store_true",
                       help="check the recipe (every key and value) and whether `accelerate launch RECIPE` can run "
                            "it, then exit without training")
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


def _at_least_one(value: str) -> int:
    import argparse

    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value!r}")
    return number


def _raw_formatter():
    import argparse

    return argparse.RawDescriptionHelpFormatter


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

    from .launch import shipped_recipe

    extra = list(extra or [])
    args.recipe = str(shipped_recipe(args.recipe) or args.recipe) if args.recipe else None
    if args.help_keys is not None:
        print(all_keys_help(help_keys_stage(args.help_keys, args.recipe, extra)))
        return 0
    if not args.recipe and not extra:
        raise ValueError("give a recipe, e.g. `mathalign train recipes/sft.yaml` (see --help).")
    argv = ([args.recipe] if args.recipe else []) + extra
    parsed = parse_recipe(argv)  # every key and value checked here, before a process is launched
    if args.check:
        return check_recipe_file(args.recipe, parsed[0].stage)
    from .launch import launch, needs_launcher
    from .train import check_run, run

    if not needs_launcher(args.num_processes, args.accelerate_config):
        run(argv)
        return 0
    if check_run(*parsed) is not None:  # finished already: say so here rather than in every launched process
        return 0
    return launch(args.recipe, extra, args.num_processes, args.accelerate_config)


def check_recipe_file(recipe: str | None, stage: str) -> int:
    """`mathalign train --check RECIPE`: 0 when `accelerate launch RECIPE` runs it, else 1 with the reason."""
    from .launch import why_not_launchable

    if not recipe:
        raise ValueError("--check needs a recipe file.")
    reason = why_not_launchable(recipe)
    if reason:
        print(f"{recipe}: a valid {stage} recipe, for `mathalign train {recipe}`; not launchable: {reason}")
        return 1
    print(f"{recipe}: a valid {stage} recipe; `accelerate launch {recipe}` and `mathalign train {recipe}` run it.")
    return 0


def run_merge(args) -> int:
    from .merge import merge_adapter

    out = merge_adapter(args.adapter_dir, args.out_dir)
    print(f"merged model written to {out}")
    return 0

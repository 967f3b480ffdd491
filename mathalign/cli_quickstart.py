"""`mathalign quickstart` (the default pipeline) and `mathalign pipeline FILE`."""

from pathlib import Path


def add_parser(subparsers):
    quick = subparsers.add_parser(
        "quickstart",
        help="train and evaluate the default pipeline on this machine (CPU minutes, nothing to download)",
        description="Build data, train a tokenizer and a MathGPT, then SFT, DPO and GRPO it and compare every "
                    "stage on held-out problems. Re-running continues where an interrupted run stopped.",
        epilog="example:\n  mathalign quickstart --run_dir runs/quickstart",
    )
    quick.add_argument("--pipeline", default=None, help="pipeline file (default: the shipped recipes/pipeline.yaml)")
    quick.add_argument("--run_dir", default=None, help="where to write everything (default: runs/quickstart)")
    quick.set_defaults(func=run_quickstart)

    pipeline = subparsers.add_parser(
        "pipeline",
        help="run a pipeline file: several recipes chained in one run directory, then evaluation",
        description="Run every stage of a pipeline YAML (see recipes/pipeline.yaml), skipping finished stages.",
        epilog="example:\n  mathalign pipeline recipes/pipeline.yaml --run_dir runs/try",
    )
    pipeline.add_argument("pipeline", help="the pipeline YAML file, or the name of one shipped with mathalign "
                                           "(pipeline, expressions, alignment_lab)")
    pipeline.add_argument("--run_dir", default=None, help="where to write everything (default: the file's run_dir)")
    pipeline.add_argument("--skip_eval", action="store_true", help="train only")
    pipeline.set_defaults(func=run_pipeline_command)


def find_default_pipeline() -> Path:
    """recipes/pipeline.yaml of the checkout the command runs in, else the one shipped with mathalign."""
    from .launch import recipes_dir

    here = Path("recipes/pipeline.yaml")
    return here if here.is_file() else recipes_dir() / "pipeline.yaml"


def run_quickstart(args) -> int:
    from .pipeline import run_pipeline

    run_pipeline(args.pipeline or find_default_pipeline(), args.run_dir)
    return 0


def run_pipeline_command(args) -> int:
    from .pipeline import run_pipeline

    from .launch import shipped_recipe

    run_pipeline(shipped_recipe(args.pipeline) or args.pipeline, args.run_dir, args.skip_eval)
    return 0

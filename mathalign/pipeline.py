"""The whole recipe chain in one run directory: pretrain -> SFT -> DPO -> GRPO -> evaluation and stage comparison.

    mathalign quickstart                                  # recipes/pipeline.yaml into runs/quickstart
    python -m mathalign.pipeline recipes/pipeline.yaml --run_dir runs/try

A pipeline file names a `run_dir`, the `evaluation` to run at the end, and `stages`: an ordered mapping of stage
name -> recipe keys (the same keys as recipes/*.yaml). Each stage starts from the previous stage's model (or from
the earlier stage named by `start_from`, to compare methods side by side); a LoRA stage is merged into a plain
checkpoint before the next one starts. A stage whose output exists is skipped, and an
interrupted stage resumes from its last checkpoint, so re-running the same command continues where it stopped.
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import yaml

from .recipe import RecipeError, load_recipe, parse_recipe

logger = logging.getLogger("mathalign.pipeline")

PIPELINE_KEYS = {"run_dir", "stages", "evaluation"}
EVALUATION_KEYS = {"dataset", "data_options", "split", "num_samples", "batch_size"}


def load_pipeline(path) -> dict:
    pipeline = load_recipe(path)
    unknown = set(pipeline) - PIPELINE_KEYS
    if unknown:
        raise RecipeError(f"unknown pipeline key(s) {sorted(unknown)} in {path}; valid: {sorted(PIPELINE_KEYS)}.")
    stages = pipeline.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise RecipeError(f"{path}: `stages` must map stage names to recipe keys, e.g. `sft: {{stage: sft, ...}}`.")
    unknown = set(pipeline.get("evaluation") or {}) - EVALUATION_KEYS
    if unknown:
        raise RecipeError(f"unknown evaluation key(s) {sorted(unknown)} in {path}; valid: {sorted(EVALUATION_KEYS)}.")
    return pipeline


def stage_recipes(pipeline: dict, run_dir: Path, where: str) -> list[tuple[str, dict, tuple]]:
    """Each stage's recipe with its output_dir and starting model filled in, parsed (so checked) before anything
    runs: `(name, recipe, parsed)` where `parsed` is what `train.main` takes."""
    recipes, previous, finished = [], None, {}
    for name, keys in pipeline["stages"].items():
        if not isinstance(keys, dict):
            raise RecipeError(f"{where}: stage {name!r} must be a mapping of recipe keys.")
        keys = dict(keys)
        start_from = keys.pop("start_from", None)
        if start_from is not None:
            if start_from not in finished:
                raise RecipeError(f"{where}: stage {name!r} has start_from: {start_from!r}, which is not an earlier "
                                  f"stage (earlier stages: {', '.join(finished) or 'none'}).")
            if "model_name_or_path" in keys:
                raise RecipeError(f"{where}: stage {name!r} sets both start_from and model_name_or_path; keep one.")
            previous = finished[start_from]
        recipe = {"stage": name, **keys, "output_dir": str(run_dir / name)}
        if previous is not None and "model_name_or_path" not in keys:
            recipe["model_name_or_path"] = str(final_model_dir(run_dir, *previous))
        parsed = parse_recipe([], recipe=recipe, where=f"{where} (stage {name!r})")  # fail now, not an hour in
        recipes.append((name, recipe, parsed))
        previous = finished[name] = (name, bool(recipe.get("use_peft")))
    return recipes


def final_model_dir(run_dir: Path, name: str, uses_lora: bool) -> Path:
    """Where a stage's usable model ends up: its output dir, or the merged copy of a LoRA stage."""
    return run_dir / f"{name}-merged" if uses_lora else run_dir / name


def stage_is_done(output_dir: Path) -> bool:
    # save_run writes train_results.json after the final model: its presence means the stage finished.
    return (output_dir / "train_results.json").is_file()


def run_pipeline(path, run_dir: str | None = None, skip_eval: bool = False) -> dict:
    """Run (or continue) every stage of a pipeline file, then evaluate and compare the stages."""
    from .merge import merge_adapter
    from .train import main as train_stage

    pipeline = load_pipeline(path)
    run_dir = Path(run_dir or pipeline.get("run_dir") or "runs/pipeline")
    recipes = stage_recipes(pipeline, run_dir, str(path))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "pipeline.yaml").write_text(yaml.safe_dump({**pipeline, "run_dir": str(run_dir)}, sort_keys=False))

    timings, models = {}, {}
    for index, (name, recipe, parsed) in enumerate(recipes, 1):
        output_dir, uses_lora = Path(recipe["output_dir"]), bool(recipe.get("use_peft"))
        final = final_model_dir(run_dir, name, uses_lora)
        print(f"[{index}/{len(recipes)}] {name}: ", end="", flush=True)
        if stage_is_done(output_dir) and final.exists():
            print(f"done already ({final}), skipped", flush=True)
        else:
            print(f"training into {output_dir}", flush=True)
            start = time.time()
            train_stage(*parsed)
            if uses_lora:
                if final.exists():  # a merge interrupted half-way
                    import shutil

                    shutil.rmtree(final)
                merge_adapter(str(output_dir), str(final))
            timings[name] = round(time.time() - start, 1)
        models[name] = final

    summary = {"run_dir": str(run_dir), "stage_seconds": timings, "models": {k: str(v) for k, v in models.items()}}
    if not skip_eval and pipeline.get("evaluation") is not None:
        summary["evaluation"] = evaluate_stages(models, pipeline["evaluation"], run_dir)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary, run_dir)
    return summary


def evaluate_stages(models: dict[str, Path], options: dict, run_dir: Path) -> dict:
    """Evaluate every stage's model on the same held-out split and write the stage comparison."""
    from .evaluation import evaluate_model
    from .report import write_stage_comparison

    options = dict(options)
    dataset = options.pop("dataset", "sft")
    data_options = options.pop("data_options", None) or {}
    data_dir = run_dir / "eval-data"
    if not isinstance(dataset, str) or not Path(dataset).exists():
        if not data_dir.exists():
            import data_builders

            data_builders.get_builder(dataset).build(progress=False, **data_options).save_to_disk(str(data_dir))
        dataset = str(data_dir)
    metrics = {}
    for name, model_dir in models.items():
        print(f"evaluating {name} ...", flush=True)
        metrics[name] = evaluate_model(str(model_dir), dataset=dataset, out_dir=run_dir / "eval" / name, **options)
    files = write_stage_comparison(metrics, run_dir / "eval")
    return {name: {k: m[k] for k in ("accuracy", "parse_rate") if k in m} for name, m in metrics.items()} | {
        "comparison": str(files.get("markdown", run_dir / "eval"))}


def print_summary(summary: dict, run_dir: Path) -> None:
    print("\n== mathalign pipeline finished ==")
    for name, seconds in summary["stage_seconds"].items():
        print(f"  {name:<10} trained in {seconds:7.1f} s")
    evaluation = summary.get("evaluation") or {}
    for name, m in evaluation.items():
        if isinstance(m, dict) and "accuracy" in m:
            print(f"  {name:<10} accuracy {100 * m['accuracy']:5.1f}%")
    if evaluation:
        print(f"report:  {evaluation['comparison']}  (plots and per-type tables under {run_dir / 'eval'})")
    last = list(summary["models"].values())[-1] if summary["models"] else None
    if last:
        print(f"chat:    mathalign chat {last}")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mathalign.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", help="a pipeline YAML file, e.g. recipes/pipeline.yaml")
    parser.add_argument("--run_dir", default=None, help="where every stage writes (default: the file's run_dir)")
    parser.add_argument("--skip_eval", action="store_true", help="train only; no evaluation at the end")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.WARNING, datefmt="%H:%M:%S")
    args = make_parser().parse_args(argv)
    try:
        run_pipeline(args.pipeline, args.run_dir, args.skip_eval)
    except (RecipeError, FileNotFoundError) as err:
        print(f"mathalign pipeline: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The whole recipe chain in one run directory: pretrain -> SFT -> DPO -> GRPO -> evaluation and stage comparison.

    mathalign quickstart                                  # recipes/pipeline.yaml into runs/quickstart
    python -m mathalign.pipeline recipes/pipeline.yaml --run_dir runs/try

A pipeline file names a `run_dir`, the `evaluation` to run at the end, and `stages`: an ordered mapping of stage
name -> recipe keys (the same keys as recipes/*.yaml). Each stage starts from the previous stage's model (or from
the earlier stage named by `start_from`, to compare methods side by side); a LoRA stage is merged into a plain
checkpoint before the next one starts. A stage whose output exists is skipped, and an
interrupted stage resumes from its last checkpoint, so re-running the same command continues where it stopped.

A stage with `num_processes: N` (and optionally `accelerate_config`) runs in its own `accelerate launch` as
`mathalign train --num_processes N` would: DDP over N processes (GPUs, or gloo on a CPU), or the named
DeepSpeed/FSDP config. `per_device_train_batch_size` is then per process. On a machine with fewer GPUs than N,
the stage runs on the GPUs there are, each process taking a proportionally larger batch: the global batch, and so
the recipe's meaning, stays the same (the default pipeline's 2 CPU processes become 1 process on 1 GPU).
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import NamedTuple

import yaml

from .errors import RecipeError, StageFailed, UserError
from .recipe import load_recipe, parse_recipe

logger = logging.getLogger("mathalign.pipeline")

PIPELINE_KEYS = {"run_dir", "stages", "evaluation"}
EVALUATION_KEYS = {"dataset", "data_options", "split", "num_samples", "batch_size"}
LAUNCH_KEYS = ("num_processes", "accelerate_config")  # how a stage is started
STAGE_KEYS = ("start_from", *LAUNCH_KEYS)  # what a stage may hold beside its recipe keys: the pipeline's, not train's


class Stage(NamedTuple):
    name: str
    recipe: dict  # the stage's recipe keys with output_dir and model_name_or_path filled in
    parsed: tuple  # what `train.main` takes
    launch: dict  # num_processes / accelerate_config: run in its own `accelerate launch`; empty: in this process


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


def stage_recipes(pipeline: dict, run_dir: Path, where: str) -> list[Stage]:
    """Each stage's recipe with its output_dir and starting model filled in, parsed (so checked) before anything
    runs."""
    from .train import check_lora_targets, local_model_type

    recipes, previous, finished, model_types = [], None, {}, {}
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
        launch = {key: keys.pop(key) for key in LAUNCH_KEYS if key in keys}
        recipe = {"stage": name, **keys, "output_dir": str(run_dir / name)}
        check_launch(launch, recipe, f"{where}: stage {name!r}")
        if previous is not None and "model_name_or_path" not in keys:
            recipe["model_name_or_path"] = str(final_model_dir(run_dir, *previous))
            model_types[name] = model_types[previous[0]]  # the model of an earlier stage, trained further
        else:
            model_types[name] = local_model_type(keys.get("model_name_or_path"))
        parsed = parse_recipe([], recipe=recipe, where=f"{where} (stage {name!r})")  # fail now, not an hour in
        check_lora_targets(parsed[1], model_types[name], f"{where} (stage {name!r})")
        recipes.append(Stage(name, recipe, parsed, launch))
        previous = finished[name] = (name, bool(recipe.get("use_peft")))
    return recipes


def check_launch(launch: dict, recipe: dict, where: str) -> None:
    """Refuse a launch that could not start, before anything trains."""
    from .launch import accelerate_command
    from .recipe import SECRET_KEYS

    processes = launch.get("num_processes")
    secrets = sorted(set(SECRET_KEYS) & set(recipe))
    if launch and secrets:  # the launched stage reads its recipe from a file in run_dir: a token does not belong there
        raise RecipeError(f"{where}: a stage with {' / '.join(launch)} cannot take {secrets} in the pipeline file; "
                          "set the HF_TOKEN environment variable (or `hf auth login`) instead.")
    try:
        accelerate_command("recipe.yaml", [], processes, launch.get("accelerate_config"))
    except UserError as err:
        raise RecipeError(f"{where}: {err}") from None


def count_accelerators() -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return torch.xpu.device_count()
    return 1 if torch.backends.mps.is_available() else 0


def fit_to_devices(stage: Stage, accelerators: int, where: str = "pipeline") -> Stage:
    """The stage as it runs on a machine with `accelerators` GPUs: `num_processes: N` needs N of them, so with fewer
    it runs on as many as divide N, each with N/processes times the per-device batch (the same global batch).
    CPU-only machines (0) and stages with an accelerate_config run as written."""
    wanted = stage.launch.get("num_processes") or 1
    if wanted <= 1 or accelerators == 0 or accelerators >= wanted or stage.launch.get("accelerate_config"):
        return stage
    processes = max(d for d in range(1, accelerators + 1) if wanted % d == 0)
    batch = stage.parsed[2].per_device_train_batch_size * (wanted // processes)
    recipe = {**stage.recipe, "per_device_train_batch_size": batch}
    parsed = parse_recipe([], recipe=recipe, where=f"{where} (stage {stage.name!r})")
    print(f"{stage.name}: {accelerators} GPU(s) for num_processes: {wanted} -> {processes} process(es) with "
          f"per_device_train_batch_size {batch} (the same global batch)", flush=True)
    return Stage(stage.name, recipe, parsed, {"num_processes": processes} if processes > 1 else {})


def launch_stage(stage: Stage, run_dir: Path) -> None:
    """Train a stage in its own `accelerate launch` (the recipe is written next to its output first)."""
    from .launch import launch
    from .recipe import plain_recipe

    path = run_dir / f"{stage.name}.recipe.yaml"
    path.write_text(yaml.safe_dump(plain_recipe(stage.recipe), sort_keys=False))
    code = launch(str(path), [], stage.launch.get("num_processes"), stage.launch.get("accelerate_config"))
    if code != 0:
        raise StageFailed(f"stage {stage.name!r} exited with status {code} (its log is above); fix it and run the "
                          "same command again: finished stages are skipped and this one resumes.")


def final_model_dir(run_dir: Path, name: str, uses_lora: bool) -> Path:
    """Where a stage's usable model ends up: its output dir, or the merged copy of a LoRA stage."""
    return run_dir / f"{name}-merged" if uses_lora else run_dir / name


def stage_is_done(output_dir: Path, final: Path) -> bool:
    """save_run writes train_results.json last, and a LoRA stage's merged copy appears whole (renamed into place):
    with both there, the stage finished."""
    from .train import finished_run

    return finished_run(output_dir) is not None and final.is_dir()


def merge_stage(output_dir: Path, final: Path) -> None:
    """Merge a LoRA stage into `final`, which appears only once complete (written beside it, then renamed)."""
    import shutil

    from .merge import merge_adapter

    partial = final.with_name(final.name + ".partial")
    for path in (partial, final):  # left by a merge that was interrupted
        if path.exists():
            shutil.rmtree(path)
    merge_adapter(str(output_dir), str(partial))
    partial.rename(final)


def run_pipeline(path, run_dir: str | None = None, skip_eval: bool = False) -> dict:
    """Run (or continue) every stage of a pipeline file, then evaluate and compare the stages."""
    from .launch import needs_launcher
    from .train import main as train_stage

    pipeline = load_pipeline(path)
    run_dir = Path(run_dir or pipeline.get("run_dir") or "runs/pipeline")
    recipes = stage_recipes(pipeline, run_dir, str(path))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "pipeline.yaml").write_text(yaml.safe_dump(redact_pipeline({**pipeline, "run_dir": str(run_dir)}),
                                                          sort_keys=False))

    timings, models = {}, {}
    for index, stage in enumerate(recipes, 1):
        name, recipe = stage.name, stage.recipe
        output_dir, uses_lora = Path(recipe["output_dir"]), bool(recipe.get("use_peft"))
        final = final_model_dir(run_dir, name, uses_lora)
        print(f"[{index}/{len(recipes)}] {name}: ", end="", flush=True)
        if stage_is_done(output_dir, final):
            print(f"done already ({final}), skipped", flush=True)
        else:
            print(f"training into {output_dir}", flush=True)
            start = time.time()
            stage = fit_to_devices(stage, count_accelerators(), str(path))
            if needs_launcher(stage.launch.get("num_processes"), stage.launch.get("accelerate_config")):
                launch_stage(stage, run_dir)
            else:
                train_stage(*stage.parsed)
            if uses_lora:
                merge_stage(output_dir, final)
            timings[name] = round(time.time() - start, 1)
        models[name] = final

    summary = {"run_dir": str(run_dir), "stage_seconds": timings, "models": {k: str(v) for k, v in models.items()}}
    if not skip_eval and pipeline.get("evaluation") is not None:
        summary["evaluation"] = evaluate_stages(models, pipeline["evaluation"], run_dir)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary, run_dir)
    return summary


def redact_pipeline(pipeline: dict) -> dict:
    """The pipeline as written to run_dir/pipeline.yaml: every stage without tokens or secret `env` entries."""
    from .recipe import redact

    stages = {name: redact(keys) if isinstance(keys, dict) else keys
              for name, keys in (pipeline.get("stages") or {}).items()}
    return {**pipeline, "stages": stages}


def evaluate_stages(models: dict[str, Path], options: dict, run_dir: Path) -> dict:
    """Evaluate every stage's model on the same held-out splits (by default `test` and every `test_*` split the
    data has) and write the stage comparison; returns each stage's accuracy, overall and per split."""
    from .evaluation import evaluate_model
    from .report import write_stage_comparison

    options = dict(options)
    dataset = options.pop("dataset", "sft")
    data_options = options.pop("data_options", None) or {}
    data_dir = run_dir / "eval-data"
    if not isinstance(dataset, str) or not Path(dataset).exists():
        # Built once and reused by later runs, unless the file now asks for other problems (its record differs).
        record, wanted = run_dir / "eval-data.json", json.dumps({"dataset": dataset, **data_options}, sort_keys=True)
        if not data_dir.exists() or not record.is_file() or record.read_text() != wanted:
            import shutil

            import data_builders

            shutil.rmtree(data_dir, ignore_errors=True)
            data_builders.get_builder(dataset).build(progress=False, **data_options).save_to_disk(str(data_dir))
            record.write_text(wanted)
        dataset = str(data_dir)
    metrics = {}
    for name, model_dir in models.items():
        print(f"evaluating {name} ...", flush=True)
        metrics[name] = evaluate_model(str(model_dir), dataset=dataset, out_dir=run_dir / "eval" / name, **options)
    files = write_stage_comparison(metrics, run_dir / "eval")
    summary = {name: {**{k: m[k] for k in ("accuracy", "parse_rate") if k in m},
                      "splits": {split: sm["accuracy"] for split, sm in (m.get("splits") or {}).items()}}
               for name, m in metrics.items()}
    return summary | {"comparison": str(files.get("markdown", run_dir / "eval"))}


def print_summary(summary: dict, run_dir: Path) -> None:
    print("\n== mathalign pipeline finished ==")
    for name, seconds in summary["stage_seconds"].items():
        print(f"  {name:<10} trained in {seconds:7.1f} s")
    evaluation = summary.get("evaluation") or {}
    stages = [name for name, m in evaluation.items() if isinstance(m, dict) and "accuracy" in m]
    for name in stages:
        splits = evaluation[name].get("splits") or {}
        held_out = "".join(f", {split} {100 * a:5.1f}%" for split, a in list(splits.items())[1:])
        print(f"  {name:<10} accuracy {100 * evaluation[name]['accuracy']:5.1f}%{held_out}")
    final_metrics = run_dir / "eval" / stages[-1] / "metrics.json" if stages else None
    if final_metrics is not None and final_metrics.is_file():  # where the final model is brittle, in one table
        from .report import split_type_text

        print()
        print(split_type_text(json.loads(final_metrics.read_text()), f"{stages[-1]}: accuracy per type and split"))
        print()
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
    except (UserError, FileNotFoundError) as err:
        print(f"mathalign pipeline: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

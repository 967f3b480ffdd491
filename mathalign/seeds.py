"""One pipeline under several seeds: each seed a whole run, with its own data draw and training seed, in its own
directory, one after another; a finished seed is reused and an interrupted one resumes.

    >>> from mathalign.seeds import load_pipeline, run_seeds, split_type_accuracies
    >>> runs = run_seeds(load_pipeline("recipes/pipeline.yaml"), [0, 1, 2], "runs/quickstart-seeds")
    >>> {run.seed: split_type_accuracies(run.metrics("grpo")) for run in runs}
    {0: {'test': {'a_plus_b': 1.0, ..., 'all': 0.995}, 'test_surface': {...}}, 1: ..., 2: ...}

`benchmarks/seeds.py` prints accuracy per split and type over seeds (mean, min, max); `benchmarks/alignment_lab.py
--seeds` the share of errors each method removes, with intervals. Layout: RUN_DIR/seed-SEED/ holds the seeded
pipeline file, every stage, `eval/` and `seed_run.json` (the file it ran and its wall time), written once the run
finished. A seed whose `seed_run.json` names the same file is not run again (`reuse_finished`); any other is run
through `run_pipeline`, which skips the stages already trained there. Changing a stage's training keys does not
retrain a finished stage: use another RUN_DIR for that.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import yaml

from .pipeline import load_pipeline, run_pipeline

RECORD = "seed_run.json"


def seed_dir(root, seed: int) -> Path:
    return Path(root) / f"seed-{seed}"


def seeded_pipeline(pipeline: dict, seed: int) -> dict:
    """The pipeline with every data build and every stage's training seeded by `seed` (one seed for all builds, so
    the held-out splits stay the same for every stage and `train_offset` segments stay disjoint)."""
    pipeline = copy.deepcopy(pipeline)
    for keys in pipeline["stages"].values():
        keys["seed"] = seed
        if isinstance(keys.get("data_options"), dict):
            keys["data_options"] = {**keys["data_options"], "seed": seed}
    evaluation = pipeline.get("evaluation") or {}
    if isinstance(evaluation.get("data_options"), dict):
        evaluation["data_options"] = {**evaluation["data_options"], "seed": seed}
    return pipeline


def on_splits(pipeline: dict, splits: str | Sequence[str]) -> dict:
    """The pipeline evaluated on `splits` (e.g. `validation` while tuning), every row of each (no `num_samples`).

    When the evaluation data is built from `data_options`, a split it would not build (`num_validation_surface`
    missing or 0) gets the size of its base split (`num_validation`), so `--splits validation validation_surface`
    works with a file that only sizes `validation`."""
    pipeline = copy.deepcopy(pipeline)
    evaluation = {k: v for k, v in (pipeline.get("evaluation") or {}).items() if k != "num_samples"}
    evaluation["split"] = splits if isinstance(splits, str) else list(splits)
    data = evaluation.get("data_options")
    if isinstance(data, dict):
        names = [s.strip() for s in splits.split(",")] if isinstance(splits, str) else list(splits)
        for split in names:
            base = next((b for b in ("validation", "test") if split.startswith(b + "_")), None)
            if base and not data.get(f"num_{split}") and data.get(f"num_{base}"):
                data[f"num_{split}"] = data[f"num_{base}"]
    pipeline["evaluation"] = evaluation
    return pipeline


class SeedRun(NamedTuple):
    seed: int
    run_dir: Path
    summary: dict  # what run_pipeline returned (or wrote to summary.json, for a reused seed)
    wall_seconds: float | None  # the whole pipeline's wall time, from a call that ran every stage; None if unknown
    call_seconds: float  # this call's wall time (0 for a reused seed)
    reused: bool  # the seed had finished with the same file: nothing was run

    @property
    def stages(self) -> list[str]:
        return list(self.summary.get("models", {}))

    def metrics(self, stage: str) -> dict:
        """The stage's evaluation metrics (`evaluate_model`'s result, from its metrics.json)."""
        path = self.run_dir / "eval" / stage / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: seed {self.seed} has no evaluation of stage {stage!r}.")
        return json.loads(path.read_text())


def run_seed(pipeline: dict, seed: int, root, file_name: str = "pipeline.yaml",
             reuse_finished: bool = True) -> SeedRun:
    """Run (or continue, or reuse) the pipeline seeded by `seed` in ROOT/seed-SEED."""
    run_dir = seed_dir(root, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(seeded_pipeline(pipeline, seed), sort_keys=False)
    record_path = run_dir / RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    summary_path = run_dir / "summary.json"
    if reuse_finished and record.get("pipeline_file") == text and summary_path.is_file():
        print(f"\n== seed {seed}: {run_dir} == finished already, reused", flush=True)
        return SeedRun(seed, run_dir, json.loads(summary_path.read_text()), record.get("wall_seconds"), 0.0, True)
    path = run_dir / file_name
    path.write_text(text)
    print(f"\n== seed {seed}: {run_dir} ==", flush=True)
    start = time.time()
    summary = run_pipeline(path, run_dir=str(run_dir))
    seconds = round(time.time() - start, 1)
    complete = set(summary.get("stage_seconds", {})) == set(summary.get("models", {}))  # every stage trained now
    wall = seconds if complete else record.get("wall_seconds")  # a resumed run's own time is not the whole run's
    record_path.write_text(json.dumps({"seed": seed, "wall_seconds": wall, "last_call_seconds": seconds,
                                       "pipeline_file": text}, indent=2) + "\n")
    return SeedRun(seed, run_dir, summary, wall, seconds, False)


def run_seeds(pipeline: dict, seeds: Iterable[int], root, file_name: str = "pipeline.yaml",
              reuse_finished: bool = True) -> list[SeedRun]:
    """`run_seed` for every seed, one after another."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("give at least one seed.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}.")
    return [run_seed(pipeline, seed, root, file_name, reuse_finished) for seed in seeds]


def read_results(eval_dir: Path, stages: list[str]) -> dict[str, "np.ndarray"]:
    """{split: (problems x stages) 0/1 matrix} from each stage's samples.jsonl, problems matched by prompt."""
    import numpy as np

    per_stage = {}
    for stage in stages:
        rows = [json.loads(line) for line in (eval_dir / stage / "samples.jsonl").read_text().splitlines() if line]
        per_stage[stage] = {(r["split"], r["prompt"]): bool(r["correct"]) for r in rows}
    keys = sorted(set.intersection(*(set(r) for r in per_stage.values())))
    splits = sorted({split for split, _ in keys})
    return {split: np.array([[per_stage[s][k] for s in stages] for k in keys if k[0] == split], dtype=float)
            for split in splits}


def split_type_accuracies(metrics: dict) -> dict[str, dict[str, float]]:
    """{split: {type: accuracy, ..., "all": accuracy}} from an `evaluate_model` result."""
    splits = metrics.get("splits") or {metrics.get("split", "test"): metrics}
    return {split: {**m.get("accuracy_per_type", {}), "all": m["accuracy"]} for split, m in splits.items()}


def split_type_counts(metrics: dict) -> dict[str, dict[str, int]]:
    """{split: {type: problems, ..., "all": problems}}, the same shape as `split_type_accuracies`."""
    splits = metrics.get("splits") or {metrics.get("split", "test"): metrics}
    return {split: {**m.get("count_per_type", {}), "all": m.get("num_samples")} for split, m in splits.items()}


__all__ = ["SeedRun", "load_pipeline", "on_splits", "read_results", "run_seed", "run_seeds", "seed_dir",
           "seeded_pipeline", "split_type_accuracies", "split_type_counts"]

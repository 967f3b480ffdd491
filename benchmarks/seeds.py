"""A pipeline under several seeds: accuracy per split and per type as the mean, the worst and the best seed.

    python benchmarks/seeds.py recipes/pipeline.yaml --seeds 0 1 2
    python benchmarks/seeds.py recipes/pipeline.yaml --seeds 0 1 2 --target 0.99 0.98   # mark cells below
    python benchmarks/seeds.py recipes/pipeline.yaml --splits validation validation_surface validation_uniform

Each seed is a whole run of the pipeline (every data build and every stage's training seeded by SEED) in
RUN_DIR/seed-SEED (RUN_DIR defaults to the file's run_dir + `-seeds`), one after another. A seed that finished with
the same file is reused as it is; an interrupted one resumes (finished stages are skipped), so re-running the same
command continues where it stopped. `--splits` evaluates other splits, every row of each (tune on the validation
splits; look at test once); a `validation_*` or `test_*` split the file does not size gets its base split's size.

The seed runs themselves (`seeded_pipeline`, `on_splits`, `run_seeds`, `read_results`) are shared with
benchmarks/alignment_lab.py, which imports them from here. Layout: RUN_DIR/seed-SEED/ holds the seeded pipeline
file, every stage, `eval/` and `seed_run.json` (the file it ran and its wall time), written once the run finished.
Changing a stage's training keys does not retrain a stage finished in RUN_DIR: use another RUN_DIR for that.

Printed: per stage, overall accuracy on each split over seeds; for one stage (`--stage`, default the final one), a
table with a row per problem type and a column per split, each cell `mean (min-max)` over seeds, marked `!` where
the worst seed is below `--target` (one value for every row, or two: the `all` row, then each type); each run's wall
time. Written: RUN_DIR/seeds.json (every stage, split, type and seed) and RUN_DIR/seeds.png.
"""

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads distort timings on a shared CPU

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WALL_LIMIT_S = 15 * 60  # issue 24: each seed's whole pipeline in at most 15 minutes on 2 CPU cores


def _fraction(value: str) -> float:
    """0.99, or 99 meaning 99%."""
    number = float(value)
    number = number / 100 if 1 < number <= 100 else number
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"a target is an accuracy in (0, 1] (or a percentage), got {value}")
    return number


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", help="a pipeline file, e.g. recipes/pipeline.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED",
                        help="one whole run per seed (data and training seeds set to SEED) (default: 0 1 2)")
    parser.add_argument("--run_dir", default=None,
                        help="where the runs go, one RUN_DIR/seed-SEED each (default: the file's run_dir + -seeds)")
    parser.add_argument("--splits", "--split", nargs="+", default=None, metavar="SPLIT",
                        help="evaluate these splits, every row (default: the file's evaluation: test and every "
                             "test_* split); tune on validation splits")
    parser.add_argument("--stage", default=None, help="the stage whose per-type table is printed (default: the last)")
    parser.add_argument("--target", "--targets", type=_fraction, nargs="+", default=None, metavar="ACC",
                        help="mark cells whose worst seed is below: one accuracy for every row, or two (the `all` "
                             "row, then each type), e.g. --target 0.99 0.98")
    parser.add_argument("--json", action="store_true", help="print seeds.json as well")
    return parser


def check_args(args: argparse.Namespace) -> None:
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"seeds.py: error: --seeds repeat: {args.seeds}")
    if args.target is not None and len(args.target) > 2:
        raise SystemExit("seeds.py: error: --target takes one accuracy (every row) or two (the `all` row, then each "
                         f"type), got {len(args.target)}")


# --- seed runs (shared with alignment_lab.py) ----------------------------------------------------------------------

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
    import yaml

    from mathalign.pipeline import run_pipeline

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
    """{split: (problems x stages) 0/1 matrix} from each stage's samples.jsonl, problems matched by prompt; splits in
    the order a DatasetDict lists them (data_builders' SPLITS: test, test_surface, test_uniform, test_ood)."""
    import numpy as np

    from data_builders.options import SPLITS

    per_stage = {}
    for stage in stages:
        rows = [json.loads(line) for line in (eval_dir / stage / "samples.jsonl").read_text().splitlines() if line]
        per_stage[stage] = {(r["split"], r["prompt"]): bool(r["correct"]) for r in rows}
    keys = sorted(set.intersection(*(set(r) for r in per_stage.values())))
    splits = sorted({split for split, _ in keys}, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))
    return {split: np.array([[per_stage[s][k] for s in stages] for k in keys if k[0] == split], dtype=float)
            for split in splits}


def split_type_accuracies(metrics: dict) -> dict[str, dict[str, float]]:
    """{split: {type: accuracy, ..., "all": accuracy}} from an `evaluate_model` result."""
    from mathalign.report import split_metrics

    return {split: {**m.get("accuracy_per_type", {}), "all": m["accuracy"]}
            for split, m in split_metrics(metrics).items()}


def split_type_counts(metrics: dict) -> dict[str, dict[str, int]]:
    """{split: {type: problems, ..., "all": problems}}, the same shape as `split_type_accuracies`."""
    from mathalign.report import split_metrics

    return {split: {**m.get("count_per_type", {}), "all": m.get("num_samples")}
            for split, m in split_metrics(metrics).items()}


# --- over seeds --------------------------------------------------------------------------------------------------


def aggregate(per_seed: dict[int, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    """{seed: {split: {type: accuracy}}} -> {split: {type: {mean, min, max, seeds, values}}} over the seeds that
    evaluated that split and type (`seeds` counts them; `values` maps each seed to its accuracy)."""
    if not per_seed:
        raise ValueError("no seeds to aggregate.")
    table: dict[str, dict[str, dict]] = {}
    for seed, splits in per_seed.items():
        for split, types in splits.items():
            for name, accuracy in types.items():
                if accuracy is not None:
                    table.setdefault(split, {}).setdefault(name, {})[seed] = accuracy
    result = {}
    for split, types in table.items():
        ordered = [t for t in types if t != "all"] + (["all"] if "all" in types else [])
        result[split] = {
            name: {"mean": statistics.fmean(types[name].values()), "min": min(types[name].values()),
                   "max": max(types[name].values()), "seeds": len(types[name]),
                   "values": {str(seed): value for seed, value in types[name].items()}}
            for name in ordered
        }
    return result


def target_for(name: str, target: list[float] | None) -> float | None:
    """The accuracy a row must reach: `target` is [every row] or [the `all` row, each type]."""
    if not target:
        return None
    return target[0] if name == "all" or len(target) == 1 else target[1]


def misses(table: dict[str, dict[str, dict]], target: list[float] | None) -> list[tuple[str, str, float]]:
    """(split, type, worst seed's accuracy) for every cell whose worst seed is below its target."""
    found = []
    for split, types in table.items():
        for name, cell in types.items():
            wanted = target_for(name, target)
            if wanted is not None and cell["min"] < wanted - 1e-12:
                found.append((split, name, cell["min"]))
    return found


def format_cell(cell: dict | None, wanted: float | None = None) -> str:
    """`mean% (min-max)`, `!` after it when the worst seed is below `wanted`; one seed: just its accuracy."""
    if cell is None:
        return "-" if wanted is None else "-  "
    mark = "" if wanted is None else " !" if cell["min"] < wanted - 1e-12 else "  "  # (marked or not, aligned)
    if cell["seeds"] == 1 or cell["min"] == cell["max"]:
        return f"{100 * cell['mean']:.1f}%{mark}"
    return f"{100 * cell['mean']:.1f}% ({100 * cell['min']:.1f}-{100 * cell['max']:.1f}){mark}"


def format_table(table: dict[str, dict[str, dict]], target: list[float] | None = None, first: str = "type") -> str:
    """Rows = types (then `all`), columns = splits, `mean (min-max)` per cell."""
    splits = list(table)
    rows: list[str] = []
    for types in table.values():
        rows += [t for t in types if t not in rows and t != "all"]
    if any("all" in types for types in table.values()):
        rows.append("all")
    cells = {(r, s): format_cell(table[s].get(r), target_for(r, target)) for r in rows for s in splits}
    label = max(len(first), *(len(r) for r in rows))
    widths = {s: max(len(s), *(len(cells[r, s]) for r in rows)) for s in splits}
    lines = [f"{first:<{label}}  " + "  ".join(f"{s:>{widths[s]}}" for s in splits)]
    for r in rows:
        lines.append(f"{r:<{label}}  " + "  ".join(f"{cells[r, s]:>{widths[s]}}" for s in splits))
    return "\n".join(lines)


def stages_overview(per_stage: dict[str, dict[str, dict[str, dict]]]) -> dict[str, dict[str, dict]]:
    """{split: {stage: the `all` cell}}: every stage's overall accuracy, in `format_table`'s shape."""
    overview: dict[str, dict[str, dict]] = {}
    for stage, table in per_stage.items():
        for split, types in table.items():
            if "all" in types:
                overview.setdefault(split, {})[stage] = types["all"]
    return overview


def format_wall_times(wall: dict[int, float | None], limit: float = WALL_LIMIT_S) -> str:
    """`seed 0: 812 s, seed 1: ...` with the slowest, marked when over the limit."""
    parts = [f"seed {seed}: " + ("unknown (resumed)" if s is None else f"{s:.0f} s") for seed, s in wall.items()]
    known = [s for s in wall.values() if s is not None]
    text = "wall time per run (whole pipeline): " + ", ".join(parts)
    if known:
        text += f"; slowest {max(known):.0f} s" + (f" > {limit:.0f} s !" if max(known) > limit else "")
    return text


def plot_seeds(table: dict[str, dict[str, dict]], out_png, title: str, target: list[float] | None = None) -> Path:
    """A row of types (then `all`); for each split a marker at the mean over seeds and a bar from the worst to the
    best seed; dashed lines at the targets."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    from mathalign.report import COLORS

    splits = list(table)
    rows: list[str] = []
    for types in table.values():
        rows += [t for t in types if t not in rows and t != "all"]
    rows.append("all")
    fig = Figure(figsize=(max(6.5, 0.75 * len(rows) + 2.5), 4.2))
    ax = fig.add_subplot()
    width = 0.7 / max(1, len(splits))
    lows = []
    for i, split in enumerate(splits):
        xs, means, below, above = [], [], [], []
        for x, row in enumerate(rows):
            cell = table[split].get(row)
            if cell is None:
                continue
            xs.append(x + (i - (len(splits) - 1) / 2) * width)
            means.append(100 * cell["mean"])
            below.append(100 * (cell["mean"] - cell["min"]))
            above.append(100 * (cell["max"] - cell["mean"]))
            lows.append(100 * cell["min"])
        ax.errorbar(xs, means, yerr=[below, above], fmt="o", markersize=5, capsize=3, label=split,
                    color=COLORS[i % len(COLORS)])
    for value in sorted(set(target or [])):
        ax.axhline(100 * value, color="#888888", linestyle="--", linewidth=1)
        ax.text(len(rows) - 0.5, 100 * value, f" {100 * value:g}%", va="center", fontsize=8, color="#666666")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(rows, rotation=30 if len(rows) > 5 else 0, ha="right" if len(rows) > 5 else "center")
    floor = min(lows + [100 * min(target or [1.0])]) if lows else 0
    ax.set_ylim(max(0.0, floor - max(2.0, 0.1 * (100 - floor))), 100.5)
    ax.yaxis.set_major_formatter(PercentFormatter(100))
    ax.set_ylabel("exact-match accuracy")
    ax.set_title(title, fontsize=11, fontweight="bold", loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    return out_png


# --- running ------------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> dict:
    from mathalign.pipeline import load_pipeline

    check_args(args)
    pipeline = load_pipeline(args.pipeline)
    if pipeline.get("evaluation") is None:
        raise SystemExit(f"seeds.py: error: {args.pipeline} has no `evaluation`: nothing to compare over seeds")
    if args.splits:
        pipeline = on_splits(pipeline, args.splits)
    root = Path(args.run_dir or f"{pipeline.get('run_dir') or 'runs/pipeline'}-seeds")
    runs = run_seeds(pipeline, args.seeds, root, file_name=Path(args.pipeline).name)
    stages = runs[0].stages
    if args.stage is not None and args.stage not in stages:
        raise SystemExit(f"seeds.py: error: no stage {args.stage!r}; the stages are {', '.join(stages)}")
    stage = args.stage or stages[-1]
    per_stage = {s: aggregate({run.seed: split_type_accuracies(run.metrics(s)) for run in runs}) for s in stages}
    counts = split_type_counts(runs[0].metrics(stage))
    wall = {run.seed: run.wall_seconds for run in runs}
    table = per_stage[stage]

    seeds = [run.seed for run in runs]
    print(f"\n{len(seeds)} seed{'s' if len(seeds) > 1 else ''} {seeds}, {root}: accuracy mean (worst-best seed)")
    print("\nevery stage, all types:")
    print(format_table(stages_overview(per_stage), first="stage"))
    note = "" if not args.target else f"; ! = worst seed below {100 * args.target[0]:g}%" + (
        f" (all) / {100 * args.target[1]:g}% (each type)" if len(args.target) == 2 else "")
    print(f"\n{stage}{' (final stage)' if stage == stages[-1] else ''}, per type and split{note}:")
    print(format_table(table, args.target))
    print("problems per split: " + ", ".join(f"{s} {c.get('all')}" for s, c in counts.items()))
    print(format_wall_times(wall))
    missed = misses(table, args.target)
    if args.target:
        cells = sum(len(types) for types in table.values())
        worst = sorted(missed, key=lambda m: m[2])[:5]
        print(f"targets: {'every cell met' if not missed else f'{len(missed)} of {cells} cells below (marked !)'}"
              + ("; lowest worst seeds: " if worst else "")
              + ", ".join(f"{split} {name} {100 * low:.1f}%" for split, name, low in worst))

    report = {"pipeline": str(args.pipeline), "run_dir": str(root), "seeds": seeds, "stages": stages,
              "stage": stage, "splits": table, "per_stage": per_stage, "problems": counts,
              "wall_seconds": {str(k): v for k, v in wall.items()}, "target": args.target,
              "below_target": [{"split": s, "type": t, "min": v} for s, t, v in missed]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "seeds.json").write_text(json.dumps(report, indent=2) + "\n")
    png = plot_seeds(table, root / "seeds.png", f"{stage}: accuracy over seeds {seeds} (mean, worst-best)",
                     args.target)
    print(f"\nwritten: {root / 'seeds.json'}, {png}")
    if args.json:
        print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(make_parser().parse_args())

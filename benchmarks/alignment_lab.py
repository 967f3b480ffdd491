"""The alignment lab: how many of an SFT model's errors do DPO and GRPO each remove, in at most 5 CPU-minutes?

    python benchmarks/alignment_lab.py                               # recipes/alignment_lab.yaml into runs/alignment_lab
    python benchmarks/alignment_lab.py --run_dir runs/lab2 --split validation

The lab is a pipeline file (`recipes/alignment_lab.yaml`, also runnable as `mathalign pipeline ...`): a MathGPT
stopped on purpose once it answers 65% of held-out problems (the SFT model, `stop_at_accuracy`; the lab wants
60-85%), then DPO and GRPO, each starting from that same SFT model (`start_from: sft`), so their effects can be
compared side by side, on prompts SFT never saw (`train_offset`). DPO trains on the SFT model's own wrong answers
(`negatives: [sampled]`); GRPO on exact correctness rewards; a control, `sft_more`, on the right answers alone with
DPO's adapter, steps and learning rate.
Every model is evaluated with greedy decoding on the same held-out problems, and the table gives each stage's share
of the SFT model's errors removed:

    error removed = (errors of SFT - errors of the method) / errors of SFT

Targets: DPO >= 50%, GRPO >= 60%, each in at most 5 minutes of training; over seeds, on the worst seed, and GRPO's
paired lead over the control above zero. Stages already trained in the run directory are reused, so a second call
only re-evaluates; delete the directory (or pass another --run_dir) to retrain.

Besides `test`, the lab evaluates every model on problems it never trains on the way it trains: `test_surface`
(other spacing and operand order), `test_uniform` (operands drawn uniformly) and `test_ood` (3-digit operands); one
table per split shows whether a method's gain reaches past its training distribution.

Over several seeds (each a whole run with its own data draw and training seed, one after another, resumable):

    python benchmarks/alignment_lab.py --seeds 0 1 2

prints one table per evaluated split: each stage's accuracy and share of errors removed as the mean over seeds,
the worst seed and a 95% interval (a bootstrap over seeds and problems, `mathalign.stats`), and each method's paired
lead over the control and over SFT on the same problems; it writes the table as `seeds.json` and a plot with error
bars as `seeds.png` in the run directory, and gives the base accuracy each seed's SFT stage stopped at. The seed
runs themselves come from benchmarks/seeds.py, which runs any pipeline over seeds.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads distort timings on a shared CPU

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # (the seed runs are shared with benchmarks/seeds.py)
from seeds import on_splits, read_results
from seeds import run_seeds as run_seeded

TARGETS = {"dpo": 0.50, "grpo": 0.60}  # share of the SFT model's errors each method must remove (worst seed)
TIME_LIMIT_S = 300  # each of DPO and GRPO gets at most 5 CPU-minutes of training
BASE_BAND = (0.60, 0.85)  # the under-trained SFT model the methods start from answers this share


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(ROOT / "recipes" / "alignment_lab.yaml"),
                        help="the lab's pipeline file (default: recipes/alignment_lab.yaml)")
    parser.add_argument("--run_dir", default=None, help="where to write everything (default: the file's run_dir)")
    parser.add_argument("--split", default=None,
                        help="evaluate on this split (or comma-separated splits) instead of the file's (use "
                             "`validation` while tuning)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON as well")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="run the whole lab once per seed (data and training seeds set to SEED) in "
                             "RUN_DIR/seed-SEED, one after another, and report mean, min and 95%% intervals")
    return parser


def error_removed(base_accuracy: float, accuracy: float) -> float:
    """Share of the base model's errors that are gone (negative when a method adds errors)."""
    base_errors = 1.0 - base_accuracy
    return (base_errors - (1.0 - accuracy)) / base_errors if base_errors > 0 else 0.0


def lab_table(accuracies: dict[str, float], seconds: dict[str, float], base: str = "sft") -> list[dict]:
    """One row per stage: accuracy, training time, and for every stage after `base` (the methods, and controls such
    as more SFT on the same prompts) the share of its errors removed; the methods also get their target."""
    rows, after_base = [], False
    for stage, accuracy in accuracies.items():
        row = {"stage": stage, "accuracy": accuracy, "train_seconds": seconds.get(stage)}
        if after_base:
            row["error_removed"] = error_removed(accuracies[base], accuracy)
        if stage in TARGETS and "error_removed" in row:
            row["target"] = TARGETS[stage]
            row["met"] = row["error_removed"] >= TARGETS[stage] - 1e-9 and (row["train_seconds"] or 0) <= TIME_LIMIT_S
        after_base = after_base or stage == base
        rows.append(row)
    return rows


def base_note(accuracy: float) -> str | None:
    """A warning when the SFT model is outside the band the lab is meant to start from, else None."""
    low, high = BASE_BAND
    if low <= accuracy <= high:
        return None
    return (f"note: the SFT model answers {accuracy:.1%}, outside the {low:.0%}-{high:.0%} band the lab starts from, "
            "so the errors-removed figures are not comparable with the targets. Change the sft stage's "
            "stop_at_accuracy (or its num_train_epochs, when it never reaches it) and rerun in a new --run_dir.")


def print_table(rows: list[dict]) -> None:
    print(f"\n{'stage':<12} {'accuracy':>9} {'train s':>8} {'errors removed':>15} {'target':>7}")
    for row in rows:
        seconds = "-" if row["train_seconds"] is None else f"{row['train_seconds']:.0f}"
        removed = f"{row['error_removed']:+.1%}" if "error_removed" in row else ""
        target = f">={row['target']:.0%}" + (" ok" if row["met"] else " MISSED") if "target" in row else ""
        print(f"{row['stage']:<12} {row['accuracy']:>8.1%} {seconds:>8} {removed:>15} {target:>7}")


def main(args: argparse.Namespace) -> dict[str, list[dict]]:
    from mathalign.pipeline import load_pipeline, run_pipeline

    pipeline_path = Path(args.pipeline)
    if args.split:  # same file, another evaluation split (written next to the run, the original is untouched)
        import yaml

        pipeline = on_splits(load_pipeline(pipeline_path), args.split)  # the whole split
        run_dir = Path(args.run_dir or pipeline["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        pipeline_path = run_dir / f"alignment_lab.{args.split}.yaml"
        pipeline_path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    start = time.time()
    summary = run_pipeline(pipeline_path, run_dir=args.run_dir)
    run_dir = Path(summary["run_dir"])
    seconds = {stage: read_train_seconds(run_dir / stage) for stage in summary["models"]}
    by_split = split_accuracies(summary)
    tables = {split: lab_table(accuracies, seconds) for split, accuracies in by_split.items()}
    for split, rows in tables.items():
        print(f"\n{split}:", end="")
        print_table(rows)
    base = next(iter(by_split.values())).get("sft")  # on the first split evaluated (the file's: test)
    note = base_note(base) if base is not None else None
    if note:
        print(f"\n{note}")
    print(f"\n(wall time of this call: {time.time() - start:.0f} s; report: {summary['evaluation']['comparison']})")
    if args.json:
        print(json.dumps(tables, indent=2))
    return tables


def split_accuracies(summary: dict) -> dict[str, dict[str, float]]:
    """{split: {stage: accuracy}} from a pipeline summary, in the order the splits were evaluated (a run evaluated
    on one split without a per-split breakdown gives that split as `all`)."""
    stages = {k: v for k, v in summary["evaluation"].items() if isinstance(v, dict)}
    splits = next(iter(stages.values())).get("splits") or {}
    if not splits:
        return {"all": {stage: v["accuracy"] for stage, v in stages.items()}}
    return {split: {stage: v["splits"][split] for stage, v in stages.items()} for split in splits}


def read_train_seconds(stage_dir: Path) -> float | None:
    """The Trainer's own `train_runtime` of a stage (survives re-runs that skip the stage)."""
    path = stage_dir / "train_results.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("train_runtime")


# --- several seeds ---------------------------------------------------------------------------------------------------

CONTROL = "sft_more"


def seeds_table(results: dict[int, dict], stages: list[str]) -> dict:
    """Per split and stage: accuracy, errors removed (vs SFT), paired leads over SFT and the control, from
    {seed: {split: (problems x stages) 0/1 matrix}} (`read_results`)."""
    from mathalign import stats

    table = {}
    first = next(iter(results.values()))  # `read_results` lists the splits in their usual order
    splits = [split for split in first if all(split in r for r in results.values())]
    for split in splits:
        runs = [results[seed][split] for seed in sorted(results)]
        rows = {}
        for i, stage in enumerate(stages):
            row = {"accuracy": stats.accuracy(runs, i).as_dict()}
            if "sft" in stages and stages.index("sft") < i:
                base = stages.index("sft")
                row["errors_removed"] = stats.errors_removed(runs, i, base).as_dict()
                row["vs_sft"] = stats.paired_difference(runs, i, base).as_dict()
                if CONTROL in stages and stage != CONTROL:
                    row["vs_control"] = stats.paired_difference(runs, i, stages.index(CONTROL)).as_dict()
            rows[stage] = row
        table[split] = rows
    return table


def _interval(e: dict, signed: bool = False) -> str:
    form = "{:+.1%}" if signed else "{:.1%}"
    return f"{form.format(e['estimate'])} [{form.format(e['low'])}, {form.format(e['high'])}]"


def _points(e: dict) -> str:
    return f"{100 * e['estimate']:+.1f} [{100 * e['low']:+.1f}, {100 * e['high']:+.1f}]"


def print_seeds_table(table: dict, seeds: list[int], base_accuracies: dict, seconds: dict,
                      base_on_test: dict | None = None) -> None:
    for split, rows in table.items():
        print(f"\n{split}, {len(seeds)} seeds {seeds}: mean [95% interval], worst seed in ()")
        print(f"{'stage':<10} {'accuracy':>28} {'errors removed':>34} {'lead over control (points)':>30} "
              f"{'max train s':>12}")
        for stage, row in rows.items():
            acc = row["accuracy"]
            removed = row.get("errors_removed")
            control = row.get("vs_control")
            times = [seconds[s].get(stage) for s in seconds if seconds[s].get(stage) is not None]
            most = f"{max(times):.0f}" if times else "-"
            removed_text = f"{_interval(removed, True)} ({removed['minimum']:+.1%})" if removed else ""
            control_text = _points(control) if control else ""
            print(f"{stage:<10} {_interval(acc):>21} ({acc['minimum']:.1%}) {removed_text:>34} {control_text:>30}"
                  f" {most:>12}")
    print("\nbase (SFT) accuracy per seed, on the stop check's split: " +
          ", ".join(f"seed {s}: " + ("no check" if a is None else f"{a:.1%}") for s, a in base_accuracies.items()))
    if base_on_test:
        print("base (SFT) accuracy per seed, on test: " +
              ", ".join(f"seed {s}: {a:.1%}" for s, a in base_on_test.items()))
        outside = {s: a for s, a in base_on_test.items() if base_note(a)}
        if outside:
            low, high = BASE_BAND
            print(f"note: outside the {low:.0%}-{high:.0%} band on test: " +
                  ", ".join(f"seed {s} ({a:.1%})" for s, a in outside.items()) +
                  "; the stop check's accuracy on its validation problems is what the stop controls")


def targets_met(table: dict, seconds: dict, split: str = "test") -> dict[str, bool]:
    """The lab's targets over seeds on `split`: worst-seed errors removed, GRPO's lead over the control, time."""
    rows = table.get(split, {})
    met = {}
    for stage, target in TARGETS.items():
        if stage in rows:
            in_time = all((s.get(stage) or 0) <= TIME_LIMIT_S for s in seconds.values())
            met[f"{stage} removes >= {target:.0%} of errors (worst seed), <= {TIME_LIMIT_S} s"] = \
                rows[stage]["errors_removed"]["minimum"] >= target and in_time
    if "grpo" in rows and "vs_control" in rows["grpo"]:
        met["grpo's lead over the control: 95% interval above 0"] = rows["grpo"]["vs_control"]["low"] > 0
    return met


def plot_seeds(table: dict, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(table)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 3.6), squeeze=False, sharey=True)
    for ax, split in zip(axes[0], splits):
        stages = [s for s, row in table[split].items() if "errors_removed" in row]
        values = [table[split][s]["errors_removed"] for s in stages]
        means = [100 * v["estimate"] for v in values]
        errors = [[100 * (v["estimate"] - v["low"]) for v in values], [100 * (v["high"] - v["estimate"]) for v in values]]
        ax.bar(stages, means, yerr=errors, capsize=6, color=["#999999" if s == CONTROL else "#4C72B0" for s in stages])
        for x, v in enumerate(values):
            ax.plot([x], [100 * v["minimum"]], marker="v", color="black")
        if all(row["accuracy"]["high"] == 0 for row in table[split].values()):  # nothing to remove or add
            ax.text(0.5, 0.5, "every model: 0% right", transform=ax.transAxes, ha="center")
        ax.set_title(f"{split}: mean, 95% interval, v worst seed", fontsize=10)
        ax.axhline(0, color="black", linewidth=0.8)
    axes[0][0].set_ylabel("% of the SFT model's errors removed")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def run_seeds(args: argparse.Namespace) -> dict:
    """Run the lab once per seed (skipping finished stages), then the table over seeds, its JSON and its plot."""
    from mathalign.pipeline import load_pipeline

    pipeline = load_pipeline(args.pipeline)
    if args.split:
        pipeline = on_splits(pipeline, args.split)
    root = Path(args.run_dir or pipeline["run_dir"])
    results, base_accuracies, seconds = {}, {}, {}
    # Every seed is evaluated again (the stages trained already are skipped), so the tables are always fresh.
    for run in run_seeded(pipeline, args.seeds, root, file_name="alignment_lab.yaml", reuse_finished=False):
        stages = [s for s in run.stages if s != "pretrain"]
        results[run.seed] = read_results(run.run_dir / "eval", stages)
        seconds[run.seed] = {stage: read_train_seconds(run.run_dir / stage) for stage in stages}
        base_accuracies[run.seed] = _stopped_at(run.run_dir / "sft")
    table = seeds_table(results, stages)
    base_on_test = {seed: float(r["test"][:, stages.index("sft")].mean())
                    for seed, r in results.items() if "test" in r and "sft" in stages}
    print_seeds_table(table, args.seeds, base_accuracies, seconds, base_on_test)
    met = targets_met(table, seconds)
    for what, ok in met.items():
        print(f"  {'ok    ' if ok else 'MISSED'} {what}")
    report = {"seeds": args.seeds, "stages": stages, "splits": table, "base_accuracy_at_stop": base_accuracies,
              "base_accuracy_on_test": base_on_test,
              "train_seconds": seconds, "targets": met}
    (root / "seeds.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {root / 'seeds.json'}, {plot_seeds(table, root / 'seeds.png')}")
    return report


def _stopped_at(sft_dir: Path) -> float | None:
    """The held-out accuracy of the check that ended the SFT stage (the base's band), from its trainer state."""
    path = sft_dir / "trainer_state.json"
    if not path.is_file():
        return None
    checks = [e["eval_greedy_accuracy"] for e in json.loads(path.read_text())["log_history"]
              if "eval_greedy_accuracy" in e]
    return checks[-1] if checks else None


if __name__ == "__main__":
    arguments = make_parser().parse_args()
    run_seeds(arguments) if arguments.seeds else main(arguments)

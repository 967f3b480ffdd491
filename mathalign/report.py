"""Reports people read: metrics.json, samples.jsonl, a Markdown summary and PNG plots.

    write_report(metrics, samples, "runs/sft/eval")            # what `mathalign eval --out` writes
    plot_training_curves("runs/sft/trainer_state.json", "curves.png")
    write_stage_comparison({"base": m0, "sft": m1, "dpo": m2}, "runs/pipeline/comparison")

Plots are drawn on `matplotlib.figure.Figure` objects rendered by the Agg canvas, never through pyplot's global
state, so making a report neither opens windows nor changes the backend of the process that calls it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

# One colour per series, the same order everywhere (colour-blind friendly "tab10" subset).
COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974"]
MAX_FAILURES_SHOWN = 8


def _style(ax, title: str, xlabel: str, ylabel: str, percent: bool = False) -> None:
    ax.set_title(title, fontsize=11, fontweight="bold", loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if percent:
        ax.set_ylim(0, 105)
        ax.yaxis.set_major_formatter(PercentFormatter(100))


def _save(fig: Figure, out_png) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    return out_png


def _splits(metrics: dict) -> dict[str, dict]:
    """{split: metrics} from an `evaluate_model` result, or a single split's metrics."""
    return metrics.get("splits") or {metrics.get("split", "test"): metrics}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float | None]], counts=None) -> None:
    """Bars for each group, one per series, with the value written on top of each bar."""
    n = max(len(series), 1)
    width = 0.8 / n
    for s, (name, values) in enumerate(series.items()):
        xs = [g + (s - (n - 1) / 2) * width for g in range(len(groups))]
        heights = [100 * v if v is not None else 0 for v in values]
        bars = ax.bar(xs, heights, width=width * 0.95, label=name, color=COLORS[s % len(COLORS)])
        for bar, value in zip(bars, values):
            if value is not None:
                ax.annotate(
                    f"{100 * value:.0f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7 if n > 2 else 8,
                    xytext=(0, 1),
                    textcoords="offset points",
                )
    labels = [f"{g}\n(n={counts[i]})" if counts and counts[i] is not None else g for i, g in enumerate(groups)]
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(labels, rotation=30 if len(groups) > 5 else 0, ha="right" if len(groups) > 5 else "center")
    if len(series) > 1:
        ax.legend(frameon=False, ncols=min(len(series), 4), loc="upper center", bbox_to_anchor=(0.5, 1.0))


# ---------------------------------------------------------------------------------------------------------------
# Evaluation report


def plot_accuracy_per_type(metrics: dict, out_png, title: str | None = None) -> Path:
    """Bar chart of accuracy per problem type (bars per split: in-distribution next to out-of-distribution)."""
    splits = _splits(metrics)
    types: list[str] = []
    for split_metrics in splits.values():
        types += [t for t in split_metrics.get("accuracy_per_type", {}) if t not in types]
    groups = ["all", *types]
    series = {
        split: [m["accuracy"]] + [m.get("accuracy_per_type", {}).get(t) for t in types] for split, m in splits.items()
    }
    first = next(iter(splits.values()))
    counts = [first.get("num_samples")] + [first.get("count_per_type", {}).get(t) for t in types]
    fig = Figure(figsize=(max(6.0, 1.0 + 0.75 * len(groups) * max(1, len(splits)) ** 0.5), 4.2))
    ax = fig.add_subplot()
    _grouped_bars(ax, groups, series, counts if len(splits) == 1 else None)
    default = f"Accuracy per problem type — {metrics.get('model', '')}".rstrip(" —")
    _style(ax, title or default, "problem type", "exact-match accuracy", percent=True)
    if len(splits) > 1:
        ax.set_ylim(0, 118)  # room for the legend above the bars
    return _save(fig, out_png)


def plot_accuracy_per_difficulty(metrics: dict, out_png) -> Path:
    """Accuracy against difficulty (digits per operand, expression depth, ...), a line per split."""
    fig = Figure(figsize=(6, 3.8))
    ax = fig.add_subplot()
    for s, (split, m) in enumerate(_splits(metrics).items()):
        per = m.get("accuracy_per_difficulty", {})
        keys = sorted(per, key=lambda k: float(k) if re.fullmatch(r"-?\d+(\.\d+)?", k) else math.inf)
        ax.plot(keys, [100 * per[k] for k in keys], marker="o", label=split, color=COLORS[s % len(COLORS)])
    _style(ax, "Accuracy per difficulty", "difficulty", "exact-match accuracy", percent=True)
    if len(_splits(metrics)) > 1:
        ax.legend(frameon=False)
    return _save(fig, out_png)


def markdown_report(metrics: dict, samples: list[dict], plots: Iterable[str] = ()) -> str:
    """The Markdown summary: headline numbers per split, a per-type table, per-difficulty table, failures."""
    splits = _splits(metrics)
    lines = [f"# Evaluation of `{metrics.get('model', 'model')}`", ""]
    lines += [f"Dataset: `{metrics.get('dataset', '?')}`.", ""]
    lines += ["| split | problems | accuracy | parse rate | avg. generation length (tokens) | problems/s |"]
    lines += ["|---|---:|---:|---:|---:|---:|"]
    for split, m in splits.items():
        avg_len = m.get("avg_generation_length")
        speed = m.get("problems_per_second")
        lines.append(
            f"| {split} | {m['num_samples']} | **{_pct(m['accuracy'])}** | {_pct(m['parse_rate'])} | "
            f"{'-' if avg_len is None else f'{avg_len:.1f}'} | {'-' if speed is None else f'{speed:.1f}'} |"
        )
    for breakdown, label in (("type", "problem type"), ("difficulty", "difficulty")):
        keys: list[str] = []
        for m in splits.values():
            keys += [k for k in m.get(f"accuracy_per_{breakdown}", {}) if k not in keys]
        if not keys:
            continue
        lines += ["", f"## Accuracy per {label}", ""]
        lines.append(f"| {breakdown} | " + " | ".join(f"{s} (n)" for s in splits) + " |")
        lines.append("|---|" + "---:|" * len(splits))
        for key in keys:
            cells = []
            for m in splits.values():
                acc = m.get(f"accuracy_per_{breakdown}", {}).get(key)
                count = m.get(f"count_per_{breakdown}", {}).get(key)
                cells.append("-" if acc is None else f"{_pct(acc)} ({count})")
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    plots = list(plots)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem.replace('_', ' ')}]({Path(p).name})" for p in plots]
    failures = [s for s in samples if not s["correct"]][:MAX_FAILURES_SHOWN]
    if failures:
        lines += ["", f"## First {len(failures)} wrong answers", "", "| prompt | output | extracted | gold |"]
        lines.append("|---|---|---|---|")
        for s in failures:
            lines.append(
                f"| `{_cell(s['prompt'])}` | `{_cell(s['output'])}` | {s['extracted'] if s['extracted'] is not None else '(none)'} | {s['gold']} |"
            )
    return "\n".join(lines) + "\n"


def _cell(text: str, limit: int = 120) -> str:
    """Text that fits in one Markdown table cell inside backticks."""
    text = " ".join(str(text).split()).replace("|", "\\|").replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def find_trainer_state(checkpoint) -> Path | None:
    """The `trainer_state.json` of a training run: in the checkpoint directory, its newest `checkpoint-N`, or its
    parent (a run directory holding a `final/` model)."""
    path = Path(checkpoint)
    if not path.is_dir():
        return None
    candidates = [path / "trainer_state.json"]
    steps = sorted(path.glob("checkpoint-*/trainer_state.json"), key=lambda p: _step_of(p.parent.name))
    candidates += steps[::-1] + [path.parent / "trainer_state.json"]
    return next((c for c in candidates if c.is_file()), None)


def _step_of(name: str) -> int:
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else -1


def write_report(metrics: dict, samples: list[dict], out_dir, trainer_state=None) -> dict[str, Path]:
    """Write `metrics.json`, `samples.jsonl`, `report.md`, `accuracy_per_type.png` (+ per difficulty, + training
    curves when a `trainer_state.json` is given) into `out_dir`; returns {name: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out_dir / "metrics.json", "samples": out_dir / "samples.jsonl"}
    files["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    with files["samples"].open("w") as f:
        for sample in samples:
            f.write(json.dumps(sample, ensure_ascii=False) + "\n")
    if any(m.get("accuracy_per_type") for m in _splits(metrics).values()):
        files["accuracy_per_type"] = plot_accuracy_per_type(metrics, out_dir / "accuracy_per_type.png")
    if any(len(m.get("accuracy_per_difficulty", {})) > 1 for m in _splits(metrics).values()):
        files["accuracy_per_difficulty"] = plot_accuracy_per_difficulty(metrics, out_dir / "accuracy_per_difficulty.png")
    if trainer_state is not None:
        try:
            files["training_curves"] = plot_training_curves(trainer_state, out_dir / "training_curves.png")
        except ValueError as err:  # a state without logged values: the report is still worth having
            print(f"note: no training curves ({err})")
    plots = [p for k, p in files.items() if p.suffix == ".png"]
    files["report"] = out_dir / "report.md"
    files["report"].write_text(markdown_report(metrics, samples, plots))
    return files


# ---------------------------------------------------------------------------------------------------------------
# Training curves from trainer_state.json

# (panel title, y label, percent axis, test on a logged key with any `eval_` prefix removed). A key goes to the
# first panel that accepts it; keys no panel accepts are not plotted.
CURVE_PANELS = [
    ("Loss", "loss", False, lambda k: k in ("loss", "policy_loss")),
    ("Reward", "mean reward", False, lambda k: k == "reward" or re.fullmatch(r"rewards/.+/mean", k) is not None),
    ("DPO implicit rewards", "reward", False, lambda k: k in ("rewards/chosen", "rewards/rejected")),
    ("DPO reward margin", "chosen − rejected", False, lambda k: k == "rewards/margins"),
    ("Accuracy", "accuracy", True,
     lambda k: k in ("rewards/accuracies", "mean_token_accuracy", "greedy_accuracy")),
    ("KL to the reference", "KL (nats)", False, lambda k: k == "kl"),
    ("Token entropy", "entropy (nats)", False, lambda k: k == "entropy"),
    ("Attention entropy", "entropy (nats)", False, lambda k: k.startswith("attention_entropy/")),
    ("Completion length", "tokens", False, lambda k: k == "completions/mean_length"),
    ("Learning rate", "learning rate", False, lambda k: k == "learning_rate"),
]


def training_curves(log_history: list[dict]) -> dict[str, dict[str, tuple[list, list]]]:
    """{panel title: {key: (steps, values)}} for every logged key a panel plots."""
    panels: dict[str, dict[str, tuple[list, list]]] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        for key, value in entry.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                continue
            base = key[len("eval_") :] if key.startswith("eval_") else key
            for title, *_rest, accepts in CURVE_PANELS:
                if accepts(base):
                    steps, values = panels.setdefault(title, {}).setdefault(key, ([], []))
                    steps.append(step)
                    values.append(value)
                    break
    return panels


def _train_first(item) -> tuple[bool, str]:
    return item[0].startswith("eval_"), item[0]


def plot_training_curves(trainer_state_path, out_png) -> Path:
    """Plot loss, reward, KL, DPO margins/accuracies, entropies ... (whatever the run logged) against the step.

    Reads `log_history` from a Trainer's `trainer_state.json`; one panel per quantity, evaluation values dashed.
    Raises ValueError when the file holds nothing to plot.
    """
    path = Path(trainer_state_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (a training run writes trainer_state.json).")
    state = json.loads(path.read_text())
    panels = training_curves(state.get("log_history", []))
    if not panels:
        raise ValueError(f"{path} has no logged training values to plot")
    titles = [t for t, *_ in CURVE_PANELS if t in panels]
    cols = min(3, len(titles))
    rows = math.ceil(len(titles) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.3 * rows))
    spec = {t: (ylabel, percent) for t, ylabel, percent, _ in CURVE_PANELS}
    for i, title in enumerate(titles):
        ax = fig.add_subplot(rows, cols, i + 1)
        ylabel, percent = spec[title]
        for s, (key, (steps, values)) in enumerate(sorted(panels[title].items(), key=_train_first)):
            scale = 100 if percent else 1
            ax.plot(
                steps,
                [scale * v for v in values],
                label=key,
                color=COLORS[s % len(COLORS)],
                linestyle="--" if key.startswith("eval_") else "-",
                marker="o" if len(steps) <= 20 else None,
                markersize=3,
            )
        _style(ax, title, "step", ylabel, percent=percent)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if title == "Learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        elif not percent:
            ax.ticklabel_format(axis="y", useOffset=False)  # "5.6968", not "+5.696" above a 0.0002 axis
        if len(panels[title]) > 1 or title == "Reward":
            ax.legend(frameon=False, fontsize=7)
    fig.suptitle(f"Training curves — {path.resolve().parent.name}", fontsize=12, fontweight="bold")
    return _save(fig, out_png)


# ---------------------------------------------------------------------------------------------------------------
# Stage comparison


def _ood(metrics: dict) -> float | None:
    splits = metrics.get("splits") or {}
    return splits.get("test_ood", {}).get("accuracy")


def _stage_types(stage_metrics: dict[str, dict]) -> list[str]:
    types: list[str] = []
    for m in stage_metrics.values():
        types += [t for t in m.get("accuracy_per_type", {}) if t not in types]
    return types


def stage_comparison_markdown(stage_metrics: dict[str, dict]) -> str:
    """One table, a column per stage and a row per number (best stage in bold)."""
    stages = list(stage_metrics)
    rows: list[tuple[str, list, bool]] = [  # (label, values, is a fraction)
        ("accuracy", [m.get("accuracy") for m in stage_metrics.values()], True),
        ("parse rate", [m.get("parse_rate") for m in stage_metrics.values()], True),
    ]
    if any(_ood(m) is not None for m in stage_metrics.values()):
        rows.append(("accuracy, out of distribution", [_ood(m) for m in stage_metrics.values()], True))
    rows.append(("avg. generation length (tokens)", [m.get("avg_generation_length") for m in stage_metrics.values()], False))
    for t in _stage_types(stage_metrics):
        rows.append((f"`{t}`", [m.get("accuracy_per_type", {}).get(t) for m in stage_metrics.values()], True))

    lines = ["# Accuracy per stage", "", "| | " + " | ".join(stages) + " |", "|---|" + "---:|" * len(stages)]
    for label, values, fraction in rows:
        present = [v for v in values if v is not None]
        best = max(present) if fraction and len(set(present)) > 1 else None  # bold the winner, if there is one
        cells = []
        for v in values:
            text = "-" if v is None else (_pct(v) if fraction else f"{v:.1f}")
            cells.append(f"**{text}**" if best is not None and v == best else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_stage_comparison(stage_metrics: dict[str, dict], out_png) -> Path:
    """Grouped bars: overall (and out-of-distribution) accuracy and each type's, one bar per stage."""
    types = _stage_types(stage_metrics)
    has_ood = any(_ood(m) is not None for m in stage_metrics.values())
    groups = ["all"] + (["all (OOD)"] if has_ood else []) + types
    series = {
        stage: [m.get("accuracy")]
        + ([_ood(m)] if has_ood else [])
        + [m.get("accuracy_per_type", {}).get(t) for t in types]
        for stage, m in stage_metrics.items()
    }
    fig = Figure(figsize=(min(14.0, max(7.0, 0.4 * len(groups) * max(2, len(series)))), 4.4))
    ax = fig.add_subplot()
    _grouped_bars(ax, groups, series)
    _style(ax, "Accuracy per training stage", "problem type", "exact-match accuracy", percent=True)
    ax.set_ylim(0, 118)  # room for the legend
    return _save(fig, out_png)


def write_stage_comparison(stage_metrics: dict[str, dict], out_dir) -> dict[str, Path]:
    """Write `comparison.md`, `comparison.json` and `comparison.png` for {stage: metrics from evaluate_model}."""
    if not stage_metrics:
        raise ValueError("write_stage_comparison needs the metrics of at least one stage.")
    for stage, m in stage_metrics.items():
        if not isinstance(m, dict) or "accuracy" not in m:
            raise ValueError(f"stage {stage!r}: expected the metrics dict evaluate_model returns (with 'accuracy').")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "markdown": out_dir / "comparison.md",
        "json": out_dir / "comparison.json",
        "plot": plot_stage_comparison(stage_metrics, out_dir / "comparison.png"),
    }
    summary = {
        stage: {
            "accuracy": m.get("accuracy"),
            "parse_rate": m.get("parse_rate"),
            "avg_generation_length": m.get("avg_generation_length"),
            "accuracy_ood": _ood(m),
            "accuracy_per_type": m.get("accuracy_per_type", {}),
            "model": m.get("model"),
        }
        for stage, m in stage_metrics.items()
    }
    files["json"].write_text(json.dumps(summary, indent=2) + "\n")
    files["markdown"].write_text(stage_comparison_markdown(stage_metrics) + f"\n![accuracy per stage]({files['plot'].name})\n")
    return files


__all__ = [
    "find_trainer_state",
    "markdown_report",
    "plot_accuracy_per_difficulty",
    "plot_accuracy_per_type",
    "plot_stage_comparison",
    "plot_training_curves",
    "stage_comparison_markdown",
    "write_report",
    "write_stage_comparison",
]

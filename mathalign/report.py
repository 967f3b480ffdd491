"""Reports people read: metrics.json, samples.jsonl, a Markdown summary and PNG plots.

    write_report(metrics, samples, "runs/sft/eval")            # what `mathalign eval --out` writes
    print(split_type_text(metrics))                            # accuracy, a row per type, a column per split
    plot_accuracy_vs_length(metrics, "length.png")             # a line per type against operand digits
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


def split_metrics(metrics: dict) -> dict[str, dict]:
    """{split: metrics} from an `evaluate_model` result, or a single split's metrics."""
    return metrics.get("splits") or {metrics.get("split", "test"): metrics}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _is_number(key) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", str(key)) is not None


def _numeric_order(keys: Iterable[str]) -> list[str]:
    return sorted(keys, key=lambda k: float(k) if _is_number(k) else math.inf)


# ---------------------------------------------------------------------------------------------------------------
# Accuracy per type and split: the table that shows where a model is brittle


def split_type_table(metrics: dict) -> tuple[list[str], list[tuple[str, list[float | None], list[int | None]]]]:
    """(splits, rows): a row per problem type then an `all` row, each with one accuracy (None where the split has
    no such problem) and one count per split."""
    splits = split_metrics(metrics)
    types: list[str] = []
    for m in splits.values():
        types += [t for t in m.get("accuracy_per_type", {}) if t not in types]
    rows = [(t, [m.get("accuracy_per_type", {}).get(t) for m in splits.values()],
             [m.get("count_per_type", {}).get(t) for m in splits.values()]) for t in types]
    rows.append(("all", [m.get("accuracy") for m in splits.values()], [m.get("num_samples") for m in splits.values()]))
    return list(splits), rows


def split_type_text(metrics: dict, title: str = "accuracy per type and split") -> str:
    """The per-type x per-split table as plain text, for a terminal (what `mathalign eval` prints)."""
    splits, rows = split_type_table(metrics)
    first = max(len("type"), *(len(r[0]) for r in rows))
    widths = [max(len(s), 6) for s in splits]
    lines = [title, f"{'type':<{first}}  " + "  ".join(f"{s:>{w}}" for s, w in zip(splits, widths))]
    for label, values, _ in rows:
        lines.append(f"{label:<{first}}  " + "  ".join(f"{_pct(v):>{w}}" for v, w in zip(values, widths)))
    lines.append(f"{'problems':<{first}}  " + "  ".join(f"{n if n is not None else '-':>{w}}"
                                                        for n, w in zip(rows[-1][2], widths)))
    for split, m in split_metrics(metrics).items():  # surface forms: which ways of writing a problem the model reads
        per_form = m.get("accuracy_per_form") or {}
        if len(per_form) > 1:
            lines.append(f"accuracy per form ({split}): " + ", ".join(f"{f} {_pct(a)}" for f, a in per_form.items()))
    return "\n".join(lines)


def split_type_markdown(metrics: dict) -> list[str]:
    """The per-type x per-split table as Markdown lines: `accuracy (problems)` per cell, the `all` row in bold."""
    splits, rows = split_type_table(metrics)
    lines = ["| type | " + " | ".join(f"{s} (n)" for s in splits) + " |", "|---|" + "---:|" * len(splits)]
    for label, values, counts in rows:
        cells = ["-" if v is None else f"{_pct(v)} ({n})" for v, n in zip(values, counts)]
        if label == "all":
            lines.append("| **all** | " + " | ".join(c if c == "-" else f"**{c}**" for c in cells) + " |")
        else:
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def difficulty_label(metrics: dict) -> str:
    """What the `difficulty` column counts, from the families evaluated."""
    tasks = {t for m in split_metrics(metrics).values() for t in m.get("accuracy_per_task", {})}
    if tasks == {"arithmetic"}:
        return "operand digits"
    if tasks == {"expressions"}:
        return "operations per expression"
    if tasks >= {"arithmetic", "expressions"}:
        return "operand digits (arithmetic) / operations (expressions)"
    return "difficulty"


def type_difficulty_accuracy(metrics: dict) -> dict[str, dict[str, tuple[float, int]]]:
    """{type: {difficulty: (accuracy, problems)}} over every evaluated split combined (so the in-range lengths of
    `test` and the longer ones of `test_ood` lie on one axis), plus an `all` entry over every type."""
    hits: dict[str, dict[str, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    for m in split_metrics(metrics).values():
        accuracy, count = m.get("accuracy_per_type_and_difficulty") or {}, m.get("count_per_type_and_difficulty") or {}
        for t, per in accuracy.items():
            for d, a in per.items():
                n = count.get(t, {}).get(d, 0)
                for key in (t, "all"):
                    hits.setdefault(key, {}).setdefault(d, 0.0)
                    counts.setdefault(key, {}).setdefault(d, 0)
                    hits[key][d] += a * n
                    counts[key][d] += n
    order = [t for t in counts if t != "all"] + (["all"] if "all" in counts else [])  # `all` last
    return {t: {d: (hits[t][d] / counts[t][d], counts[t][d]) for d in _numeric_order(counts[t]) if counts[t][d]}
            for t in order}


def _difficulties(table: dict[str, dict]) -> list[str]:
    return _numeric_order({d for per in table.values() for d in per if _is_number(d)})


def type_difficulty_markdown(metrics: dict) -> list[str]:
    """Accuracy per type (rows) and difficulty (columns), every split combined; [] with one difficulty or none."""
    table = type_difficulty_accuracy(metrics)
    keys = _difficulties(table)
    if len(keys) < 2:
        return []
    lines = ["| type | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for t, per in table.items():
        cells = ["-" if d not in per else f"{_pct(per[d][0])} ({per[d][1]})" for d in keys]
        lines.append(f"| {'**all**' if t == 'all' else t} | " + " | ".join(cells) + " |")
    return lines


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
    splits = split_metrics(metrics)
    types: list[str] = []
    for m in splits.values():
        types += [t for t in m.get("accuracy_per_type", {}) if t not in types]
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
    for s, (split, m) in enumerate(split_metrics(metrics).items()):
        per = m.get("accuracy_per_difficulty", {})
        keys = _numeric_order(per)
        ax.plot(keys, [100 * per[k] for k in keys], marker="o", label=split, color=COLORS[s % len(COLORS)])
    _style(ax, "Accuracy per difficulty", difficulty_label(metrics), "exact-match accuracy", percent=True)
    if len(split_metrics(metrics)) > 1:
        ax.legend(frameon=False)
    return _save(fig, out_png)


def plot_accuracy_vs_length(metrics: dict, out_png, title: str | None = None) -> Path | None:
    """Accuracy against operand length (the `difficulty` column), a line per problem type and a dashed one for all
    types, every evaluated split combined; lengths that only held-out splits reach (beyond `test`'s range) are
    shaded. Returns None, writing nothing, when fewer than two lengths were evaluated."""
    table = type_difficulty_accuracy(metrics)
    keys = _difficulties(table)
    if len(keys) < 2:
        return None
    splits = split_metrics(metrics)
    in_test = {d for per in (splits.get("test", {}).get("accuracy_per_type_and_difficulty") or {}).values()
               for d in per}
    types = [t for t in table if t != "all"]
    crowded = len(types) > 4
    fig = Figure(figsize=(8.6 if crowded else 6.6, 4.2))
    ax = fig.add_subplot()
    beyond = [float(d) for d in keys if in_test and d not in in_test]
    if beyond:  # the lengths no in-range test problem has: out of distribution
        ax.axvspan(min(beyond) - 0.5, max(beyond) + 0.5, color="#EEEEEE", zorder=0)
        ax.text(min(beyond) - 0.45, 2, "beyond the test split's range", fontsize=8, color="#666666", va="bottom")
    markers = "osD^vP*Xh"
    for i, t in enumerate(types):
        per = {d: v for d, v in table[t].items() if _is_number(d)}
        xs = [float(d) for d in per]
        ax.plot(xs, [100 * a for a, _ in per.values()], marker=markers[i % len(markers)], markersize=5,
                linewidth=1.6, label=t, color=COLORS[i % len(COLORS)],
                linestyle="-" if i < len(COLORS) else ":")
    if len(types) > 1 and "all" in table:
        per = {d: v for d, v in table["all"].items() if _is_number(d)}
        ax.plot([float(d) for d in per], [100 * a for a, _ in per.values()], color="black", linestyle="--",
                linewidth=2.2, marker="o", markersize=4, label="all types")
    label = difficulty_label(metrics)
    default = f"Accuracy against {label.split(' (')[0]}, per type"
    _style(ax, title or default, label, "exact-match accuracy", percent=True)
    ax.set_xticks([float(d) for d in keys])
    ax.set_xticklabels([d if not d.endswith(".0") else d[:-2] for d in keys])
    ax.set_xlim(float(keys[0]) - 0.5, float(keys[-1]) + 0.5)
    ax.grid(axis="x", alpha=0.15)
    fig.text(0.01, 0.01, "splits: " + ", ".join(splits), fontsize=7, color="#666666")
    if crowded:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(frameon=False, fontsize=8, loc="lower left")
    return _save(fig, out_png)


def markdown_report(metrics: dict, samples: list[dict], plots: Iterable[str] = ()) -> str:
    """The Markdown summary: headline numbers per split, a per-type table, per-difficulty table, failures."""
    splits = split_metrics(metrics)
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
    if any(m.get("accuracy_per_type") for m in splits.values()):
        lines += ["", "## Accuracy per problem type and split", ""] + split_type_markdown(metrics)
    for breakdown, label in (("difficulty", difficulty_label(metrics)), ("form", "surface form")):
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
                cells.append("-" if acc is None else _pct(acc) + ("" if count is None else f" ({count})"))
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    by_length = type_difficulty_markdown(metrics)
    if by_length:
        lines += ["", f"## Accuracy per type and {difficulty_label(metrics)}, every split combined", ""] + by_length
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
    """Write `metrics.json`, `samples.jsonl`, `report.md`, `accuracy_per_type.png` (+ per difficulty and
    `accuracy_vs_length.png` when more than one difficulty was evaluated, + training curves when a
    `trainer_state.json` is given) into `out_dir`; returns {name: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out_dir / "metrics.json", "samples": out_dir / "samples.jsonl"}
    files["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    with files["samples"].open("w") as f:
        for sample in samples:
            f.write(json.dumps(sample, ensure_ascii=False) + "\n")
    if any(m.get("accuracy_per_type") for m in split_metrics(metrics).values()):
        files["accuracy_per_type"] = plot_accuracy_per_type(metrics, out_dir / "accuracy_per_type.png")
    if any(len(m.get("accuracy_per_difficulty", {})) > 1 for m in split_metrics(metrics).values()):
        files["accuracy_per_difficulty"] = plot_accuracy_per_difficulty(metrics, out_dir / "accuracy_per_difficulty.png")
    length = plot_accuracy_vs_length(metrics, out_dir / "accuracy_vs_length.png")
    if length is not None:
        files["accuracy_vs_length"] = length
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


def _held_out(stage_metrics: dict[str, dict]) -> list[str]:
    """The splits evaluated besides each stage's first one (test_ood, test_surface, ...), in the order first seen."""
    names: list[str] = []
    for m in stage_metrics.values():
        names += [s for s in list(m.get("splits") or {})[1:] if s not in names]
    return names


def _split_accuracy(metrics: dict, split: str) -> float | None:
    return (metrics.get("splits") or {}).get(split, {}).get("accuracy")


def _split_label(split: str) -> str:
    return f"accuracy, {split}" + (" (out of distribution)" if split == "test_ood" else "")


def _stage_types(stage_metrics: dict[str, dict]) -> list[str]:
    types: list[str] = []
    for m in stage_metrics.values():
        types += [t for t in m.get("accuracy_per_type", {}) if t not in types]
    return types


def stage_comparison_markdown(stage_metrics: dict[str, dict], length_plot: str | None = None) -> str:
    """One table, a column per stage and a row per number (best stage in bold), then the final stage's accuracy
    per type and split (and its accuracy against operand length, when `length_plot` names that plot)."""
    stages = list(stage_metrics)
    held_out = _held_out(stage_metrics)
    rows: list[tuple[str, list, bool]] = [  # (label, values, is a fraction)
        ("accuracy", [m.get("accuracy") for m in stage_metrics.values()], True),
        ("parse rate", [m.get("parse_rate") for m in stage_metrics.values()], True),
    ]
    for split in held_out:
        rows.append((_split_label(split), [_split_accuracy(m, split) for m in stage_metrics.values()], True))
    rows.append(("avg. generation length (tokens)", [m.get("avg_generation_length") for m in stage_metrics.values()], False))
    for t in _stage_types(stage_metrics):
        rows.append((f"`{t}`", [m.get("accuracy_per_type", {}).get(t) for m in stage_metrics.values()], True))

    lines = ["# Accuracy per stage", ""]
    first_splits = {m.get("split") for m in stage_metrics.values() if m.get("split")}
    if len(first_splits) == 1 and held_out:
        lines += [f"Rows without a split name are on `{first_splits.pop()}`.", ""]
    lines += ["| | " + " | ".join(stages) + " |", "|---|" + "---:|" * len(stages)]
    for label, values, fraction in rows:
        present = [v for v in values if v is not None]
        best = max(present) if fraction and len(set(present)) > 1 else None  # bold the winner, if there is one
        cells = []
        for v in values:
            text = "-" if v is None else (_pct(v) if fraction else f"{v:.1f}")
            cells.append(f"**{text}**" if best is not None and v == best else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    final, last = stages[-1], stage_metrics[stages[-1]]
    if last.get("accuracy_per_type") and len(split_metrics(last)) > 1:  # (one split: the rows above say it all)
        lines += ["", f"## {final} (final stage): accuracy per type and split", ""] + split_type_markdown(last)
    by_length = type_difficulty_markdown(last)
    if by_length:
        label = difficulty_label(last)
        lines += ["", f"## {final} (final stage): accuracy per type and {label}, every split combined", ""]
        lines += by_length
        if length_plot:
            lines += ["", f"![{final}: accuracy against {label}]({length_plot})"]
    return "\n".join(lines) + "\n"


def plot_stage_comparison(stage_metrics: dict[str, dict], out_png) -> Path:
    """Grouped bars: overall accuracy on each evaluated split and each type's, one bar per stage."""
    types = _stage_types(stage_metrics)
    held_out = _held_out(stage_metrics)
    groups = ["all"] + [f"all ({s})" for s in held_out] + types
    series = {
        stage: [m.get("accuracy")]
        + [_split_accuracy(m, s) for s in held_out]
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
    """Write `comparison.md`, `comparison.json` and `comparison.png` for {stage: metrics from evaluate_model}, and
    `accuracy_vs_length.png` for the final stage when it was evaluated on more than one operand length."""
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
    final = list(stage_metrics)[-1]
    length = plot_accuracy_vs_length(stage_metrics[final], out_dir / "accuracy_vs_length.png",
                                     title=f"{final}: accuracy against {difficulty_label(stage_metrics[final])}")
    if length is not None:
        files["accuracy_vs_length"] = length
    split_keys = ("accuracy", "parse_rate", "num_samples", "accuracy_per_type", "accuracy_per_difficulty",
                  "accuracy_per_form", "accuracy_per_type_and_difficulty")
    summary = {
        stage: {
            "accuracy": m.get("accuracy"),
            "parse_rate": m.get("parse_rate"),
            "avg_generation_length": m.get("avg_generation_length"),
            "accuracy_ood": _ood(m),
            "accuracy_per_type": m.get("accuracy_per_type", {}),
            "splits": {split: {k: sm[k] for k in split_keys if k in sm} for split, sm in split_metrics(m).items()},
            "model": m.get("model"),
        }
        for stage, m in stage_metrics.items()
    }
    files["json"].write_text(json.dumps(summary, indent=2) + "\n")
    markdown = stage_comparison_markdown(stage_metrics, length.name if length is not None else None)
    files["markdown"].write_text(markdown + f"\n![accuracy per stage]({files['plot'].name})\n")
    return files


__all__ = [
    "difficulty_label",
    "find_trainer_state",
    "markdown_report",
    "plot_accuracy_per_difficulty",
    "plot_accuracy_per_type",
    "plot_accuracy_vs_length",
    "plot_stage_comparison",
    "plot_training_curves",
    "split_metrics",
    "split_type_markdown",
    "split_type_table",
    "split_type_text",
    "stage_comparison_markdown",
    "type_difficulty_accuracy",
    "write_report",
    "write_stage_comparison",
]

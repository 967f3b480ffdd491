"""Evaluate a causal LM on verifiable problems: batched greedy generation, family checkers, a metric, a report.

    mathalign eval runs/sft --data data/sft --out runs/sft/eval

    >>> from mathalign.evaluation import evaluate_model
    >>> metrics = evaluate_model("runs/sft", dataset="data/sft", num_samples=200, out_dir="runs/sft/eval")
    >>> metrics["accuracy"], metrics["accuracy_per_type"]["a_over_b"]

How it works, and why:
- Prompts are generated in left-padded batches with the KV cache, greedy (`mathalign.generation`).
- Answers are never parsed here: each row names its problem family (`task`), whose `extract_answer` and `check` score
  the output inside the `mathalign_accuracy` metric module (an `evaluate` module shipped in the package, loaded by path,
  so it works offline). Prompts go to the model exactly as the dataset writes them, as plain `generate` would see
  them: `chat` normalises what a person types, evaluation measures the model (a `test_surface` split tests spacing).
- Splits: by default the `test` split plus every held-out test split the dataset has (`test_ood`: longer operands,
  deeper expressions; `test_surface`: the same problems written other ways; `test_uniform`: uniformly drawn
  operands; any other `test_*`), so one run shows where a model is brittle; `split="test"` evaluates exactly
  `test`, `split="test,test_ood"` (or a list) names the splits. A single parquet/jsonl file is one split.
- The top-level metrics are those of the first split; every split's metrics are under `metrics["splits"]`: accuracy,
  parse rate, and accuracy per type, per difficulty (operand digits, expression operations), per type and
  difficulty, and per surface form when the rows have a `form` column.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from .generation import (DEFAULT_MAX_NEW_TOKENS, FALLBACK_MAX_NEW_TOKENS, generate_batched,
                         load_model_and_tokenizer, render_prompt)
from .sources import check_source, is_local, load_local_dataset

METRIC_PATH = str(Path(__file__).parent / "metrics" / "mathalign_accuracy" / "mathalign_accuracy.py")
REQUIRED_COLUMNS = ("prompt", "answer", "task")
OOD_SPLIT = "test_ood"
HELD_OUT_PREFIX = "test_"  # every `test_*` split is held out, and evaluated by default next to `test`
HELD_OUT_ORDER = (OOD_SPLIT, "test_surface", "test_uniform")  # listed in this order, other test_* after them
CANONICAL_FORM = "canonical"  # the name of a `form` left empty: the problem as the generator writes it
# Small sizes for builders named on the command line (`--data sft`): a quick look, not a benchmark. A builder that
# does not draw one of the held-out splits (gsm8k and aqua have no test_ood) is built without it.
BUILDER_DEFAULT_SIZES = {"num_train": 0, "num_validation": 0, "num_test": 256, "num_test_ood": 256,
                         "num_test_surface": 256, "num_test_uniform": 256}

_metric = None


def load_metric():
    """The `mathalign_accuracy` evaluate module, loaded by path once per process (no network)."""
    global _metric
    if _metric is None:
        import evaluate

        _metric = evaluate.load(METRIC_PATH, keep_in_memory=True)
    return _metric


# ---------------------------------------------------------------------------------------------------------------
# Loading models and data


def load_eval_dataset(data, build_kwargs: dict | None = None):
    """A `DatasetDict` from a DatasetDict/Dataset, a `save_to_disk` directory, a parquet/jsonl file, a folder of
    data files, a builder name (`sft`, `rl`, ... built in memory with small default sizes) or a Hub dataset id.

    A single file or `Dataset` becomes one split named `test`.
    """
    import datasets

    if isinstance(data, datasets.DatasetDict):
        return data
    if isinstance(data, datasets.Dataset):
        return datasets.DatasetDict({"test": data})
    name = str(data)
    path = Path(name).expanduser()
    if path.exists():
        return load_eval_dataset(load_local_dataset(path, file_split="test"))
    builder = _get_builder(name)
    if builder is not None:
        return _build(builder, name, build_kwargs)
    if is_local(name):
        raise FileNotFoundError(f"dataset {name} does not exist; pass a dataset directory, a parquet/jsonl file or a builder name.")
    if "/" in name:  # a dataset published on the Hub
        check_source(name, "dataset", "dataset")
        try:
            return datasets.load_dataset(name)
        except Exception as err:  # noqa: BLE001  (the Hub's errors are many; the user needs one line)
            raise FileNotFoundError(f"cannot load dataset {name!r}: {str(err).splitlines()[0]}") from None
    raise FileNotFoundError(
        f"unknown dataset {name!r}: not a file or directory, and not a builder name{_builder_names_hint()}."
    )


def _get_builder(name: str):
    """The data builder module called `name`, or None if there is no such builder."""
    try:
        import data_builders
    except ImportError:  # installed without the builders
        return None
    return data_builders.get_builder(name) if name in data_builders.BUILDERS else None


def _builder_names_hint() -> str:
    try:
        import data_builders
    except ImportError:
        return ""
    return f" ({', '.join(sorted(data_builders.BUILDERS))})"


def _build(builder, name: str, build_kwargs: dict | None):
    """Run a builder for evaluation: no training rows, small test splits (override with `build_kwargs`).

    A default held-out size the builder refuses (gsm8k and aqua draw no test_ood; a builder may not draw surface
    variants) is dropped and the build retried; a size the caller asked for is never dropped."""
    given = build_kwargs or {}
    kwargs = {**BUILDER_DEFAULT_SIZES, **given}
    print(f"Building the {name!r} dataset in memory ({', '.join(f'{k}={v}' for k, v in kwargs.items())}) ...")
    while True:
        try:
            return builder.build(**kwargs)
        except ValueError as err:
            refused = [k for k in kwargs if k.startswith(f"num_{HELD_OUT_PREFIX}") and k not in given
                       and re.search(rf"\b{k}\b", str(err))]
            if not refused:
                raise
            for key in refused:
                kwargs.pop(key)


def held_out_splits(available: Sequence[str]) -> list[str]:
    """The held-out test splits among `available` (every `test_*`), test_ood, test_surface, test_uniform first."""
    held = [s for s in available if s.startswith(HELD_OUT_PREFIX)]
    return [s for s in HELD_OUT_ORDER if s in held] + sorted(s for s in held if s not in HELD_OUT_ORDER)


def resolve_splits(dataset_dict, split=None) -> list[tuple[str, bool]]:
    """[(split name, explicitly asked for)]: `None` means `test` (or the only split) plus every `test_*` present."""
    available = list(dataset_dict.keys())
    if split is None:
        if "test" in available:
            names = ["test"] + held_out_splits(available)
        elif len(available) == 1:
            names = available
        else:
            raise ValueError(f"the dataset has no 'test' split; choose one with --split ({', '.join(available)}).")
        return [(names[0], True)] + [(n, False) for n in names[1:]]
    names = [s.strip() for s in split.split(",")] if isinstance(split, str) else list(split)
    missing = [n for n in names if n not in available]
    if missing:
        if available == ["test"] and names == missing and len(names) == 1:  # a single file: its one split
            return [("test", True)]
        raise ValueError(f"split(s) {missing} not in the dataset; it has: {', '.join(available)}.")
    return [(n, True) for n in names if n]


def check_columns(dataset, split: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"split {split!r} lacks column(s) {missing} (it has {dataset.column_names}); evaluation needs "
            f"{', '.join(REQUIRED_COLUMNS)} per row: use a dataset made by `mathalign data build sft|rl|preferences`."
        )


def _column_as_strings(dataset, column: str) -> list | None:
    """A column's values, ClassLabel ids turned into their names; None if the column is missing."""
    if column not in dataset.column_names:
        return None
    values = dataset[column]
    feature = dataset.features[column]
    if hasattr(feature, "int2str"):
        return [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
    return list(values)


def choose_max_new_tokens(dataset, tokenizer, tasks: Sequence[str], model=None, prompt_tokens: int = 0) -> int:
    """Room for the longest gold completion (+25% and a few tokens), else a per-family default; never more than
    the model's context has left after the longest prompt."""
    completions = None
    for column in ("completion", "chosen"):
        if column in dataset.column_names:
            completions = [c if isinstance(c, str) else "".join(m["content"] for m in c) for c in dataset[column]]
            break
    if completions:
        longest = max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
        budget = math.ceil(longest * 1.25) + 4
    else:
        budget = max(DEFAULT_MAX_NEW_TOKENS.get(t, FALLBACK_MAX_NEW_TOKENS) for t in set(tasks))
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if context:
        room = int(context) - prompt_tokens
        if room < 1:
            raise ValueError(
                f"the longest prompt has {prompt_tokens} tokens, more than the model's context ({context}); "
                "evaluate a dataset with shorter prompts or a model with a longer context."
            )
        budget = min(budget, room)
    return budget


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def evaluate_split(
    model,
    tokenizer,
    dataset,
    split: str = "test",
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> tuple[dict, list[dict]]:
    """Generate for every row of one split and score it: (metrics, samples)."""
    from mathalign.tasks import get_task

    check_columns(dataset, split)
    if len(dataset) == 0:
        raise ValueError(f"split {split!r} is empty.")
    tasks = list(dataset["task"])
    try:  # an unknown family fails here, before any generation
        for name in set(tasks):
            get_task(name)
    except (KeyError, ValueError) as err:
        raise ValueError(f"split {split!r}: {err}") from None
    texts_in = [render_prompt(p, tokenizer) for p in dataset["prompt"]]
    if max_new_tokens is None:
        longest_prompt = max(len(tokenizer(t)["input_ids"]) for t in texts_in)
        max_new_tokens = choose_max_new_tokens(dataset, tokenizer, tasks, model, longest_prompt)
    start = time.perf_counter()
    outputs, lengths, _ = generate_batched(
        model, tokenizer, texts_in, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=progress,
        desc=f"eval {split}",
    )
    seconds = time.perf_counter() - start
    types = _column_as_strings(dataset, "type")
    difficulties = _column_as_strings(dataset, "difficulty")
    forms = _column_as_strings(dataset, "form")
    if forms is not None:  # the builders leave `form` empty for a problem written the canonical way
        forms = [CANONICAL_FORM if f in ("", None) else f for f in forms]
    golds = [str(a) for a in dataset["answer"]]
    metrics = load_metric().compute(
        predictions=outputs,
        references=golds,
        tasks=tasks,
        types=types,
        difficulties=difficulties,
        generation_lengths=lengths,
        return_per_sample=True,
    )
    correct, extracted = metrics.pop("correct"), metrics.pop("extracted")
    type_feature = dataset.features.get("type")
    if hasattr(type_feature, "names"):  # list types in the dataset's ClassLabel order, not alphabetically
        for key in ("accuracy_per_type", "count_per_type"):
            per = metrics.get(key, {})
            metrics[key] = {t: per[t] for t in type_feature.names if t in per}
    if forms is not None:  # surface variants: which ways of writing a problem the model reads
        form_feature = dataset.features.get("form")
        metrics["accuracy_per_form"], metrics["count_per_form"] = _breakdown(
            forms, correct, getattr(form_feature, "names", None))
    if types is not None and difficulties is not None:  # accuracy against operand length, one curve per type
        metrics["accuracy_per_type_and_difficulty"], metrics["count_per_type_and_difficulty"] = _nested_breakdown(
            types, difficulties, correct, list(metrics.get("accuracy_per_type", {})))
    metrics.update(
        {"max_new_tokens": max_new_tokens, "seconds": round(seconds, 3), "problems_per_second": len(outputs) / seconds}
    )
    samples = [
        {
            "split": split,
            "task": tasks[i],
            "type": types[i] if types else None,
            "difficulty": difficulties[i] if difficulties else None,
            **({"form": forms[i]} if forms is not None else {}),
            "prompt": texts_in[i],
            "output": outputs[i],
            "gold": golds[i],
            "extracted": extracted[i],
            "correct": correct[i],
            "generation_length": lengths[i],
        }
        for i in range(len(outputs))
    ]
    return metrics, samples


def _sort_key(key) -> tuple:
    """Numbers in numeric order, then names in the order given (or alphabetical)."""
    text = str(key)
    return (0, float(text), "") if re.fullmatch(r"-?\d+(\.\d+)?", text) else (1, 0.0, text)


def _breakdown(keys: list, correct: list[bool], order: Sequence[str] | None = None) -> tuple[dict, dict]:
    """({key: accuracy}, {key: count}), keys as strings (as in JSON); missing keys count as "unknown"."""
    hits: dict[str, int] = {}
    counts: dict[str, int] = {}
    for key, ok in zip(keys, correct):
        key = "unknown" if key is None else str(key)
        counts[key] = counts.get(key, 0) + 1
        hits[key] = hits.get(key, 0) + int(ok)
    ordered = [k for k in order or () if k in counts] + sorted((k for k in counts if k not in (order or ())),
                                                               key=_sort_key)
    return {k: hits[k] / counts[k] for k in ordered}, {k: counts[k] for k in ordered}


def _nested_breakdown(outer: list, inner: list, correct: list[bool], order: Sequence[str]) -> tuple[dict, dict]:
    """({outer: {inner: accuracy}}, {outer: {inner: count}}), e.g. per type, then per difficulty."""
    accuracy, count = {}, {}
    for key in _breakdown(outer, correct, order)[0]:
        rows = [i for i, k in enumerate(outer) if ("unknown" if k is None else str(k)) == key]
        accuracy[key], count[key] = _breakdown([inner[i] for i in rows], [correct[i] for i in rows])
    return accuracy, count


def _subset(dataset, num_samples: int | None, split: str, explicit: bool, seed: int):
    if num_samples is None or num_samples == len(dataset):
        return dataset
    if num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {num_samples}.")
    if num_samples > len(dataset):
        if not explicit:  # a test_* split added by default: take what there is rather than refuse the whole run
            return dataset
        raise ValueError(
            f"--num-samples {num_samples} is larger than split {split!r} ({len(dataset)} rows); ask for at most "
            f"{len(dataset)} or build a larger split."
        )
    return dataset.shuffle(seed=seed).select(range(num_samples))  # a seeded sample of every type, not the first N


def evaluate_model(
    model_or_path,
    tokenizer=None,
    dataset=None,
    split: str | Sequence[str] | None = None,
    num_samples: int | None = None,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
    trainer_state: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Evaluate a model on a dataset's test split(s) and return the metrics (and write a report if `out_dir`).

    Args:
        model_or_path: a checkpoint directory, a LoRA adapter directory, a Hub id, or a model (then pass `tokenizer`).
        dataset: a DatasetDict/Dataset, a `save_to_disk` directory, a parquet/jsonl file, or a builder name.
        split: `None` for `test` plus every held-out `test_*` split present (test_ood, test_surface,
            test_uniform, ...); a name, a comma-separated string or a list.
        num_samples: evaluate a seeded random subset of this many rows per split (all rows when None); more rows
            than a split named in `split` holds is an error, a default `test_*` split that is smaller is used whole.
        max_new_tokens: default: the longest gold completion + 25% (or a per-family default without completions).
        out_dir: where to write `metrics.json`, `samples.jsonl`, `report.md` and the PNG plots.
        trainer_state: a `trainer_state.json` to plot training curves from (default: found next to the checkpoint).

    Returns the first split's metrics at the top level (`accuracy`, `parse_rate`, `avg_generation_length`,
    `accuracy_per_type`, `accuracy_per_difficulty`, `accuracy_per_type_and_difficulty`, `accuracy_per_form` when
    the rows have a `form`, ...), every split's under `splits`, and `model`/`dataset` names.
    """
    if dataset is None:
        raise ValueError("evaluate_model needs a dataset (a directory, a file or a builder name).")
    dataset_dict = load_eval_dataset(dataset)
    splits = resolve_splits(dataset_dict, split)
    for name, _ in splits:  # fail on bad data before loading the model
        check_columns(dataset_dict[name], name)
    selected = {name: _subset(dataset_dict[name], num_samples, name, explicit, seed) for name, explicit in splits}
    model, tokenizer = load_model_and_tokenizer(model_or_path, tokenizer)

    per_split, samples = {}, []
    for name, data in selected.items():
        metrics, split_samples = evaluate_split(model, tokenizer, data, name, batch_size, max_new_tokens, progress)
        per_split[name] = metrics
        samples.extend(split_samples)
    first = next(iter(per_split))
    result = {
        "model": _describe(model_or_path, model),
        "dataset": str(dataset) if isinstance(dataset, (str, os.PathLike)) else type(dataset).__name__,
        "split": first,
        **per_split[first],
        "splits": per_split,
    }
    if out_dir is not None:
        from mathalign.report import find_trainer_state, write_report

        if trainer_state is None and isinstance(model_or_path, (str, os.PathLike)):
            trainer_state = find_trainer_state(model_or_path)
        write_report(result, samples, out_dir, trainer_state=trainer_state)
    return result


def _describe(model_or_path, model) -> str:
    if isinstance(model_or_path, (str, os.PathLike)):
        return str(model_or_path)
    return getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__


def compare_stages(
    stages: dict[str, Any],
    dataset=None,
    out_dir: str | os.PathLike = "comparison",
    **eval_kwargs,
) -> dict[str, dict]:
    """Evaluate several checkpoints on the same data and write one comparison table and plot.

    `stages` maps a stage name to a checkpoint path (evaluated here, its report under `out_dir/<name>/`), to a
    `metrics.json` file or an evaluation directory holding one, or to an already computed metrics dict.

    >>> compare_stages({"base": "runs/base", "sft": "runs/sft", "dpo": "runs/dpo"}, dataset="data/sft", out_dir="cmp")
    """
    from mathalign.report import write_stage_comparison

    if not stages:
        raise ValueError("compare_stages needs at least one stage.")
    out_dir = Path(out_dir)
    computed = {}
    for name, item in stages.items():
        if isinstance(item, dict):
            computed[name] = item
            continue
        path = Path(item)
        metrics_file = path if path.suffix == ".json" else path / "metrics.json"
        if metrics_file.is_file() and not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            computed[name] = json.loads(metrics_file.read_text())
            continue
        if dataset is None:
            raise ValueError(f"stage {name!r} is a checkpoint: pass --data to evaluate it.")
        print(f"== {name}: {item}")
        computed[name] = evaluate_model(item, dataset=dataset, out_dir=out_dir / name, **eval_kwargs)
    write_stage_comparison(computed, out_dir)
    return computed


__all__ = [
    "METRIC_PATH",
    "compare_stages",
    "evaluate_model",
    "evaluate_split",
    "generate_batched",
    "held_out_splits",
    "load_eval_dataset",
    "load_metric",
    "load_model_and_tokenizer",
]

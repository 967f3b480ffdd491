"""Cards, saving, publishing and the command-line tail every builder shares (`finish`, `run_generated`, `run_main`).

Same options and seed give the same card; `--out` is checked before any work (see outputs), and so is
`--push-to-hub` (mathalign.hub.check_can_push); the push itself is mathalign.hub.push_dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
from datasets import ClassLabel, DatasetDict

from mathalign import hub
from mathalign.errors import UserError

from . import outputs
from .building import build_parameters
from .options import PROGRESS_MIN_ROWS, command_line, options_from_args, resolve_options


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def type_counts(dataset_dict: DatasetDict) -> dict[str, dict[str, int]]:
    out = {}
    for split, ds in dataset_dict.items():
        names = ds.features["type"].names
        counts = ds.data.column("type").value_counts().to_pylist()
        by_name = {names[c["values"]]: c["counts"] for c in counts}
        out[split] = {name: by_name[name] for name in names if name in by_name}
    return out


def make_card(dataset_dict: DatasetDict, builder: str, parameters: dict[str, Any], command: str,
              summary: str, parquet_layout: bool = True, license: str = "apache-2.0", source_datasets=None):
    """A dataset card (README.md) with YAML metadata: features, split sizes, per-type counts, parameters, command."""
    from huggingface_hub import DatasetCard, DatasetCardData

    first = next(iter(dataset_dict.values()))
    splits = [{"name": split, "num_bytes": ds.data.nbytes, "num_examples": ds.num_rows}
              for split, ds in dataset_dict.items()]
    counts = type_counts(dataset_dict)
    total = sum(ds.num_rows for ds in dataset_dict.values())
    metadata: dict[str, Any] = dict(
        language=["en"],
        license=license,
        pretty_name=f"mathalign {builder}",
        size_categories=[size_category(total)],
        task_categories=["text-generation"],
        tags=["mathalign", "math", "arithmetic", "synthetic", "trl"],
        dataset_info={"features": first.features._to_yaml_list(), "splits": splits},
        mathalign={"builder": builder, "command": command, "parameters": parameters, "type_counts": counts},
    )
    if source_datasets:
        metadata["source_datasets"] = list(source_datasets)
    if parquet_layout:
        metadata["configs"] = [{"config_name": "default",
                                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in dataset_dict]}]
    card_data = DatasetCardData(**metadata)
    columns = "\n".join(f"| `{name}` | {_feature_text(feature)} |" for name, feature in first.features.items())
    type_table = "\n".join(
        f"| {split} | {dataset_dict[split].num_rows} | "
        + ", ".join(f"{name}: {n}" for name, n in per_type.items()) + " |"
        for split, per_type in counts.items()
    )
    example = json.dumps({k: v for k, v in first[0].items()}, ensure_ascii=False, indent=2) if first.num_rows else "{}"
    split_notes = "".join(note for splits, note in SPLIT_NOTES.items() if any(s in dataset_dict for s in splits))
    content = f"""---
{card_data.to_yaml()}
---

# mathalign {builder}

{summary}

Every row is verifiable: `mathalign.tasks.get_task(row["task"]).check(completion, row["answer"])` says whether a
completion is right. Splits are disjoint by the canonical problem `key`.{split_notes}

## Columns

| column | type |
|---|---|
{columns}

## Splits

| split | rows | rows per type |
|---|---|---|
{type_table}

## Example (first row of `{next(iter(dataset_dict))}`)

```json
{example}
```

## Rebuild

```bash
{command}
```

Same options and seed give byte-identical data. Load with `datasets.load_from_disk(OUT_DIR)` (arrow output) or
`datasets.load_dataset(OUT_DIR)` (parquet output, or the Hub repo id).
"""
    return DatasetCard(content)


# One sentence per kind of held-out split beyond validation and test, in the card when such a split is there.
SPLIT_NOTES = {
    ("test_surface", "validation_surface"): (
        " `test_surface` and `validation_surface` hold problems drawn like `test`, each written another way a person"
        " would write it (spacing, operand order, parentheses; the `form` column names it)."),
    ("test_uniform", "validation_uniform"): (
        " `test_uniform` and `validation_uniform` draw arithmetic operands uniformly over the whole range (mostly the"
        " longest) instead of digit-balanced."),
    ("test_ood",): " `test_ood` holds longer operands / deeper expressions than anything in training.",
}


def _feature_text(feature) -> str:
    if isinstance(feature, ClassLabel):
        return f"ClassLabel ({', '.join(feature.names)})"
    return f"{getattr(feature, 'dtype', type(feature).__name__)}"


def save(dataset_dict: DatasetDict, out: str | Path, card=None, format: str = "arrow", overwrite: bool = False,
         inputs=()) -> Path:
    """Write the splits (arrow via save_to_disk, or data/<split>-00000-of-00001.parquet) and README.md into `out`.

    An existing file or non-empty folder at `out` is refused (ValueError) unless `overwrite`, which replaces it
    whole (`outputs.write_folder`: the dataset is written next to `out` and renamed into place when complete).
    """
    if format not in ("arrow", "parquet"):
        raise ValueError(f"format must be 'arrow' or 'parquet', got {format!r}")

    def write(folder: Path) -> None:
        if format == "arrow":
            dataset_dict.save_to_disk(str(folder))
        else:
            (folder / "data").mkdir(parents=True, exist_ok=True)
            for split, ds in dataset_dict.items():
                ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
        if card is not None:
            (folder / "README.md").write_text(str(card), encoding="utf-8")

    return outputs.write_folder(out, write, overwrite, inputs=inputs)


def check_out(args: argparse.Namespace) -> None:
    """Refuse `--out` before any work (an existing file or non-empty folder without --overwrite; see outputs), and
    a `--push-to-hub` that cannot happen (bad repo id, no token, offline: `mathalign.hub.check_can_push`)."""
    outputs.check_output(args.out, getattr(args, "overwrite", False), inputs=input_paths(args))
    if getattr(args, "push_to_hub", None):
        hub.check_can_push(args.push_to_hub)


def input_paths(args: argparse.Namespace) -> list[str]:
    """The command line's values that name existing files or folders (a --source, a --model...): `--overwrite`
    never replaces a folder that holds one of them."""
    paths = []
    for key, value in vars(args).items():
        if key != "out" and isinstance(value, str) and value:
            try:
                if Path(value).exists():
                    paths.append(value)
            except (OSError, ValueError):
                continue
    return paths


def finish(dataset_dict: DatasetDict, args: argparse.Namespace, builder: str, parameters: dict, command: str,
           summary: str, **card_options) -> DatasetDict:
    """The tail every builder's CLI shares: card, save, optional push (`mathalign.hub.push_dataset`: card first, then
    the data), one line of report. `args.out` and `--push-to-hub` were checked before the build (`check_out`)."""
    card = make_card(dataset_dict, builder, parameters, command, summary,
                     parquet_layout=args.format == "parquet" or bool(args.push_to_hub), **card_options)
    if args.progress is False or (args.progress is None and sum(dataset_dict.num_rows.values()) < PROGRESS_MIN_ROWS):
        datasets.disable_progress_bars()  # datasets' own "Saving the dataset" bars
    out = save(dataset_dict, args.out, card, args.format, getattr(args, "overwrite", False), input_paths(args))
    sizes = ", ".join(f"{split}={ds.num_rows}" for split, ds in dataset_dict.items())
    print(f"wrote {builder} ({sizes}) to {out}", file=sys.stderr)
    if args.push_to_hub:
        url = hub.push_dataset(dataset_dict, args.push_to_hub, card=card)
        print(f"pushed to {url}", file=sys.stderr)
    return dataset_dict


def make_parser(module_doc: str, prog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=module_doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def run_generated(builder: str, options_class: type, build: Callable, summary: str,
                  args: argparse.Namespace) -> DatasetDict:
    """`main(args)` of a generated builder: build from the parsed flags, then card, save and push."""
    check_out(args)
    raw = options_from_args(args)
    dataset_dict = build(progress=args.progress, **raw)
    options, specs = resolve_options(options_class, raw)
    return finish(dataset_dict, args, builder, build_parameters(options, specs),
                  command_line(builder, options, specs), summary)


def run_main(make_parser: Callable[[], argparse.ArgumentParser], main: Callable) -> None:
    """`python -m data_builders.<name>`: parse the command line and run `main`, with `mathalign data`'s error
    handling: bad input (ValueError, FileNotFoundError, UserError such as a push that cannot happen) is one line on stderr and exit code 2, not a traceback."""
    parser = make_parser()
    args = parser.parse_args()
    try:
        main(args)
    except (ValueError, FileNotFoundError, UserError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted.", file=sys.stderr)
        sys.exit(130)

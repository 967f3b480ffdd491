"""Reading rows of an existing dataset (GSM8K, AQuA-RAT) from the Hub or from local files.

`read_rows("openai/gsm8k", "test", config="main")` goes through `datasets.load_dataset` (network, cache);
`read_rows("data/gsm8k", "test")` reads `test.jsonl` / `test.json` / `test.parquet` / `*/test-*.parquet` from a
folder, and `read_rows("rows.jsonl", ...)` reads one file whatever the split. Rows are plain dicts.
"""

from __future__ import annotations

import json
from pathlib import Path

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


def read_rows(source: str | Path, split: str, config: str | None = None, required: tuple[str, ...] = ()) -> list[dict]:
    """Rows of `split` from a Hub dataset id or a local file/folder; errors name the source and what is missing."""
    path = Path(source)
    if path.exists():
        rows = []
        for file in _split_files(path, split):
            rows.extend(_check_rows(_read_file(file), str(file), required))
        return rows
    if str(source).endswith(LOCAL_SUFFIXES) or str(source).startswith((".", "/", "~")):
        raise FileNotFoundError(f"no such file or folder: {source}")
    from datasets import load_dataset  # only for Hub ids: keeps local use free of network code paths

    rows = load_dataset(str(source), config, split=split).to_list()
    return _check_rows(rows, f"{source} (config {config!r}, split {split!r})", required)


def _check_rows(rows: list, where: str, required: tuple[str, ...]) -> list[dict]:
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: row {i} is a {type(row).__name__}, expected an object with {list(required)}")
        missing = [key for key in required if key not in row]
        if missing:
            raise ValueError(f"{where}: row {i} has no {missing} (it has {sorted(row)}); expected {list(required)}")
    return rows


def _split_files(path: Path, split: str) -> list[Path]:
    if path.is_file():
        return [path]
    patterns = [f"{split}{suffix}" for suffix in LOCAL_SUFFIXES] + [f"{split}-*.parquet", f"*/{split}-*.parquet"]
    for pattern in patterns:
        files = sorted(path.glob(pattern))
        if files:
            return files
    raise ValueError(f"{path}: no file for split {split!r} (looked for {', '.join(patterns)})")


def _read_file(file: Path) -> list[dict]:
    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(file).to_pylist()
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".jsonl":
        rows = []
        for line_number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{file}: line {line_number} is not JSON ({err.msg})") from None
        return rows
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}: not JSON ({err.msg} at line {err.lineno})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise ValueError(f"{file}: expected a JSON list of rows (or {{'data': [...]}}), got {type(data).__name__}")
        return data
    raise ValueError(f"{file}: unsupported file type {file.suffix!r}; use one of {LOCAL_SUFFIXES}")

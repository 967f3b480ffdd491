"""Models, tokenizers and datasets are named one way everywhere: a local path, or a Hub id (`owner/name`).

Two jobs, so that a wrong name or a broken file costs one clear line before any work, never a library traceback:

- `check_source(name, key)`: is `name` a local path, or a repository on the Hub? A missing relative path such as
  `runs/sft` is also shaped like a Hub id; transformers would then retry the Hub for ~50 s and end in an 80-line
  `OSError`. Here a path whose first folder exists locally counts as local, and anything else is looked up on the
  Hub once (no retries), or in the local Hub cache when offline.
- `check_checkpoint(folder)`: a local checkpoint's `config.json` parses and its safetensors files are whole (the
  header's byte ranges fit the file) and agree with the config's layer count and embedding shape, read from the
  headers alone. A crafted `config.json` asking for 10**8 layers is refused before anything is allocated.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from .errors import UserError

# What a Hub repository id may look like: `name` or `owner/name` (letters, digits, `-`, `_`, `.`).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Names that are files, never repositories.
FILE_SUFFIXES = {".json", ".jsonl", ".parquet", ".csv", ".safetensors", ".bin", ".pt", ".pkl", ".yaml", ".yml"}
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def looks_like_hub_id(name: str) -> bool:
    """True for `owner/name` or `name` shapes that are not obviously paths (`./x`, `/x`, `a/b/c`, `x.jsonl`)."""
    return (bool(_HUB_ID.match(name)) and ".." not in name and not name.endswith(".")
            and Path(name).suffix not in FILE_SUFFIXES)


def is_local(name: str) -> bool:
    """Whether `name` means a local path: it exists, cannot be a Hub id, or its first folder exists here
    (`runs/sft` while `runs/` exists: a run not trained yet, not a repository called `runs/sft`)."""
    path = Path(name).expanduser()
    if path.exists() or not looks_like_hub_id(name):
        return True
    return len(path.parts) > 1 and Path(path.parts[0]).is_dir()


def _in_hub_cache(name: str, repo_type: str) -> bool:
    from huggingface_hub import constants

    return (Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{name.replace('/', '--')}").is_dir()


def check_source(name: str, key: str, repo_type: str = "model", hint: str = "") -> None:
    """Raise `UserError` unless `name` is an existing local path or a repository on the Hub (or in its cache).

    `key` names the setting in the message (`model_name_or_path`); `hint` says how to make the path exist.
    """
    if Path(name).expanduser().exists():
        return
    where = f"{key} {name!r}"
    if is_local(name):
        raise UserError(f"{where} does not exist{hint or '; fix the path'}.")
    if _in_hub_cache(name, repo_type):
        return
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if constants.is_offline_mode():
        raise UserError(f"{where} is not a local path and not in the Hub cache, and HF_HUB_OFFLINE is set{hint or ''}.")
    try:
        HfApi().repo_info(name, repo_type=repo_type, timeout=10)
    except GatedRepoError:
        raise UserError(f"{where} is gated on the Hub: accept its terms on its page and log in (`hf auth login`).") \
            from None
    except RepositoryNotFoundError:
        raise UserError(f"{where} is neither a local path nor a {repo_type} on the Hub{hint or ''}.") from None
    except Exception as err:  # noqa: BLE001  (network errors come in many types; the user needs one line)
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise UserError(f"{where} is not a local path, and the Hub could not be reached to look for it "
                        f"({reason}){hint or ''}.") from None


def load_local_dataset(path: str | Path, file_split: str = "train"):
    """A dataset directory (saved with save_to_disk, or data files named by split) or one data file (its rows become
    the split `file_split`), read whole; an unreadable or empty one is one line, not a `datasets` traceback."""
    from datasets import load_dataset, load_from_disk

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"dataset file not found: {path}")
    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
    if path.is_file() and kind is None:
        raise UserError(f"{path}: unsupported data file type {path.suffix!r}; use .parquet, .jsonl, .json, .csv or a "
                        "dataset directory.")
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"{path} is empty: it holds no rows.")
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return load_from_disk(str(path))  # saved with save_to_disk (`mathalign data build`)
        if path.is_dir():
            return load_dataset(str(path))  # data files named by split (data/train-*.parquet, train.jsonl, ...)
        return load_dataset(kind, data_files={file_split: str(path)})
    except Exception as err:  # noqa: BLE001  (datasets raises many types for unreadable files; one line is enough)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"cannot read the dataset {path}: {reason}") from None


# --- checkpoints on disk ---------------------------------------------------------------------------------------------

def read_safetensors_header(path: Path) -> dict:
    """The tensor table of a safetensors file (name -> dtype, shape, data_offsets), read without loading a tensor.

    Raises `UserError` when the file is cut short: its header, or the byte range of a tensor, runs past its end.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{path} is truncated (no safetensors header): save or download it again.")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise UserError(f"{path} is truncated (its header runs past the end of the file): save or download it "
                            "again.")
        try:
            header = json.loads(f.read(length))
        except ValueError:
            raise UserError(f"{path} is not a safetensors file (unreadable header): save or download it again.") \
                from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max((v["data_offsets"][1] for v in tensors.values()), default=0)
    if 8 + length + end > size:
        raise UserError(f"{path} is truncated ({size:,} bytes, its tensors need {8 + length + end:,}): the save was "
                        "interrupted; save, train or download it again.")
    return tensors


def _read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{folder / 'config.json'} cannot be read ({err}): save the model again.") from None
    if not isinstance(config, dict):
        raise UserError(f"{folder / 'config.json'} is not a JSON object: save the model again.")
    return config


def check_checkpoint(folder: str | Path) -> None:
    """Refuse a local checkpoint whose files are broken or disagree with its config, before it is loaded.

    Checks: `config.json` parses; every safetensors file is whole; the number of `layers.N` blocks in the weights and
    the embedding's shape match `num_hidden_layers`, `vocab_size` and `hidden_size` (where the config has them).
    Adapter folders (no config.json) and weights in other formats are left to their loaders.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return
    config = _read_config(folder)
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(read_safetensors_header(file))
    if not tensors:
        return
    layers = {int(m.group(1)) for name in tensors for m in [_LAYER.search(name)] if m}
    declared = config.get("num_hidden_layers")
    if isinstance(declared, int) and layers and declared != max(layers) + 1:
        raise UserError(f"{folder}: config.json says num_hidden_layers={declared:,} but the weights hold "
                        f"{max(layers) + 1} layers: the checkpoint is inconsistent; save it again.")
    embed = next((v["shape"] for k, v in tensors.items() if k.endswith("embed_tokens.weight")), None)
    expected = [config.get("vocab_size"), config.get("hidden_size")]
    if embed is not None and all(isinstance(x, int) for x in expected) and list(embed) != expected:
        raise UserError(f"{folder}: config.json says vocab_size x hidden_size = {expected[0]:,} x {expected[1]:,} but "
                        f"the embedding is {embed[0]} x {embed[1]}: the checkpoint is inconsistent; save it again.")


def from_pretrained(loader, name: str, what: str = "model", **kwargs):
    """`loader.from_pretrained(name, **kwargs)`, with a local checkpoint checked first and a load error as one line."""
    if Path(name).expanduser().is_dir():
        check_checkpoint(Path(name).expanduser())
    try:
        return loader.from_pretrained(name, **kwargs)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"cannot load the {what} {name}: {reason}") from None


__all__ = ["check_checkpoint", "check_source", "from_pretrained", "is_local", "load_local_dataset",
           "looks_like_hub_id", "read_safetensors_header"]

"""Output paths: nothing a user wrote is overwritten without `--overwrite`, and an output appears whole or not at all.

    check_output(out, overwrite)          before any work: a ValueError (one line that names --overwrite) when `out`
                                          is an existing file or a non-empty folder and `overwrite` is False
    write_folder(out, write, overwrite)   `write(folder)` fills a new folder next to `out`, which then takes the
                                          place of `out`: a failed or interrupted build leaves `out` as it was
    write_file(out, write, overwrite)     the same for one file

With `overwrite`, an existing `out` is *replaced*: the old folder and everything in it is deleted once the new one is
complete, so no stale split, parquet file or tokenizer of an earlier run is left next to the new output. Some paths
are never replaced: the filesystem root, the home folder, the current folder or one above it, and a folder that
holds one of the command's own input files.

Used by every `mathalign data build` / `python -m data_builders.<name>` builder, `mathalign data convert` and
`mathalign convert nanogpt`; this module imports nothing heavy, so it is cheap to use from anywhere.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

OVERWRITE_FLAG = "--overwrite"


class OutputExistsError(ValueError):
    """An output path that holds something the user wrote, and no permission to replace it."""


def check_output(path: str | os.PathLike, overwrite: bool = False, *, kind: str = "folder",
                 inputs: Iterable[str | os.PathLike] = (), name: str = "--out") -> Path:
    """Refuse an output path before any work is done: ValueError (one line) when `path` cannot be written.

    `kind` is what will be written there ("folder" or "file"). Without `overwrite`, an existing file and a non-empty
    folder are refused (an empty folder is fine for a folder output); with it, they will be replaced, unless `path`
    is one that is never replaced (see the module docstring) or one of `inputs` lies inside it. A path whose
    parent cannot be created or written is refused too. `name` is how the message calls the path (`--out`, `OUT_DIR`).
    """
    path = Path(path)
    if str(path).strip() == "":
        raise ValueError(f"{name} is empty; give the {kind} to write")
    exists = path.is_symlink() or path.exists()
    if exists:
        _check_replaceable(path, inputs, name)
        is_folder = path.is_dir() and not path.is_symlink()
        if kind == "file" and is_folder:
            raise OutputExistsError(f"{name} {str(path)!r} is a folder; give the path of the file to write")
        if not overwrite:
            if not is_folder:
                raise OutputExistsError(
                    f"{name} {str(path)!r} is an existing file; choose another path, or pass {OVERWRITE_FLAG} to "
                    f"replace it")
            if kind == "folder":
                entries = sorted(p.name for p in itertools.islice(path.iterdir(), 101))
                if entries:
                    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
                    count = {1: "1 entry"}.get(len(entries), f"{len(entries)} entries")
                    count = count if len(entries) <= 100 else "more than 100 entries"
                    raise OutputExistsError(
                        f"{name} {str(path)!r} is a folder that is not empty ({count}: {shown}); choose a "
                        f"new or empty folder, or pass {OVERWRITE_FLAG} to replace it (everything in it is deleted)")
    _check_parent_writable(path, name)
    return path


def _check_replaceable(path: Path, inputs: Iterable[str | os.PathLike], name: str) -> None:
    target = path.resolve() if not path.is_symlink() else path.parent.resolve() / path.name
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    protected = {Path(target.anchor): "the filesystem root", home: "your home folder"}
    if target in protected:
        reason = protected[target]
    elif target == cwd or target in cwd.parents:
        reason = "the current folder" if target == cwd else "a folder above the current one"
    else:
        inside = [str(p) for p in inputs if p and _is_within(Path(p), target)]
        if not inside:
            return
        reason = f"a folder that holds the input {inside[0]!r}"
    raise OutputExistsError(f"{name} {str(path)!r} is {reason}; it is never replaced, choose another {name}")


def _is_within(path: Path, folder: Path) -> bool:
    try:
        if not (path.is_symlink() or path.exists()):
            return False
        resolved = path.resolve()
        return resolved == folder or folder in resolved.parents
    except OSError:
        return False


def _check_parent_writable(path: Path, name: str) -> None:
    """The nearest existing folder above `path` must be a folder this process can write into."""
    parent = path.absolute().parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link above the output
            raise ValueError(f"{name} {str(path)!r}: {str(parent)!r} is a broken link; fix it or choose another path")
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{name} {str(path)!r}: {str(parent)!r} is a file, not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {str(path)!r}: cannot write into {str(parent)!r} (permission denied); "
                         "choose another path")


def write_folder(path: str | os.PathLike, write: Callable[[Path], object], overwrite: bool = False, *,
                 inputs: Iterable[str | os.PathLike] = (), name: str = "--out") -> Path:
    """Fill a new folder with `write(folder)` and put it at `path`, replacing what was there (see `check_output`).

    The new folder is written next to `path` under a hidden name and renamed into place once `write` returns, so
    `path` never holds half an output, and a failure leaves an earlier output untouched.
    """
    inputs = list(inputs)
    path = check_output(path, overwrite, kind="folder", inputs=inputs, name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "tmp")
    staging.mkdir()
    try:
        write(staging)
        check_output(path, overwrite, kind="folder", inputs=inputs, name=name)  # nothing appeared meanwhile
        _swap(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def write_file(path: str | os.PathLike, write: Callable[[Path], object], overwrite: bool = False, *,
               name: str = "--out") -> Path:
    """Write one file with `write(temporary_path)` and move it to `path` (see `check_output`)."""
    path = check_output(path, overwrite, kind="file", name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "tmp")
    try:
        write(staging)
        check_output(path, overwrite, kind="file", name=name)
        if path.is_symlink():
            path.unlink()  # replace the link, not the file it points to
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def _sibling(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def _swap(new: Path, path: Path) -> None:
    """Put the folder `new` at `path`; an old `path` (folder, file or link) is moved aside, then deleted."""
    if not (path.is_symlink() or path.exists()):
        os.rename(new, path)
        return
    old = _sibling(path, "old")
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)  # put the old output back
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


__all__ = ["OVERWRITE_FLAG", "OutputExistsError", "check_output", "write_file", "write_folder"]

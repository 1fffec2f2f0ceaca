"""Atomic file writes: a reader never sees a half-written file, a crash never leaves one.

Each writer writes a temporary file in the same folder, fsyncs it and renames it over the
target (rename is atomic on POSIX within one file system).

JSON is written strictly (RFC 8259): a NaN or infinite float is written as null, never as the
bare `NaN` / `Infinity` other JSON readers refuse. Also here: the two small helpers every
reader of user-supplied paths needs (`not_regular_reason`, `display_path`).
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, strict_json(obj, indent=2) + "\n")


def strict_json(obj: Any, indent: int | None = None) -> str:
    """`obj` as strict JSON: non-finite floats become null (json.dumps would write bare NaN)."""
    return json.dumps(
        _finite_or_none(obj), indent=indent, sort_keys=True, default=_json_default, allow_nan=False
    )


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite_or_none(obj.tolist())
    return obj


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one JSON line; a single write() of a short line, flushed and fsynced.

    Readers must tolerate a torn last line after a hard kill (see `read_jsonl`).
    """
    line = strict_json(record) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON-lines file, ignoring a torn (incomplete) last line left by a killed writer."""
    return _jsonl_lines(path)[0]


def keep_jsonl(path: str | Path, keep: Callable[[dict], bool]) -> None:
    """Keep only the records for which `keep(record)` is true, replacing the file atomically;
    a torn line is dropped too, so that a plain `append_jsonl` after it starts a line of its own.
    Writes nothing when nothing is dropped. Callers that share the file hold its lock."""
    records, n_lines = _jsonl_lines(path)
    kept = [r for r in records if keep(r)]
    if len(kept) != n_lines:
        atomic_write_text(path, "".join(strict_json(r) + "\n" for r in kept))


def _jsonl_lines(path: str | Path) -> tuple[list[dict], int]:
    """The complete records of a JSON-lines file, and how many non-empty lines it has."""
    records: list[dict] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return records, 0
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records, len(lines)


def not_regular_reason(st: os.stat_result) -> str | None:
    """None for a regular file; else what it is ("a FIFO (named pipe)", "a socket", ...).

    Opening a FIFO blocks until a writer appears, and a device can stream forever: readers of
    user-supplied paths check this on `os.stat` before they ever open anything.
    """
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    for test, what in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def display_path(path: str | os.PathLike | bytes) -> str:
    """A path as printable text: bytes that are not valid UTF-8 (kept by Python as lone
    surrogates, PEP 383) are shown as \\xNN escapes, so printing or JSON never fails."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", errors="backslashreplace")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

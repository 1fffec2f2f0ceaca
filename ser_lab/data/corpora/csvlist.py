"""Any corpus listed in a CSV file with the header path,label[,speaker[,group]].

Relative paths are resolved against the CSV file's folder. Labels are matched like folder
names (case-insensitive, with synonyms); an unknown label is its own class with classes="all"
and a problem with classes="paper". Missing speaker -> "unknown"; missing group -> speaker.
`root` may be the CSV file itself or a folder holding exactly one .csv file. A row holding a NUL
byte (in any field) is a listed problem; the CSV file itself must be a regular file (a FIFO
is refused before it is opened).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ser_lab.data.corpora import CorpusManifest, ManifestBuilder
from ser_lab.data.corpora.labels import normalise_name
from ser_lab.errors import CorpusError
from ser_lab.fileio import display_path

REQUIRED = ("path", "label")
OPTIONAL = ("speaker", "group")
UNKNOWN_SPEAKER = "unknown"


def load_csv(root: Path, *, classes: str = "paper") -> CorpusManifest:
    """Build a manifest from a CSV list and audio headers."""
    csv_path = _find_csv(root)
    rows = _read_rows(csv_path)
    builder = ManifestBuilder("csv", csv_path, classes)
    base = csv_path.parent
    for line_no, row in rows:
        where = f"{csv_path}:{line_no}"
        if any("\x00" in (value or "") for value in _values(row)):
            builder.problem(where, "the row holds a NUL byte")
            continue
        raw_path = (row.get("path") or "").strip()
        raw_label = (row.get("label") or "").strip()
        if not raw_path:
            builder.problem(where, "empty path")
            continue
        path = Path(raw_path).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        if not raw_label:
            builder.problem(path, "empty label")
            continue
        label = normalise_name(raw_label)
        if label is None:
            if classes != "all":
                builder.problem(path, f"label {raw_label.lower()!r} not in the 4-class map")
                continue
            label = raw_label.lower()
        speaker = (row.get("speaker") or "").strip() or UNKNOWN_SPEAKER
        group = (row.get("group") or "").strip() or speaker
        builder.add(_utt_id(path, base), path, label, speaker, group=group)
    return builder.build()


def _values(row: dict) -> list[str]:
    """Every cell of a DictReader row (extra cells land in a list under the key None)."""
    out = []
    for value in row.values():
        out += value if isinstance(value, list) else [value]
    return [v for v in out if isinstance(v, str)]


def _utt_id(path: Path, base: Path) -> str:
    """The file's path relative to the CSV folder (absolute if outside it), so that two
    spellings of one file ("a.wav", "./a.wav") are caught as duplicates."""
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _find_csv(root: Path) -> Path:
    if not root.is_dir():
        if not root.is_file():
            raise CorpusError(f"csv corpus: {display_path(root)} is not a regular file or a folder")
        return root
    found = sorted(p for p in root.glob("*.csv") if p.is_file())
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise CorpusError(
            f"csv corpus: point root at the CSV file, or at a folder with exactly one .csv "
            f"(found in {root}: {names})"
        )
    return found[0]


def _read_rows(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; the header must name at least path and label."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [name for name in REQUIRED if name not in header]
            if missing:
                raise CorpusError(
                    f"{csv_path}: header must be path,label[,speaker[,group]]; "
                    f"got {','.join(reader.fieldnames or []) or 'an empty file'}"
                )
            reader.fieldnames = header
            return [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError:
        raise CorpusError(f"{csv_path} is not a UTF-8 text file") from None
    except csv.Error as err:
        raise CorpusError(f"{csv_path} is not a valid CSV file: {err}") from None

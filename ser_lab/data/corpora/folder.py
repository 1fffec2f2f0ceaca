"""Any corpus laid out as one sub-folder per label: root/<label>/*.{wav,flac,ogg,mp3}.

Folder names are matched case-insensitively to known emotion names and their synonyms
("Anger", "angry" -> angry; "happiness", "joy" -> happy; ...). A folder name that is not a
known emotion is kept as its own class with classes="all" and reported as a problem with
classes="paper" (it cannot be placed in the 4-class map).

Files may sit directly in the label folder (speaker "unknown") or one level deeper in a
speaker folder: root/<label>/<speaker>/*.wav. `speaker_regex` (a regular expression with one
group or a group named "speaker", searched in the file name without extension) overrides both.
group = speaker. A label folder that holds no file at all is a listed problem (its class would
otherwise vanish without a word).
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lab.data.corpora import AUDIO_EXTENSIONS, CorpusManifest, ManifestBuilder, iter_files
from ser_lab.data.corpora.labels import normalise_name
from ser_lab.errors import ConfigError

UNKNOWN_SPEAKER = "unknown"


def load_folder(
    root: Path, *, classes: str = "paper", speaker_regex: str | None = None
) -> CorpusManifest:
    """Build a manifest from label folders and audio headers."""
    pattern = _compile(speaker_regex)
    builder = ManifestBuilder("folder", root, classes)
    used_folders = set()
    for path in iter_files(root, recursive=True):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            builder.problem(path, "not inside a label folder")
            continue
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            builder.problem(path, "not an audio file")
            continue
        folder = rel.parts[0]
        used_folders.add(folder)
        label = normalise_name(folder)
        if label is None:
            if classes != "all":
                builder.problem(path, f"label {folder.lower()!r} not in the 4-class map")
                continue
            label = folder.strip().lower()
        speaker = _speaker(rel, pattern)
        if speaker is None:
            builder.problem(path, "speaker_regex does not match the file name")
            continue
        utt_id = rel.with_suffix("").as_posix()
        builder.add(utt_id, path, label, speaker)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in used_folders:
            builder.problem(folder, "empty label folder: no files in it")
    return builder.build()


def _compile(speaker_regex: str | None) -> re.Pattern[str] | None:
    if speaker_regex is None:
        return None
    try:
        pattern = re.compile(speaker_regex)
    except re.error as err:
        raise ConfigError(f"speaker_regex is not a valid regular expression: {err}") from None
    if pattern.groups < 1:
        raise ConfigError(f"speaker_regex needs a capturing group; got {speaker_regex!r}")
    return pattern


def _speaker(rel: Path, pattern: re.Pattern[str] | None) -> str | None:
    """The speaker of root/<label>/[<speaker>/]file, or None if speaker_regex fails."""
    if pattern is not None:
        match = pattern.search(rel.stem)
        if match is None:
            return None
        named = match.groupdict().get("speaker")
        return named if named is not None else match.group(1)
    if len(rel.parts) >= 3:
        return rel.parts[1]
    return UNKNOWN_SPEAKER

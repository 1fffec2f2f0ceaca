"""CREMA-D: AudioWAV/SPK_SENT_EMO_LVL.wav, e.g. 1001_DFA_ANG_XX.wav.

SPK = actor id (1001 ... 1091), SENT = sentence code, EMO in ANG DIS FEA HAP NEU SAD,
LVL = intensity (LO MD HI XX). `root` may be the corpus folder (with AudioWAV/ inside) or the
AudioWAV folder itself. speaker = group = actor id.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lab.data.corpora import CorpusManifest, ManifestBuilder, iter_files
from ser_lab.data.corpora.labels import CREMAD_CODES

NAME = re.compile(
    r"^(?P<speaker>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{1,2})$"
)


def load_cremad(root: Path, *, classes: str = "paper") -> CorpusManifest:
    """Build the CREMA-D manifest from file names and wav headers."""
    wav_dir = root / "AudioWAV" if (root / "AudioWAV").is_dir() else root
    builder = ManifestBuilder("cremad", root, classes)
    for path in iter_files(wav_dir):
        if path.suffix.lower() != ".wav":
            builder.problem(path, "not a .wav file")
            continue
        match = NAME.match(path.stem)
        if match is None:
            builder.problem(path, "name does not match SPK_SENT_EMO_LVL.wav")
            continue
        code = match["emotion"]
        if code not in CREMAD_CODES:
            builder.problem(path, f"unknown emotion code {code!r}")
            continue
        builder.add(path.stem, path, CREMAD_CODES[code], match["speaker"])
    return builder.build()

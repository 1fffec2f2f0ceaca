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
        match = builder.named_wav(path, NAME, "SPK_SENT_EMO_LVL.wav")
        if match:
            builder.add_coded(path, match["emotion"], CREMAD_CODES, match["speaker"])
    return builder.build()

"""EmoDB (Berlin Database of Emotional Speech): wav/SSTnnEv.wav.

SS = speaker (03 ... 16), Tnn = sentence code (a01 ... b10), E = emotion letter
(W anger, L boredom, E disgust, A fear, F happiness, T sadness, N neutral), v = version letter.
The corpus has no sessions, so group = speaker. `root` may be the corpus folder (with wav/
inside) or the wav folder itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lab.data.corpora import CorpusManifest, ManifestBuilder, iter_files
from ser_lab.data.corpora.labels import EMODB_CODES

NAME = re.compile(
    r"^(?P<speaker>\d{2})(?P<sentence>[a-z]\d{2})(?P<emotion>[A-Z])(?P<version>[a-z])$"
)


def load_emodb(root: Path, *, classes: str = "paper") -> CorpusManifest:
    """Build the EmoDB manifest from file names and wav headers."""
    wav_dir = root / "wav" if (root / "wav").is_dir() else root
    builder = ManifestBuilder("emodb", root, classes)
    for path in iter_files(wav_dir):
        match = builder.named_wav(path, NAME, "SSTnnEv.wav")
        if match:
            builder.add_coded(path, match["emotion"], EMODB_CODES, match["speaker"], "emotion letter")
    return builder.build()

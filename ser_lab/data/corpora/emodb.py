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
        if path.suffix.lower() != ".wav":
            builder.problem(path, "not a .wav file")
            continue
        match = NAME.match(path.stem)
        if match is None:
            builder.problem(path, "name does not match SSTnnEv.wav")
            continue
        code = match["emotion"]
        if code not in EMODB_CODES:
            builder.problem(path, f"unknown emotion letter {code!r}")
            continue
        speaker = match["speaker"]
        builder.add(path.stem, path, EMODB_CODES[code], speaker)
    return builder.build()

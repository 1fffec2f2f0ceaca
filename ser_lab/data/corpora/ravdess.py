"""RAVDESS speech: Actor_XX/03-01-EE-II-SS-RR-AA.wav (searched recursively).

Fields: modality (03 = audio-only), vocal channel (01 = speech, 02 = song), emotion EE
(01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised),
intensity, statement, repetition, actor AA. Only audio-only speech is used; song and other
modalities are reported as problems so a user sees they were skipped. speaker = group = actor.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_lab.data.corpora import AUDIO_EXTENSIONS, CorpusManifest, ManifestBuilder, iter_files
from ser_lab.data.corpora.labels import RAVDESS_CODES

NAME = re.compile(
    r"^(?P<modality>\d{2})-(?P<channel>\d{2})-(?P<emotion>\d{2})-(?P<intensity>\d{2})"
    r"-(?P<statement>\d{2})-(?P<repetition>\d{2})-(?P<actor>\d{2})$"
)


def load_ravdess(root: Path, *, classes: str = "paper") -> CorpusManifest:
    """Build the RAVDESS speech manifest from file names and wav headers."""
    builder = ManifestBuilder("ravdess", root, classes)
    for path in iter_files(root, recursive=True):
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            builder.problem(path, "not an audio file")
            continue
        match = NAME.match(path.stem)
        if match is None:
            builder.problem(path, "name does not match MM-VV-EE-II-SS-RR-AA")
            continue
        if match["modality"] != "03":
            builder.problem(path, "not audio-only (modality is not 03)")
            continue
        if match["channel"] != "01":
            builder.problem(path, "not speech (vocal channel is not 01; 02 = song)")
            continue
        if path.suffix.lower() != ".wav":
            builder.problem(path, "not a .wav file")
            continue
        builder.add_coded(path, match["emotion"], RAVDESS_CODES, f"Actor_{match['actor']}")
    return builder.build()

"""IEMOCAP: labels from Session*/dialog/EmoEvaluation/*.txt, audio in Session*/sentences/wav.

An evaluation line looks like
    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
and its audio is SessionN/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav.
The speaker is the session plus the gender of the *speaking* actor, which is the letter of
the last underscore part (F000 -> female, M012 -> male): Ses01F_impro01_M003 is "Ses01M".
group = "Session1" ... "Session5" (for leave-one-session-out). Excited is merged into happy
(as in the paper); "xxx" (no annotator agreement) is left out on purpose.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ser_lab.data.corpora import CorpusManifest, ManifestBuilder
from ser_lab.data.corpora.labels import IEMOCAP_CODES, IEMOCAP_NO_AGREEMENT
from ser_lab.errors import CorpusError
from ser_lab.fileio import not_regular_reason

LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\t(?P<utt>\S+)\t(?P<label>\S+)\t\[")
UTT = re.compile(r"^(?P<session>Ses\d{2})[FM]_.+_(?P<gender>[FM])\d+$")
SESSION_DIR = re.compile(r"^Session(\d+)$")


def load_iemocap(
    root: Path, *, classes: str = "paper", improvised_only: bool = False
) -> CorpusManifest:
    """Build the IEMOCAP manifest from the evaluation files and wav headers.

    improvised_only=True keeps only improvised dialogs (names containing "impro"), which some
    IEMOCAP papers use; scripted ones are then counted as left out on purpose.
    """
    sessions = sorted(
        (int(m[1]), p) for p in root.iterdir() if p.is_dir() and (m := SESSION_DIR.match(p.name))
    )
    if not sessions:
        raise CorpusError(f"no Session1 ... Session5 folders in IEMOCAP root {root}")
    builder = ManifestBuilder("iemocap", root, classes)
    for _, session_dir in sessions:
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        if not eval_dir.is_dir():
            builder.problem(eval_dir, "EmoEvaluation folder missing")
            continue
        for txt in sorted(eval_dir.glob("*.txt")):
            if not txt.name.startswith("."):
                _read_evaluation(txt, session_dir, builder, improvised_only)
    return builder.build()


def _read_evaluation(
    txt: Path, session_dir: Path, builder: ManifestBuilder, improvised_only: bool
) -> None:
    """Add every utterance of one dialog's evaluation file (other lines are annotator detail)."""
    try:
        kind = not_regular_reason(os.stat(txt))
        if kind:
            builder.problem(txt, f"not a regular file ({kind}): never opened")
            return
        text = txt.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        builder.problem(txt, f"unreadable evaluation file ({err.strerror})")
        return
    n_lines = 0
    for line in text.splitlines():
        match = LINE.match(line)
        if match is None:
            continue
        n_lines += 1
        utt, code = match["utt"], match["label"]
        dialog = utt.rsplit("_", 1)[0]
        wav = session_dir / "sentences" / "wav" / dialog / f"{utt}.wav"
        name = UTT.match(utt)
        if name is None:
            builder.problem(wav, "utterance name does not match SesNN[FM]_<dialog>_[FM]nnn")
            continue
        if code == IEMOCAP_NO_AGREEMENT:
            builder.exclude("no annotator agreement (xxx)", code)
            continue
        if code not in IEMOCAP_CODES:
            builder.problem(wav, f"unknown emotion label {code!r}")
            continue
        label = IEMOCAP_CODES[code]
        if improvised_only and "impro" not in dialog:
            builder.exclude("scripted dialog (improvised_only)", label)
            continue
        speaker = name["session"] + name["gender"]
        builder.add(utt, wav, label, speaker, group=session_dir.name)
    if n_lines == 0:
        builder.problem(txt, "no evaluation lines in file")

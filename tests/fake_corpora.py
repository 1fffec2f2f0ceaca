"""Tiny fake corpora laid out exactly like the real ones, for the adapter tests.

Each builder writes a handful of 0.6 s noise wavs into a tmp folder using the real corpus's
folder layout and file naming, plus the awkward cases an adapter must report instead of
silently using: unknown labels, unparseable names, a non-audio file, a corrupt "wav", a
labelled utterance whose audio is missing. The docstring of each builder lists what it made,
and the tests check the adapter found exactly that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SECONDS = 0.6


def write_wav(
    path: Path, seconds: float = SECONDS, sample_rate: int = 16000, seed: int = 0
) -> Path:
    """A short noise clip (16-bit PCM), like any corpus file as far as a header reader can tell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = (0.1 * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32)
    sf.write(str(path), samples, sample_rate, subtype="PCM_16")
    return path


def write_junk(path: Path, text: str = "not audio\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------- EmoDB


EMODB_GOOD = [
    "03a01Wa", "03a02Nc", "03a04Fd", "03a05Tb", "03a01Lb", "03b02Ea", "03a02Ab",
    "08a01Wa", "08a02Nb", "08b01Fa", "08a05Ta",
]  # fmt: skip


def make_emodb(root: Path) -> Path:
    """root/wav/ with EMODB_GOOD (7 emotions; 4-class: W 2, N 2, F 2, T 2 over speakers 03, 08),
    plus: 03a01Xa.wav (unknown emotion letter), badname.wav (unparseable), notes.txt (not a
    wav), 08a04Wc.wav (a text file named .wav: unreadable). root/README.md is ignored."""
    wav = root / "wav"
    for i, stem in enumerate(EMODB_GOOD):
        write_wav(wav / f"{stem}.wav", seed=i)
    write_wav(wav / "03a01Xa.wav")
    write_wav(wav / "badname.wav")
    write_junk(wav / "notes.txt")
    write_junk(wav / "08a04Wc.wav")
    write_junk(root / "README.md", "# fake EmoDB\n")
    return root


# ---------------------------------------------------------------- IEMOCAP


IEMOCAP_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def _iemocap_block(start: float, utt: str, code: str) -> str:
    """One utterance as the real EmoEvaluation files write it, annotator lines included."""
    return (
        f"[{start:.4f} - {start + 1.9:.4f}]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]\n"
        "C-E1:\tNeutral;\t()\n"
        "C-E2:\tNeutral;\t()\n"
        "A-E1:\tval 3; act 2; dom  2;\t()\n"
        "\n"
    )


def make_iemocap(root: Path, sessions: int = 5) -> Path:
    """root/SessionN/{dialog/EmoEvaluation/*.txt, sentences/wav/<dialog>/<utt>.wav}.

    Per session N, dialogs SesNNF_impro01 and SesNNM_script01_1, each with one utterance of
    F and M speakers for each of neu, ang, hap, exc, sad (so 10 usable per dialog, 20 per
    session, happy twice as frequent), plus in every session:
    - one "fru" and one "xxx" line (left out: not 4-class / no agreement),
    - in Session1 only: a "zzz" line (unknown label), a line whose wav is missing, an
      unparseable utterance name, and a stray evaluation file without any utterance line.
    """
    codes = ["neu", "ang", "hap", "exc", "sad"]
    for n in range(1, sessions + 1):
        session = root / f"Session{n}"
        ses = f"Ses{n:02d}"
        for dialog in (f"{ses}F_impro01", f"{ses}M_script01_1"):
            text = IEMOCAP_HEADER
            t = 1.0
            k = 0
            for code in codes:
                for gender in "FM":
                    utt = f"{dialog}_{gender}{k:03d}"
                    k += 1
                    text += _iemocap_block(t, utt, code)
                    t += 3.0
                    write_wav(
                        session / "sentences" / "wav" / dialog / f"{utt}.wav", seed=n * 100 + k
                    )
            for code in ("fru", "xxx"):
                utt = f"{dialog}_F{k:03d}"
                k += 1
                text += _iemocap_block(t, utt, code)
                write_wav(session / "sentences" / "wav" / dialog / f"{utt}.wav")
            if n == 1 and "impro" in dialog:
                text += _iemocap_block(t, f"{dialog}_M{k:03d}", "zzz")
                write_wav(session / "sentences" / "wav" / dialog / f"{dialog}_M{k:03d}.wav")
                text += _iemocap_block(t, f"{dialog}_F{k + 1:03d}", "ang")  # no wav written
                text += _iemocap_block(t, "garbage", "neu")
            write_junk(session / "dialog" / "EmoEvaluation" / f"{dialog}.txt", text)
        if n == 1:
            write_junk(session / "dialog" / "EmoEvaluation" / "notes.txt", "nothing here\n")
            # The real release also has sub-folders with per-annotator files: not read.
            write_junk(session / "dialog" / "EmoEvaluation" / "Categorical" / "x_cat.txt")
    return root


# ---------------------------------------------------------------- RAVDESS


def make_ravdess(root: Path) -> Path:
    """root/Actor_01, Actor_02 with 03-01-EE-01-01-01-AA.wav for EE in 01..08 (4-class: one
    each of neutral 01, happy 03, sad 04, angry 05 per actor, 8 in all; calm 02, fearful 06,
    disgust 07, surprised 08 left out), plus: a song file (03-02-...), an audio-video file
    name (01-01-...), an unknown emotion (09), an unparseable name, a non-audio file."""
    for actor in (1, 2):
        folder = root / f"Actor_{actor:02d}"
        for emotion in range(1, 9):
            write_wav(
                folder / f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav", seed=actor * 10 + emotion
            )
    folder = root / "Actor_01"
    write_wav(folder / "03-02-05-01-01-01-01.wav")  # song
    write_wav(folder / "01-01-05-01-01-01-01.wav")  # audio-video modality
    write_wav(folder / "03-01-09-01-01-01-01.wav")  # unknown emotion
    write_wav(folder / "03-01-05-01-01.wav")  # too few fields
    write_junk(folder / "readme.txt")
    return root


# ---------------------------------------------------------------- CREMA-D


CREMAD_GOOD = [
    "1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1001_IOM_NEU_XX", "1001_ITH_SAD_LO",
    "1001_DFA_DIS_XX", "1002_DFA_ANG_XX", "1002_IEO_HAP_MD", "1002_IOM_NEU_XX",
    "1002_ITH_SAD_XX", "1002_DFA_FEA_XX",
]  # fmt: skip


def make_cremad(root: Path) -> Path:
    """root/AudioWAV/ with CREMAD_GOOD (4-class: 8 over speakers 1001 and 1002; DIS, FEA
    left out), plus: 1001_DFA_BOR_XX.wav (unknown emotion), 1001-DFA-ANG.wav (unparseable),
    1076_MTI_SAD_XX.wav empty (0 bytes, as in the real release), a non-audio file."""
    wav = root / "AudioWAV"
    for i, stem in enumerate(CREMAD_GOOD):
        write_wav(wav / f"{stem}.wav", seed=i)
    write_wav(wav / "1001_DFA_BOR_XX.wav")
    write_wav(wav / "1001-DFA-ANG.wav")
    (wav / "1076_MTI_SAD_XX.wav").write_bytes(b"")
    write_junk(wav / "SentenceFilenames.csv", "Stimulus_Number,Sentence\n")
    return root


# ---------------------------------------------------------------- label folders and CSV


def make_folder(root: Path) -> Path:
    """root/<label>/ folders: Anger/ (2 wav), happiness/ (1 flac, 1 ogg), Sad/spk1/ and
    Sad/spk2/ (1 wav each: speakers from sub-folders), neutral/ (1 wav, 1 .txt), boredom/
    (1 wav: known, not 4-class), whatever/ (1 wav: unknown label), and loose.wav in the root."""
    write_wav(root / "Anger" / "a1.wav", seed=1)
    write_wav(root / "Anger" / "a2.wav", seed=2)
    path = root / "happiness" / "h1.flac"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(9600, dtype=np.float32) + 0.01, 16000)
    sf.write(str(root / "happiness" / "h2.ogg"), np.full(9600, 0.01, np.float32), 16000)
    write_wav(root / "Sad" / "spk1" / "s1.wav", seed=3)
    write_wav(root / "Sad" / "spk2" / "s2.wav", seed=4)
    write_wav(root / "neutral" / "n1.wav", seed=5)
    write_junk(root / "neutral" / "notes.txt")
    write_wav(root / "boredom" / "b1.wav", seed=6)
    write_wav(root / "whatever" / "w1.wav", seed=7)
    write_wav(root / "loose.wav", seed=8)
    return root


def make_csv(root: Path) -> Path:
    """root/list.csv naming audio/*.wav by relative and absolute paths. Rows: 4 usable
    (angry, Happy, sad, Neutral; speakers A and B; one row without a group), one "bored"
    (left out with paper classes), one unknown label "meh", one missing file, one empty
    label, one empty path, one non-audio file."""
    audio = root / "audio"
    for i, name in enumerate(["a", "h", "s", "n", "b", "m", "x"]):
        write_wav(audio / f"{name}.wav", seed=i)
    write_junk(audio / "t.wav")
    rows = [
        "path,label,speaker,group",
        "audio/a.wav,angry,A,g1",
        f"{(audio / 'h.wav').resolve()},Happy,A,g1",
        "audio/s.wav,sad,B,",
        "./audio/n.wav, Neutral ,B,g2",
        "audio/b.wav,bored,B,g2",
        "audio/m.wav,meh,B,g2",
        "audio/gone.wav,angry,B,g2",
        "audio/x.wav,,B,g2",
        ",sad,B,g2",
        "audio/t.wav,sad,B,g2",
    ]
    write_junk(root / "list.csv", "\n".join(rows) + "\n")
    return root / "list.csv"

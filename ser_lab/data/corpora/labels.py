"""Each corpus's own label codes, the emotion names they stand for, and the class selection.

Every adapter turns its corpus's codes (EmoDB's letter "W", IEMOCAP's "ang", RAVDESS's "05",
CREMA-D's "ANG", a folder named "Anger") into one shared vocabulary of emotion names, so that
"angry" means the same thing whatever corpus it came from. The paper's four classes
(`PAPER_EMOTIONS`: neutral, angry, happy, sad) are a subset of that vocabulary.

`classes="paper"` keeps only the four; `classes="all"` keeps every class the corpus has, with
the paper's four first (in their fixed order) and the others after them, sorted.
"""

from __future__ import annotations

from collections.abc import Iterable

from ser_lab.data.corpora.base import PAPER_EMOTIONS
from ser_lab.errors import ConfigError

CLASS_SETS: tuple[str, ...] = ("paper", "all")

# Why an utterance with a valid, known label was left out on purpose (not a problem).
NOT_IN_SUBSET = "not in the 4-class subset"

# EmoDB: the emotion letter in SSTnnEv.wav (German initials: Wut, Langeweile, Ekel, Angst,
# Freude, Trauer, Neutral).
EMODB_CODES: dict[str, str] = {
    "W": "angry",
    "L": "bored",
    "E": "disgust",
    "A": "fearful",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}

# IEMOCAP: the category in the EmoEvaluation lines. "exc" (excited) is merged into happy, as in
# the paper (and most IEMOCAP work). "xxx" means the annotators did not agree: no label at all.
IEMOCAP_CODES: dict[str, str] = {
    "neu": "neutral",
    "ang": "angry",
    "hap": "happy",
    "exc": "happy",
    "sad": "sad",
    "fru": "frustrated",
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgust",
    "oth": "other",
}
IEMOCAP_NO_AGREEMENT = "xxx"

# RAVDESS: the third field of 03-01-EE-II-SS-RR-AA.wav.
RAVDESS_CODES: dict[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}

# CREMA-D: the third field of SPK_SENT_EMO_LVL.wav.
CREMAD_CODES: dict[str, str] = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}

# Free-form names (folder names, CSV labels), matched case-insensitively.
SYNONYMS: dict[str, str] = {
    **{k: "neutral" for k in ("neutral", "neu", "neutrality", "none")},
    **{k: "angry" for k in ("angry", "anger", "ang", "mad")},
    **{k: "happy" for k in ("happy", "happiness", "hap", "joy", "joyful", "glad")},
    **{k: "sad" for k in ("sad", "sadness", "unhappy")},
    **{k: "calm" for k in ("calm",)},
    **{k: "bored" for k in ("bored", "boredom")},
    **{k: "disgust" for k in ("disgust", "disgusted", "dis")},
    **{k: "fearful" for k in ("fearful", "fear", "fea", "afraid", "anxiety", "anxious", "scared")},
    **{k: "surprised" for k in ("surprised", "surprise", "sur")},
    **{k: "frustrated" for k in ("frustrated", "frustration", "fru")},
    **{k: "excited" for k in ("excited", "excitement", "exc")},
    **{k: "other" for k in ("other", "oth")},
}


def check_classes(classes: str) -> None:
    """Refuse an unknown class-set name at the boundary."""
    if classes not in CLASS_SETS:
        raise ConfigError(f"classes must be one of {', '.join(CLASS_SETS)}; got {classes!r}")


def normalise_name(name: str) -> str | None:
    """A free-form label ("Anger", " happiness ") as an emotion name, or None if unknown."""
    return SYNONYMS.get(name.strip().lower())


def keeps(label: str, classes: str) -> bool:
    """Whether an utterance with this emotion name belongs to the chosen class set."""
    return classes == "all" or label in PAPER_EMOTIONS


def ordered_labels(present: Iterable[str]) -> tuple[str, ...]:
    """The class tuple of a manifest: the paper's four first (fixed order), then the rest sorted.

    Only classes that actually occur are listed, so a class id never points at an empty class.
    """
    present = set(present)
    head = [name for name in PAPER_EMOTIONS if name in present]
    tail = sorted(present - set(PAPER_EMOTIONS))
    return tuple(head + tail)

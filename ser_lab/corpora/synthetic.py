"""The built-in synthetic emotional-speech corpus (the default dataset: no download needed).

THIS CORPUS IS SYNTHETIC. Every file is produced by the source-filter voice model below, not
recorded from a person. It exists so that the app, the command line and the tests work on a
fresh machine with no data; scores on it say whether the pipeline works, not how well a model
recognises emotion in real speech (use a real corpus such as EmoDB or IEMOCAP for that).

How an utterance is made (each rule with its source)
----------------------------------------------------
Voice (Peterson & Barney 1952; Titze 1994; pulse shape Rosenberg 1971; resonators Klatt 1980):
- Source: a Rosenberg glottal-flow pulse per pitch period (opening and closing phases set by
  an open quotient and a speed quotient), differentiated for lip radiation; the pulse shape
  gives roughly the -12 dB/octave glottal tilt. Jitter (0.5-1 % cycle-to-cycle period
  perturbation) and shimmer (3-5 % amplitude perturbation) are drawn per speaker.
- Aspiration noise, modulated by the glottal cycle, is added in proportion to breathiness;
  a breathier voice also has a higher open quotient, a pressed voice a lower one.
- Filter: a cascade of second-order (Klatt) resonators, F1-F3 from the Peterson & Barney vowel
  table (/i/ /E/ /a/ /O/ /u/, adult male values, +/-4 % per vowel token), F4 = 3500 Hz and
  F5 = 4500 Hz fixed, all scaled by a per-speaker vocal-tract-length factor (0.95-1.05 for
  low, 1.12-1.22 for high voices); bandwidths 60-120 Hz growing with frequency. F1-F3 glide
  between segment targets (coarticulation), updated every 0.5 ms.
- Speech is a sequence of syllables (about 4-5 syllables/s in neutral speech, 150-300 ms
  each): an optional onset consonant (fricative /s/ /S/ /f/ /h/ noise, plosive closure + burst
  /p/ /t/ /k/, or voiced /m/ /n/ /l/ with their own formants), a vowel, an optional coda.
  Syllables form phrases separated by pauses, with phrase-final lengthening; F0 declines over
  each phrase (declination) with local accents; loudness falls over the phrase and rises on
  accented syllables.
- Speakers (ids spk01, spk02, ...): odd ids low (male-like, mean F0 100-140 Hz), even ids high
  (female-like, 180-240 Hz); each speaker also has its own F0 range, vocal-tract length,
  open quotient, breathiness, tilt, jitter, shimmer, speech rate, loudness and expressiveness.

Emotions, relative to the speaker's neutral voice (Banse & Scherer 1996; Juslin & Laukka 2003):
| cue | angry | happy | sad | neutral |
|---|---|---|---|---|
| F0 mean | +30 % | +25 % | -10 % | baseline |
| F0 std (semitones) | 3.5 | 4.5 | 1.25 | 2 |
| F0 accents (60 % of them; the rest mixed) | sharp, falling | rising | small, flat | mild |
| declination over a phrase | 3 st | 1 st | 2.5 st | 2 st |
| intensity | +7.5 dB | +3 dB | -5 dB | baseline |
| speech rate | +15 % | +10 % | -20 % | baseline |
| tilt above 500 Hz | +5 dB/oct (flatter) | +2.5 dB/oct | -4 dB/oct (steeper) | 0 |
| voice onsets (attack) | abrupt, ~12 ms | fairly abrupt, ~22 ms | slow, ~90 ms | ~40 ms |
| pauses | short (~0.15 s) | short (~0.17 s) | longer (~0.55 s), more | ~0.3 s |
| voice quality (open quot.) | tense (0.42), rough | bright (0.52) | breathy (0.72) | modal (0.60) |
| jitter and shimmer | 1.5x the speaker's | 1x | 1.6x (irregular) | 1x |

These are centres, not constants. Every utterance draws its own values: an expression strength
(the speaker's expressiveness 0.8-1.2 times a per-utterance factor around 1, sd 0.2) scales
its distance from neutral, and each cue gets its own spread (F0 mean +/-6 %, F0 std +/-0.35 st,
intensity +/-1.5 dB, rate +/-7 %, tilt +/-1.2 dB/oct, onsets and pauses +/-35 %, ...). The
accent shape is drawn per accent, so a shape is a tendency of an emotion, never its label.
Neighbouring emotions therefore overlap the way acted speech does: angry <-> happy share high
arousal, neutral <-> sad low arousal, angry <-> sad are far apart.

Recording conditions, drawn per utterance: the active-speech level is set to -34 dBFS plus the
speaker's habitual loudness plus the emotion's intensity plus a random recording gain of
+/-6 dB (so loudness alone does not give the emotion away, while the level difference relative
to the speaker remains); additive white or pink noise at 15-40 dB SNR; a length of 1.5-8 s
(mean about 4 s, loosely longer for slower speech); a limiter that scales the rare clip whose
peak would exceed 0.98. Files are 16 kHz mono 16-bit PCM WAV.

Determinism: a speaker's voice comes from numpy's generator seeded with (seed, 0, speaker) and
an utterance from (seed, 1, speaker, emotion, k), so the same seed and size give byte-identical
files whatever the number of worker processes (and a smaller size is a subset of a larger one).

Difficulty (calibration): a logistic regression on per-utterance mean and std of the 128-band
log-Mel spectrogram, cross-validated by speaker, scores about 70 % UA on the default size, with
the errors mostly angry <-> happy and neutral <-> sad (tests/test_synthetic.py keeps it <= 95 %).

References: R. Banse & K. R. Scherer, "Acoustic profiles in vocal emotion expression", J. Pers.
Soc. Psychol. 70(3), 1996; P. N. Juslin & P. Laukka, "Communication of emotions in vocal
expression and music performance: different channels, same code?", Psychol. Bull. 129(5), 2003;
G. E. Peterson & H. L. Barney, "Control methods used in a study of the vowels", JASA 24(2),
1952; I. R. Titze, "Principles of Voice Production", Prentice Hall, 1994; A. E. Rosenberg,
"Effect of glottal pulse shape on the quality of natural vowels", JASA 49(2B), 1971;
D. H. Klatt, "Software for a cascade/parallel formant synthesizer", JASA 67(3), 1980.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import fft

from ser_lab import procs
from ser_lab.corpora.base import PAPER_EMOTIONS, Manifest, Utterance
from ser_lab.errors import ConfigError, CorpusError
from ser_lab.paths import cache_dir

# Bumped whenever a change to the generator changes the audio it writes.
GENERATOR_VERSION = 3
SAMPLE_RATE = 16000

SYNTHETIC_NOTICE = (
    "The built-in corpus is synthetic: every clip is generated by a source-filter voice model "
    "whose emotions follow published acoustic profiles, not recorded from real people. "
    "Results on it show that the pipeline works, not how well a model recognises emotion in "
    "real speech; use a real corpus (e.g. EmoDB, IEMOCAP) for that."
)


@dataclass(frozen=True)
class CorpusSize:
    """How many speakers, and how many utterances each speaker says per emotion."""

    speakers: int
    per_emotion: int

    @property
    def utterances(self) -> int:
        return self.speakers * len(PAPER_EMOTIONS) * self.per_emotion


SIZES: dict[str, CorpusSize] = {
    "default": CorpusSize(speakers=12, per_emotion=12),  # 576 utterances, ~38 min of audio
    "medium": CorpusSize(speakers=8, per_emotion=6),  # 192: the difficulty test
    "small": CorpusSize(speakers=4, per_emotion=4),  # 64: tests
    "tiny": CorpusSize(speakers=4, per_emotion=2),  # 32: smoke tests
}

MIN_SECONDS = 1.5
MAX_SECONDS = 8.0
METADATA_FIELDS = ("utt_id", "file", "label", "speaker", "group", "duration")
_PARTIAL_TAG = ".partial-"

# ---------------------------------------------------------------------------------------------
# Phonetic tables
# ---------------------------------------------------------------------------------------------

# Peterson & Barney (1952), adult male F1/F2/F3 in Hz.
VOWELS: dict[str, tuple[float, float, float]] = {
    "i": (270.0, 2290.0, 3010.0),
    "E": (530.0, 1840.0, 2480.0),
    "a": (730.0, 1090.0, 2440.0),
    "O": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
F4_F5 = (3500.0, 4500.0)  # fixed higher formants (adult male), scaled by vocal-tract length

# Voiced consonants: formants (male) and level relative to a vowel in dB.
VOICED_CONSONANTS: dict[str, tuple[tuple[float, float, float], float]] = {
    "m": ((250.0, 1100.0, 2200.0), -10.0),
    "n": ((250.0, 1500.0, 2500.0), -10.0),
    "l": ((360.0, 1100.0, 2600.0), -5.0),
}
# Noise consonants: pass band (Hz) and level relative to a vowel in dB. /h/ goes through the
# vocal tract instead (its band is unused).
FRICATIVES: dict[str, tuple[tuple[float, float], float]] = {
    "s": ((3800.0, 7600.0), -14.0),
    "S": ((1800.0, 5000.0), -12.0),
    "f": ((1000.0, 7600.0), -22.0),
    "h": ((0.0, 0.0), -16.0),
}
PLOSIVES: dict[str, tuple[tuple[float, float], float]] = {
    "p": ((500.0, 2000.0), -10.0),
    "t": ((3000.0, 7000.0), -8.0),
    "k": ((1500.0, 3500.0), -8.0),
}


ACCENT_SHAPES = ("mild", "fall", "rise", "flat")


@dataclass(frozen=True)
class EmotionProfile:
    """Centre of each cue for one emotion, as a deviation from the speaker's neutral voice."""

    f0_shift: float  # relative change of mean F0 (0.30 = +30 %)
    f0_std_st: float  # F0 standard deviation over the utterance, semitones
    intensity_db: float
    rate: float  # relative speech rate (1.15 = 15 % faster)
    tilt_db_oct: float  # extra source tilt above 500 Hz; > 0 flatter (more HF energy)
    onset_ms: float  # attack time of voiced segments
    pause_s: float  # mean pause between phrases
    phrase_syllables: float  # mean syllables per phrase (fewer = more pauses)
    open_quotient: float  # glottal open quotient (low = tense/pressed, high = breathy)
    breathiness: float  # aspiration noise added to the speaker's own
    irregularity: float  # jitter and shimmer relative to the speaker's own
    roughness: float  # period-to-period amplitude alternation (rough voice)
    accent_prob: float  # share of accented syllables
    accent_db: float  # extra loudness of an accented syllable
    declination_st: float  # F0 fall over a phrase, semitones
    # probability of each accent shape in ACCENT_SHAPES order: each accent (and each phrase
    # end) draws its own shape, so the shape is a tendency, never a label
    shapes: tuple[float, float, float, float]


EMOTIONS: dict[str, EmotionProfile] = {
    "neutral": EmotionProfile(
        f0_shift=0.0, f0_std_st=2.0, intensity_db=0.0, rate=1.0, tilt_db_oct=0.0,
        onset_ms=40.0, pause_s=0.30, phrase_syllables=6.0, open_quotient=0.60, breathiness=0.0,
        irregularity=1.0, roughness=0.0, accent_prob=0.30, accent_db=1.5, declination_st=2.0,
        shapes=(0.6, 0.15, 0.15, 0.1)),
    "angry": EmotionProfile(
        f0_shift=0.30, f0_std_st=3.5, intensity_db=7.5, rate=1.15, tilt_db_oct=5.0,
        onset_ms=12.0, pause_s=0.15, phrase_syllables=7.0, open_quotient=0.42,
        breathiness=-0.03, irregularity=1.5, roughness=0.10, accent_prob=0.45, accent_db=3.0,
        declination_st=3.0, shapes=(0.25, 0.6, 0.15, 0.0)),
    "happy": EmotionProfile(
        f0_shift=0.25, f0_std_st=4.5, intensity_db=3.0, rate=1.10, tilt_db_oct=2.5,
        onset_ms=22.0, pause_s=0.17, phrase_syllables=7.0, open_quotient=0.52, breathiness=0.0,
        irregularity=1.0, roughness=0.0, accent_prob=0.50, accent_db=3.0, declination_st=1.0,
        shapes=(0.25, 0.15, 0.6, 0.0)),
    "sad": EmotionProfile(
        f0_shift=-0.10, f0_std_st=1.25, intensity_db=-5.0, rate=0.80, tilt_db_oct=-4.0,
        onset_ms=90.0, pause_s=0.55, phrase_syllables=4.0, open_quotient=0.72,
        breathiness=0.10, irregularity=1.6, roughness=0.03, accent_prob=0.15, accent_db=0.5,
        declination_st=2.5, shapes=(0.3, 0.1, 0.0, 0.6)),
}

# Spread of each cue around its centre, per utterance (standard deviations).
CUE_SPREAD = {
    "f0_shift": 0.06,
    "f0_std_st": 0.35,
    "intensity_db": 1.5,
    "rate": 0.07,
    "tilt_db_oct": 1.2,
    "onset_log": 0.35,
    "pause_log": 0.35,
    "open_quotient": 0.05,
    "breathiness": 0.03,
}

# ---------------------------------------------------------------------------------------------
# Speakers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker's voice; odd numbers are low voices, even numbers high voices."""

    speaker_id: str
    voice: str  # "low" (male-like) or "high" (female-like)
    f0_hz: float  # neutral mean F0
    f0_range: float  # scales the F0 variability of every emotion
    vtl_factor: float  # formant scaling (shorter vocal tract = higher formants)
    open_quotient: float
    breathiness: float
    tilt_db_oct: float
    jitter: float  # relative, e.g. 0.007
    shimmer: float  # relative, e.g. 0.04
    rate_sps: float  # neutral syllables per second
    level_db: float  # habitual loudness
    expressiveness: float  # scales how far the speaker's emotions move from neutral


def make_speaker(index: int, seed: int = 0) -> Speaker:
    """Draw speaker `index` (0-based) of the corpus with this seed."""
    rng = np.random.default_rng([seed, 0, index])
    low = index % 2 == 0
    return Speaker(
        speaker_id=f"spk{index + 1:02d}",
        voice="low" if low else "high",
        f0_hz=float(rng.uniform(100, 140) if low else rng.uniform(180, 240)),
        f0_range=float(rng.uniform(0.8, 1.25)),
        vtl_factor=float(rng.uniform(0.95, 1.05) if low else rng.uniform(1.12, 1.22)),
        open_quotient=float(rng.uniform(-0.06, 0.06)),
        breathiness=float(rng.uniform(0.02, 0.08) if low else rng.uniform(0.05, 0.14)),
        tilt_db_oct=float(rng.normal(0.0, 1.0)),
        jitter=float(rng.uniform(0.005, 0.010)),
        shimmer=float(rng.uniform(0.03, 0.05)),
        rate_sps=float(rng.uniform(4.0, 5.0)),
        level_db=float(rng.normal(0.0, 2.0)),
        expressiveness=float(rng.uniform(0.8, 1.2)),
    )


# ---------------------------------------------------------------------------------------------
# Per-utterance parameters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UtteranceParams:
    """Everything drawn for one utterance (recorded in nothing but the audio itself)."""

    emotion: str
    strength: float
    f0_mean: float
    f0_std_st: float
    intensity_db: float
    rate_sps: float
    tilt_db_oct: float
    onset_s: float
    pause_s: float
    phrase_syllables: float
    open_quotient: float
    breathiness: float
    jitter: float
    shimmer: float
    roughness: float
    accent_prob: float
    accent_db: float
    declination_st: float
    shapes: tuple[float, float, float, float]
    duration: float
    gain_db: float
    snr_db: float
    noise: str  # "white" or "pink"


def draw_params(speaker: Speaker, emotion: str, rng: np.random.Generator) -> UtteranceParams:
    """Draw one utterance's cues around the emotion's centres (see the module docstring)."""
    neutral, prof = EMOTIONS["neutral"], EMOTIONS[emotion]
    s = speaker.expressiveness * float(np.clip(rng.normal(1.0, 0.2), 0.4, 1.6))
    sp = CUE_SPREAD

    def towards(field: str) -> float:  # neutral + strength * (emotion - neutral)
        base = getattr(neutral, field)
        return base + s * (getattr(prof, field) - base)

    def ratio_towards(field: str) -> float:  # the same on a log scale, for positive cues
        base = getattr(neutral, field)
        return base * (getattr(prof, field) / base) ** s

    rate_rel = ratio_towards("rate") * float(np.exp(sp["rate"] * rng.normal()))
    f0_std = speaker.f0_range * (towards("f0_std_st") + sp["f0_std_st"] * rng.normal())
    duration = float(np.exp(rng.normal(np.log(3.8), 0.33))) * rate_rel**-0.5
    return UtteranceParams(
        emotion=emotion,
        strength=s,
        f0_mean=speaker.f0_hz * (1.0 + towards("f0_shift") + sp["f0_shift"] * rng.normal()),
        f0_std_st=float(max(0.5, f0_std)),
        intensity_db=speaker.level_db + towards("intensity_db")
        + sp["intensity_db"] * rng.normal(),
        rate_sps=speaker.rate_sps * rate_rel,
        tilt_db_oct=speaker.tilt_db_oct + towards("tilt_db_oct")
        + sp["tilt_db_oct"] * rng.normal(),
        onset_s=ratio_towards("onset_ms") * float(np.exp(sp["onset_log"] * rng.normal())) / 1e3,
        pause_s=ratio_towards("pause_s") * float(np.exp(sp["pause_log"] * rng.normal())),
        phrase_syllables=ratio_towards("phrase_syllables"),
        open_quotient=float(np.clip(towards("open_quotient") + speaker.open_quotient
                                    + sp["open_quotient"] * rng.normal(), 0.3, 0.85)),
        breathiness=float(max(0.0, speaker.breathiness + towards("breathiness")
                              + sp["breathiness"] * rng.normal())),
        jitter=speaker.jitter * towards("irregularity"),
        shimmer=speaker.shimmer * towards("irregularity"),
        roughness=float(np.clip(towards("roughness") + 0.04 * rng.normal(), 0.0, 0.3)),
        accent_prob=float(np.clip(towards("accent_prob"), 0.05, 0.8)),
        accent_db=towards("accent_db"),
        declination_st=towards("declination_st") + 0.7 * rng.normal(),
        shapes=prof.shapes,
        duration=float(np.clip(duration, MIN_SECONDS, MAX_SECONDS)),
        gain_db=float(rng.uniform(-6.0, 6.0)),
        snr_db=float(rng.uniform(15.0, 40.0)),
        noise="white" if rng.random() < 0.5 else "pink",
    )


# ---------------------------------------------------------------------------------------------
# Segment plan: phrases of syllables of consonants and vowels
# ---------------------------------------------------------------------------------------------


@dataclass
class Segment:
    start: float  # seconds
    end: float
    kind: str  # "vowel", "voiced", "fricative", "plosive", "closure"
    phone: str
    syllable: int  # index of its syllable (-1 for none)


@dataclass
class Syllable:
    start: float
    end: float
    vowel_start: float
    vowel_end: float
    accent: bool
    phrase: int
    phrase_pos: float  # 0 at phrase start, 1 at phrase end


def _consonant(rng: np.random.Generator, t: float, stretch: float, syl: int) -> list[Segment]:
    r = rng.random()
    if r < 0.4:
        phone = str(rng.choice(list(FRICATIVES)))
        d = rng.uniform(0.06, 0.11) * stretch
        return [Segment(t, t + d, "fricative", phone, syl)]
    if r < 0.75:
        phone = str(rng.choice(list(PLOSIVES)))
        closure, burst = rng.uniform(0.03, 0.06) * stretch, rng.uniform(0.01, 0.02)
        return [Segment(t, t + closure, "closure", phone, syl),
                Segment(t + closure, t + closure + burst, "plosive", phone, syl)]
    phone = str(rng.choice(list(VOICED_CONSONANTS)))
    d = rng.uniform(0.04, 0.07) * stretch
    return [Segment(t, t + d, "voiced", phone, syl)]


def plan_utterance(p: UtteranceParams, rng: np.random.Generator
                   ) -> tuple[list[Segment], list[Syllable]]:
    """Lay out phrases of syllables until the drawn duration is filled."""
    stretch = (p.rate_sps / 4.5) ** -0.5  # consonants stretch less than vowels
    t = rng.uniform(0.1, 0.35)
    end_limit = p.duration - rng.uniform(0.1, 0.35)
    segments: list[Segment] = []
    syllables: list[Syllable] = []
    phrase = 0
    while True:
        n_syl = max(2, int(round(rng.normal(p.phrase_syllables, 1.2))))
        phrase_syls: list[Syllable] = []
        for k in range(n_syl):
            dur = max(0.12, rng.normal(1.0, 0.18) / p.rate_sps)
            accent = bool(rng.random() < p.accent_prob)
            if accent:
                dur *= 1.2
            if k == n_syl - 1:
                dur *= 1.3  # phrase-final lengthening
            if t + dur > end_limit:
                break
            syl_index = len(syllables) + len(phrase_syls)
            segs: list[Segment] = []
            cursor = t
            if rng.random() < 0.8:
                segs += _consonant(rng, cursor, stretch, syl_index)
                cursor = segs[-1].end
            coda = _consonant(rng, 0.0, stretch, syl_index) if rng.random() < 0.3 else []
            coda_len = sum(c.end - c.start for c in coda)
            v_end = max(cursor + 0.05, t + dur - coda_len)
            vowel = str(rng.choice(list(VOWELS)))
            segs.append(Segment(cursor, v_end, "vowel", vowel, syl_index))
            for c in coda:
                length = c.end - c.start
                segs.append(Segment(v_end, v_end + length, c.kind, c.phone, syl_index))
                v_end += length
            phrase_syls.append(Syllable(t, v_end, cursor, segs[[s.kind for s in segs]
                                                               .index("vowel")].end,
                                        accent, phrase, 0.0))
            segments += segs
            t = v_end
        if not phrase_syls:
            break
        n = len(phrase_syls)
        for k, syl in enumerate(phrase_syls):
            syl.phrase_pos = k / max(1, n - 1)
        syllables += phrase_syls
        phrase += 1
        if len(phrase_syls) < n_syl:
            break
        t += float(np.clip(p.pause_s * rng.lognormal(0.0, 0.3), 0.05, 1.2))
        if t >= end_limit - 0.15:
            break
    return segments, syllables


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _f0_contour(p: UtteranceParams, syllables: list[Syllable], n: int,
                rng: np.random.Generator) -> np.ndarray:
    """F0 in Hz per sample: phrase declination + emotion-shaped accents + slow wander."""
    t = np.arange(n) / SAMPLE_RATE
    st = np.zeros(n)
    phrases: dict[int, list[Syllable]] = {}
    for syl in syllables:
        phrases.setdefault(syl.phrase, []).append(syl)
    for syls in phrases.values():
        a, b = syls[0].start, syls[-1].end
        i0, i1 = int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)
        # declination over the phrase, held flat outside it
        st[i0:i1] += p.declination_st * (0.5 - (t[i0:i1] - a) / max(b - a, 1e-3))
        last = syls[-1]
        final = {"rise": 1.2, "fall": -2.0, "flat": -1.2, "mild": -0.6}[_shape_of(p, rng)]
        _bump(st, final, last.vowel_end, 0.5 * (last.vowel_end - last.vowel_start))
    for syl in syllables:
        v0, v1 = syl.vowel_start, syl.vowel_end
        d = v1 - v0
        size = (1.0 if syl.accent else 0.25) * rng.uniform(0.6, 1.4)
        shape = _shape_of(p, rng)
        if shape == "rise":
            _bump(st, size * 3.0, v0 + 0.8 * d, 0.35 * d)
        elif shape == "fall":
            _bump(st, size * 3.5, v0 + 0.2 * d, 0.12 * d)
            _bump(st, -size * 1.2, v1, 0.2 * d)
        elif shape == "flat":
            _bump(st, size * 0.8, v0 + 0.5 * d, 0.4 * d)
        else:
            _bump(st, size * 2.0, v0 + 0.5 * d, 0.3 * d)
    # slow wander (about 0.3 semitone), from a few random knots
    knots = np.linspace(0, n, max(4, int(n / SAMPLE_RATE * 3)))
    st += np.interp(np.arange(n), knots, rng.normal(0, 0.3, len(knots)))
    voiced = np.zeros(n, dtype=bool)
    for syl in syllables:
        voiced[int(syl.vowel_start * SAMPLE_RATE):int(syl.vowel_end * SAMPLE_RATE)] = True
    mean = st[voiced].mean() if voiced.any() else 0.0
    std = st[voiced].std() if voiced.any() else 1.0
    st = (st - mean) / max(std, 1e-6) * p.f0_std_st
    return np.clip(p.f0_mean * 2.0 ** (st / 12.0), 55.0, 520.0)


def _shape_of(p: UtteranceParams, rng: np.random.Generator) -> str:
    return ACCENT_SHAPES[int(rng.choice(len(ACCENT_SHAPES), p=p.shapes))]


def _bump(st: np.ndarray, height: float, centre: float, width: float) -> None:
    """Add a Gaussian bump (semitones) to the contour, computed only where it is not ~0."""
    width = max(width, 1e-3)
    i0 = max(0, int((centre - 4 * width) * SAMPLE_RATE))
    i1 = min(len(st), int((centre + 4 * width) * SAMPLE_RATE) + 1)
    if i1 > i0:
        t = np.arange(i0, i1) / SAMPLE_RATE
        st[i0:i1] += height * np.exp(-0.5 * ((t - centre) / width) ** 2)


def _glottal_source(f0: np.ndarray, p: UtteranceParams, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Differentiated Rosenberg pulse train with jitter, shimmer and roughness.

    Returns (flow derivative, glottal flow in 0..1) per sample.
    """
    n = len(f0)
    phase = np.cumsum(f0) / SAMPLE_RATE
    n_cycles = int(phase[-1])
    # pulse times where the phase crosses an integer, then jittered period by period
    times = np.interp(np.arange(n_cycles + 1), phase, np.arange(n) / SAMPLE_RATE)
    periods = np.diff(times) * (1.0 + p.jitter / 1.128 * rng.normal(size=n_cycles))
    times = np.concatenate([[times[0]], times[0] + np.cumsum(periods)])
    amps = 1.0 + p.shimmer / 1.128 * rng.normal(size=n_cycles)
    amps[1::2] *= 1.0 - p.roughness
    t = np.arange(n) / SAMPLE_RATE
    idx = np.clip(np.searchsorted(times, t, side="right") - 1, 0, n_cycles - 1)
    phi = np.clip((t - times[idx]) / periods[idx], 0.0, None)
    oq, sq = p.open_quotient, 2.5  # speed quotient: opening ~2.5x longer than closing
    tp, tn = oq * sq / (1 + sq), oq / (1 + sq)
    flow = np.where(phi < tp, 0.5 * (1 - np.cos(np.pi * phi / tp)),
                    np.where(phi < tp + tn, np.cos(0.5 * np.pi * (phi - tp) / tn), 0.0))
    flow[t < times[0]] = 0.0
    flow *= amps[idx]
    deriv = np.diff(flow, prepend=0.0)
    return deriv, flow


def _apply_tilt(x: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Zero-phase spectral tilt above 500 Hz (positive = flatter, more high-frequency energy)."""
    return _shape(x, lambda f: 10.0 ** (db_per_octave * np.log2(np.maximum(f, 500.0) / 500.0)
                                        / 20.0))


def _shape(x: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Zero-phase filtering by a magnitude response gain(f), via an FFT of a fast length."""
    n_fft = fft.next_fast_len(len(x), real=True)
    f = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)
    return fft.irfft(fft.rfft(x, n_fft) * gain(f), n_fft)[:len(x)]


def _bandwidths(freqs: np.ndarray) -> np.ndarray:
    """Formant bandwidths, 60-120 Hz, growing with frequency."""
    return np.clip(50.0 + 0.02 * freqs, 60.0, 120.0)


_BLOCK = 256  # samples per closed-form block of the time-varying resonators
_HOLD = 8  # the formant frequencies are updated every _HOLD samples (0.5 ms)


def _resonator(x: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """One time-varying second-order (Klatt) resonator, unity gain at DC.

    `freqs` holds the formant frequency every _HOLD samples (len(x) / _HOLD values, rounded
    up to whole blocks). Static, this is y[n] = A x[n] + B y[n-1] + C y[n-2] with poles p and
    conj(p); it is computed as 2 A Re(c w) = A Im(p w) / Im(p), where w[n] = p[n] w[n-1] + x[n]
    and c = p / (p - conj(p)) (partial fractions), which lets the pole move smoothly. Within
    each block the one-pole recursion is solved in closed form with a cumulative product; only
    the block-to-block state is a Python loop.
    """
    n = len(x)
    nb = -(-n // _BLOCK)
    f = freqs[: nb * _BLOCK // _HOLD]
    r = np.exp(-np.pi * _bandwidths(f) / SAMPLE_RATE)
    theta = 2 * np.pi * f / SAMPLE_RATE
    p = np.repeat(r * np.exp(1j * theta), _HOLD).reshape(nb, _BLOCK)
    scale = np.repeat((1.0 - 2 * r * np.cos(theta) + r * r) / (r * np.sin(theta)), _HOLD)
    pb = np.cumprod(p, axis=1)
    xb = np.zeros(nb * _BLOCK)
    xb[:n] = x
    w = pb * np.cumsum(xb.reshape(nb, _BLOCK) / pb, axis=1)
    carry = 0j
    state = np.empty(nb, dtype=complex)
    ends, decays = w[:, -1], pb[:, -1]
    for b in range(nb):
        state[b] = carry
        carry = ends[b] + decays[b] * carry
    w += pb * state[:, None]
    return (scale * (p * w).imag.reshape(-1))[:n]


def _vocal_tract(x: np.ndarray, tracks: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Cascade of the formant resonators: F1-F3 time-varying (tracks, every _HOLD samples),
    F4 and F5 fixed."""
    from scipy.signal import sosfilt

    for j in range(tracks.shape[1]):
        x = _resonator(x, tracks[:, j])
    return sosfilt(_resonator_sos(fixed, _bandwidths(fixed)), x)


def _resonator_sos(freqs: np.ndarray, bws: np.ndarray) -> np.ndarray:
    """Static Klatt resonators (unity gain at DC) as second-order sections."""
    r = np.exp(-np.pi * bws / SAMPLE_RATE)
    b = 2 * r * np.cos(2 * np.pi * freqs / SAMPLE_RATE)
    sos = np.zeros((len(freqs), 6))
    sos[:, 0] = 1 - b + r * r
    sos[:, 3] = 1.0
    sos[:, 4] = -b
    sos[:, 5] = r * r
    return sos


def _formant_tracks(segments: list[Segment], n: int, vtl: float, jitter: np.ndarray
                    ) -> np.ndarray:
    """F1-F3 every _HOLD samples over whole blocks, interpolated between vowel and
    voiced-consonant targets (coarticulation)."""
    times, targets = [], []
    for seg in segments:
        if seg.kind == "vowel":
            f123 = np.array(VOWELS[seg.phone]) * jitter[len(times) % len(jitter)]
        elif seg.kind == "voiced":
            f123 = np.array(VOICED_CONSONANTS[seg.phone][0])
        else:
            continue
        times.append(0.5 * (seg.start + seg.end))
        targets.append(f123 * vtl)
    if not times:
        times, targets = [0.0], [np.array(VOWELS["a"]) * vtl]
    n_coarse = -(-n // _BLOCK) * _BLOCK // _HOLD
    t = (np.arange(n_coarse) * _HOLD + _HOLD / 2) / SAMPLE_RATE
    tgt = np.array(targets)
    return np.stack([np.interp(t, times, tgt[:, j]) for j in range(3)], axis=1)


def _envelope(n: int, start: float, end: float, attack: float, release: float) -> tuple:
    """Raised-cosine attack and release over one segment: (slice, gain array)."""
    i0, i1 = int(start * SAMPLE_RATE), min(n, int(end * SAMPLE_RATE))
    m = max(0, i1 - i0)
    g = np.ones(m)
    na = min(int(attack * SAMPLE_RATE), int(0.4 * m))
    nr = min(int(release * SAMPLE_RATE), int(0.4 * m))
    if na > 0:
        g[:na] = 0.5 - 0.5 * np.cos(np.pi * np.arange(na) / na)
    if nr > 0:
        g[m - nr:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(nr) / nr)
    return slice(i0, i1), g


@functools.cache
def _band_filters() -> dict[str, np.ndarray]:
    """Band-pass filters of the fricatives and bursts, built on first use: scipy.signal takes
    over a second to import, and inference only needs this module for the cache path."""
    from scipy import signal

    return {ph: signal.butter(4, b, btype="bandpass", fs=SAMPLE_RATE, output="sos")
            for ph, (b, _) in {**FRICATIVES, **PLOSIVES}.items() if b[1] > 0}


def synthesize(speaker: Speaker, p: UtteranceParams, rng: np.random.Generator) -> np.ndarray:
    """Render one utterance as float samples in [-1, 1] at 16 kHz."""
    from scipy.signal import sosfilt

    segments, syllables = plan_utterance(p, rng)
    n = int(round(p.duration * SAMPLE_RATE))
    f0 = _f0_contour(p, syllables, n, rng)
    deriv, flow = _glottal_source(f0, p, rng)

    # per-syllable loudness: accents louder, a fall over the phrase, random variation
    syl_gain = [10 ** ((p.accent_db * s.accent - 3.0 * s.phrase_pos + rng.normal(0, 1.2)) / 20)
                for s in syllables]
    voice_env = np.zeros(n)
    tract_noise_env = np.zeros(n)
    direct = np.zeros(n)  # fricatives and bursts that bypass the vocal tract
    release = 0.6 * p.onset_s + 0.015
    for seg in segments:
        g_syl = syl_gain[seg.syllable]
        if seg.kind in ("vowel", "voiced"):
            level = 1.0 if seg.kind == "vowel" else 10 ** (VOICED_CONSONANTS[seg.phone][1] / 20)
            sl, g = _envelope(n, seg.start, seg.end, p.onset_s, release)
            voice_env[sl] = np.maximum(voice_env[sl], level * g_syl * g)
        elif seg.kind in ("fricative", "plosive"):
            band, db = (FRICATIVES if seg.kind == "fricative" else PLOSIVES)[seg.phone]
            sl, g = _envelope(n, seg.start, seg.end, 0.01, 0.01)
            amp = 10 ** (db / 20) * g_syl * g
            if seg.phone == "h":
                tract_noise_env[sl] = np.maximum(tract_noise_env[sl], amp)
            else:
                noise = sosfilt(_band_filters()[seg.phone], rng.normal(size=g.size))
                direct[sl] += amp * noise / (noise.std() + 1e-9)

    # source: flow derivative normalised to unit RMS while voiced, plus aspiration noise
    voiced = voice_env > 0.05
    src = deriv / (np.sqrt(np.mean(deriv[voiced] ** 2)) + 1e-12) if voiced.any() else deriv
    aspiration = rng.normal(size=n) * (0.4 + flow) * p.breathiness * 4.0
    src = _apply_tilt(src + aspiration, p.tilt_db_oct) * voice_env
    src += rng.normal(size=n) * tract_noise_env
    formant_jitter = rng.normal(1.0, 0.04, size=(64, 3))
    vtl = speaker_vtl(p, speaker)
    tracks = _formant_tracks(segments, n, vtl, formant_jitter)
    tract = _vocal_tract(src, tracks, np.array(F4_F5) * vtl)
    if voiced.any():
        tract /= np.sqrt(np.mean(tract[voiced] ** 2)) + 1e-12
    speech = tract + direct
    return _record(speech, voice_env > 0.05, p, rng)


def speaker_vtl(p: UtteranceParams, speaker: Speaker) -> float:
    """Vocal-tract-length factor; raised F0 and tension shorten the tract a little."""
    return speaker.vtl_factor * (1.0 + 0.03 * max(0.0, p.strength - 1.0) * (p.emotion != "sad"))


_REFERENCE_DBFS = -34.0  # active-speech RMS level of a neutral utterance at 0 dB gain


def _record(speech: np.ndarray, active: np.ndarray, p: UtteranceParams,
            rng: np.random.Generator) -> np.ndarray:
    """Set the level (emotion intensity + recording gain), add noise at the drawn SNR."""
    rms = np.sqrt(np.mean(speech[active] ** 2)) if active.any() else np.std(speech) + 1e-12
    level = 10 ** ((_REFERENCE_DBFS + p.intensity_db + p.gain_db) / 20)
    speech = speech / rms * level
    noise = rng.normal(size=len(speech))
    if p.noise == "pink":
        noise = _shape(noise, lambda f: 1.0 / np.sqrt(np.maximum(f, 20.0)))
    noise *= level / 10 ** (p.snr_db / 20) / (noise.std() + 1e-12)
    out = speech + noise
    peak = np.abs(out).max()
    if peak > 0.98:  # a recording limiter: never clip
        out *= 0.98 / peak
    return out


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, to_pcm16(x), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Corpus generation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    seed: int
    speaker: int
    emotion: int
    k: int

    @property
    def utt_id(self) -> str:
        return f"spk{self.speaker + 1:02d}_{PAPER_EMOTIONS[self.emotion]}_{self.k + 1:03d}"


def render_utterance(seed: int, speaker: int, emotion: str, k: int) -> np.ndarray:
    """Samples of utterance k of `emotion` by speaker `speaker` (0-based): pure function of args."""
    spk = make_speaker(speaker, seed)
    rng = np.random.default_rng([seed, 1, speaker, PAPER_EMOTIONS.index(emotion), k])
    return synthesize(spk, draw_params(spk, emotion, rng), rng)


def _render_chunk(jobs: list[_Job], wav_dir: str) -> list[dict]:
    rows = []
    for job in jobs:
        x = render_utterance(job.seed, job.speaker, PAPER_EMOTIONS[job.emotion], job.k)
        with open(Path(wav_dir) / f"{job.utt_id}.wav", "wb") as f:
            f.write(wav_bytes(x))
        speaker = f"spk{job.speaker + 1:02d}"
        rows.append({"utt_id": job.utt_id, "file": f"wav/{job.utt_id}.wav",
                     "label": PAPER_EMOTIONS[job.emotion], "speaker": speaker,
                     "group": speaker, "duration": f"{len(x) / SAMPLE_RATE:.4f}"})
    return rows


def _check_size(size: str) -> CorpusSize:
    if size not in SIZES:
        raise ConfigError(f"unknown synthetic corpus size {size!r}; expected one of {list(SIZES)}")
    return SIZES[size]


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _is_complete(root: Path) -> bool:
    return (root / "corpus.json").is_file() and (root / "metadata.csv").is_file()


def _clean_stale_partials(out_dir: Path) -> None:
    """Remove temporary folders left by generators on this host that died before finishing."""
    prefix = f".{out_dir.name}{_PARTIAL_TAG}{socket.gethostname()}-"
    if not out_dir.parent.is_dir():
        return
    for entry in out_dir.parent.iterdir():
        if not (entry.is_dir() and entry.name.startswith(prefix)):
            continue
        # "<pid>-t<start time in ms>-<random>" (older folders: "<pid>-<random>")
        parts = entry.name[len(prefix):].split("-")
        started = parts[1][1:] if len(parts) > 2 and parts[1][:1] == "t" else ""
        if parts[0].isdigit() and not procs.is_alive(
            int(parts[0]), int(started) / 1000 if started.isdigit() else None
        ):
            shutil.rmtree(entry, ignore_errors=True)


def generate_synthetic(out_dir: Path, *, size: str = "default", seed: int = 0,
                       workers: int | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the corpus to out_dir (wav/, metadata.csv, corpus.json) and return out_dir.

    Generation happens in a temporary sibling folder renamed into place when complete, so a
    half-written corpus is never seen. If out_dir already holds this exact corpus it is reused.
    """
    spec = _check_size(size)
    seed = _check_seed(seed)
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        if _is_complete(out_dir) and _describes(out_dir, size, seed):
            return out_dir
        if out_dir.is_file() or any(out_dir.iterdir()):
            raise CorpusError(f"{out_dir} already exists and is not the synthetic corpus "
                              f"(size={size}, seed={seed}); choose an empty or new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_partials(out_dir)
    started = round(1000 * (procs.start_time(os.getpid()) or 0))
    tmp = out_dir.parent / (f".{out_dir.name}{_PARTIAL_TAG}{socket.gethostname()}-{os.getpid()}"
                            f"-t{started}-{uuid.uuid4().hex[:8]}")
    (tmp / "wav").mkdir(parents=True)
    try:
        rows = _render_all(spec, seed, tmp / "wav", workers, progress)
        _write_metadata(tmp, rows)
        counts = {"utterances": len(rows), "speakers": spec.speakers,
                  "per_emotion": spec.per_emotion,
                  "by_label": {e: sum(r["label"] == e for r in rows) for e in PAPER_EMOTIONS}}
        info = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
                "sample_rate": SAMPLE_RATE, "counts": counts,
                "total_seconds": round(sum(float(r["duration"]) for r in rows), 3),
                "synthetic": True, "notice": SYNTHETIC_NOTICE}
        (tmp / "corpus.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if _is_complete(out_dir):  # another process finished the same corpus first
                shutil.rmtree(tmp, ignore_errors=True)
                return out_dir
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _describes(root: Path, size: str, seed: int) -> bool:
    try:
        info = json.loads((root / "corpus.json").read_text())
    except (OSError, ValueError):
        return False
    return (info.get("generator_version") == GENERATOR_VERSION and info.get("size") == size
            and info.get("seed") == seed)


def _render_all(spec: CorpusSize, seed: int, wav_dir: Path, workers: int | None,
                progress: Callable[[int, int], None] | None) -> list[dict]:
    jobs = [_Job(seed, s, e, k) for s in range(spec.speakers)
            for e in range(len(PAPER_EMOTIONS)) for k in range(spec.per_emotion)]
    total = len(jobs)
    workers = min(workers or os.cpu_count() or 1, total)
    chunk = max(1, min(8, total // (workers * 4) or 1))
    chunks = [jobs[i:i + chunk] for i in range(0, total, chunk)]
    rows: list[dict] = []
    if progress:
        progress(0, total)
    if workers == 1:
        for c in chunks:
            rows += _render_chunk(c, str(wav_dir))
            if progress:
                progress(len(rows), total)
    else:
        with ProcessPoolExecutor(workers, mp_context=_mp_context()) as pool:
            futures = [pool.submit(_render_chunk, c, str(wav_dir)) for c in chunks]
            for fut in as_completed(futures):
                rows += fut.result()
                if progress:
                    progress(len(rows), total)
    order = {job.utt_id: i for i, job in enumerate(jobs)}
    return sorted(rows, key=lambda r: order[r["utt_id"]])


def _mp_context() -> BaseContext:
    """fork on Linux, spawn elsewhere.

    Workers run only numpy, scipy and soundfile, so fork is safe for them even in a threaded
    caller, and unlike spawn it does not re-import the caller's main module (which breaks
    scripts without an `if __name__ == "__main__"` guard).
    """
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _write_metadata(root: Path, rows: list[dict]) -> None:
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def default_root(size: str = "default", seed: int = 0) -> Path:
    """Where the generated corpus of this size and seed lives in the cache."""
    _check_size(size)
    return cache_dir() / "synthetic" / f"v{GENERATOR_VERSION}-{size}-seed{_check_seed(seed)}"


def load_synthetic(root: str | Path | None = None, *, classes: str = "paper",
                   size: str = "default", seed: int = 0,
                   progress: Callable[[int, int], None] | None = None,
                   **_ignored: object) -> Manifest:
    """The synthetic corpus as a Manifest; with root None it is generated in the cache if missing.

    `classes` may be "paper" or "all": the corpus has exactly the paper's four emotions.
    """
    if classes not in ("paper", "all"):
        raise ConfigError(f"classes must be 'paper' or 'all', got {classes!r}")
    if root is None:
        root = default_root(size, seed)
        if root.exists() and not _is_complete(root):
            shutil.rmtree(root)  # our own cache, damaged by hand: rebuild it
        if not root.exists():
            generate_synthetic(root, size=size, seed=seed, progress=progress)
    root = Path(root).expanduser().resolve()
    if not (root / "metadata.csv").is_file():
        raise CorpusError(f"{root} is not a synthetic corpus (no metadata.csv); generate one "
                          "with generate_synthetic() or leave the root empty to use the cache")
    return Manifest(corpus="synthetic", root=str(root), labels=PAPER_EMOTIONS,
                    utterances=_read_metadata(root))


def _read_metadata(root: Path) -> list[Utterance]:
    utterances = []
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(METADATA_FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(f"{root / 'metadata.csv'} lacks columns {sorted(missing)}")
        for row in reader:
            if row["label"] not in PAPER_EMOTIONS:
                raise CorpusError(f"{root / 'metadata.csv'}: unknown label {row['label']!r}")
            utterances.append(Utterance(
                utt_id=row["utt_id"], path=str(root / row["file"]), label=row["label"],
                speaker=row["speaker"], group=row["group"], duration=float(row["duration"]),
                corpus="synthetic"))
    if not utterances:
        raise CorpusError(f"{root / 'metadata.csv'} lists no utterances")
    return utterances


__all__ = [
    "GENERATOR_VERSION", "SAMPLE_RATE", "SIZES", "SYNTHETIC_NOTICE", "CorpusSize", "Speaker",
    "UtteranceParams", "default_root", "draw_params", "generate_synthetic", "load_synthetic",
    "make_speaker", "render_utterance", "synthesize",
]

"""The source-filter voice model of the synthetic corpus: phonetic tables, emotion profiles,
speakers, per-utterance parameters, the syllable plan and the synthesis of one utterance.

The rules and their sources are listed in `ser_lab.data.corpora.synthetic` (its docstring);
that module turns this model into a corpus on disk (rendering, caching, loading).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy import fft

SAMPLE_RATE = 16000

MIN_SECONDS = 1.5
MAX_SECONDS = 8.0

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

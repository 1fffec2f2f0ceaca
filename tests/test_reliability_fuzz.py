"""Property-based fuzzing (Hypothesis) of the two boundaries every input crosses: the WAV
decoder and `TrainConfig.validate` (docs/reliability.md, section 10). About 20 s together.

- Structured WAV files with every header field free to lie (format tag, channels, rate, bits,
  extra chunks of any size before the data, the data size itself) and sample payloads holding
  NaN, infinities and huge floats: `load_audio` returns a Clip whose samples are finite and
  bounded, or raises an AudioError. Nothing else, ever (arbitrary and mutated bytes are fuzzed
  in tests/test_audio.py).
- Settings of any type in every field of TrainConfig: `validate()` raises ConfigError or
  returns a config whose every number is finite and in range, and which survives the strict
  JSON round trip of config.json unchanged.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser_lab.choices import DEVICES, PROTOCOLS
from ser_lab.config import TrainConfig
from ser_lab.data.audio import MAX_SAMPLE_MAGNITUDE, Clip, load_audio
from ser_lab.errors import AudioError, ConfigError
from ser_lab.fileio import strict_json

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- WAV decoder


def _chunk(chunk_id: bytes, body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return chunk_id + struct.pack("<I", size & 0xFFFFFFFF) + body + (b"\0" if len(body) % 2 else b"")


@st.composite
def wav_files(draw) -> bytes:
    tag = draw(st.sampled_from([1, 3, 0xFFFE, 6, 0, draw(st.integers(0, 0xFFFF))]))
    channels = draw(st.sampled_from([1, 2, 6, 0, draw(st.integers(0, 80))]))
    rate = draw(st.sampled_from([16000, 8000, 44100, 48000, 0, 1, 1_000_000, draw(st.integers(0, 2**32 - 1))]))
    bits = draw(st.sampled_from([8, 16, 24, 32, 64, draw(st.integers(0, 128))]))
    if tag == 3 and draw(st.booleans()):
        bits = 32
        values = draw(
            st.lists(
                st.one_of(
                    st.floats(-1, 1, width=32),
                    st.floats(width=32, allow_nan=True, allow_infinity=True),
                    st.sampled_from([3e38, -1e19, 1e7, float("nan"), float("inf")]),
                ),
                min_size=0,
                max_size=64,
            )
        )
        base = np.sin(np.arange(draw(st.integers(0, 12000))) / 5.0).astype(np.float32)
        for i, v in enumerate(values):
            if base.size:
                base[(i * 977) % base.size] = v
        payload = base.tobytes()
    else:
        payload = draw(st.binary(min_size=0, max_size=20000))
    block = max(channels * bits // 8, 0)
    fmt = struct.pack("<HHIIHH", tag, channels & 0xFFFF, rate & 0xFFFFFFFF,
                      (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits & 0xFFFF)
    extras = b"".join(
        _chunk(cid, b"\0" * n, declared)
        for cid, n, declared in draw(
            st.lists(
                st.tuples(
                    st.sampled_from([b"LIST", b"JUNK", b"bext", b"fact", b"data"]),
                    st.integers(0, 70000),
                    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
                ),
                max_size=2,
            )
        )
    )
    declared = draw(st.sampled_from([None, 0, 0xFFFFFFFF, len(payload) + 10**6, draw(st.integers(0, 2**32 - 1))]))
    body = b"WAVE" + _chunk(b"fmt ", fmt) + extras + _chunk(b"data", payload, declared)
    riff_size = draw(st.sampled_from([len(body), 0, 0xFFFFFFFF]))
    return b"RIFF" + struct.pack("<I", riff_size) + body


@FUZZ
@given(wav_files())
def test_any_wav_gives_a_bounded_clip_or_an_audio_error(data: bytes) -> None:
    try:
        clip = load_audio(data)
    except AudioError:
        return
    assert isinstance(clip, Clip) and clip.sample_rate == 16000
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert np.isfinite(clip.samples).all()
    # soxr's windowed-sinc resampling may overshoot a bounded input by a little, never by 2x
    assert float(np.abs(clip.samples).max()) <= 2 * MAX_SAMPLE_MAGNITUDE
    assert 0.5 - 1e-3 <= clip.duration <= 14.0


@FUZZ
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=8),
       st.integers(0, 15999))
def test_float_samples_beyond_the_bound_are_refused(values: list[float], where: int) -> None:
    """Any NaN, infinity or |x| > 1e6 in a float file is an InvalidSamplesError; else a Clip."""
    from ser_lab.errors import InvalidSamplesError
    from tests.audio_fixtures import tone, wav_bytes

    x = tone(1.0)
    for i, v in enumerate(values):
        x[(where + 131 * i) % x.size] = v
    data = wav_bytes(x, subtype="FLOAT")
    bad = not np.isfinite(x).all() or float(np.abs(x[np.isfinite(x)]).max()) > MAX_SAMPLE_MAGNITUDE
    try:
        load_audio(data)
    except InvalidSamplesError:
        assert bad
    except AudioError:  # e.g. an all-but-silent signal
        assert not bad
    else:
        assert not bad


# ----------------------------------------------------------------------------- TrainConfig

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.one_of(st.integers(-3, 12), st.text(max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
PLAUSIBLE = {
    "lam": st.floats(-1, 10),
    "alpha": st.floats(-0.5, 1.5),
    "epochs": st.integers(-2, 50),
    "n_folds": st.integers(-1, 10),
    "seed": st.integers(-5, 2**33),
    "lr": st.floats(-1, 1),
    "batch_size": st.integers(-1, 64),
    "val_fraction": st.floats(-0.5, 1.5),
    "protocol": st.sampled_from([*PROTOCOLS, "other"]),
    "device": st.sampled_from([*DEVICES, "tpu"]),
    "features": st.sampled_from(["mel", "stft", "mfcc"]),
    "folds": st.one_of(st.none(), st.lists(st.integers(-1, 8), max_size=3)),
}
FIELDS = [name for name in TrainConfig.__dataclass_fields__ if name not in ("corpus_options",)]


@st.composite
def configs(draw) -> dict:
    chosen = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=6))
    out = {}
    for name in chosen:
        strategy = PLAUSIBLE.get(name)
        out[name] = draw(strategy if strategy is not None and draw(st.booleans()) else ANYTHING)
    return out


def _finite_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@settings(max_examples=400, deadline=None)
@given(configs())
def test_train_config_validation_is_total_and_sound(fields: dict) -> None:
    cfg = TrainConfig(**fields)
    try:
        cfg.validate()
    except ConfigError:
        return
    for name in ("lam", "alpha", "lr", "val_fraction"):
        assert _finite_number(getattr(cfg, name)), name
    assert cfg.lam >= 0 and 0 <= cfg.alpha <= 1 and cfg.lr > 0 and 0 <= cfg.val_fraction < 1
    for name in ("epochs", "n_folds", "seed", "batch_size", "snapshot_every", "snapshot_size"):
        value = getattr(cfg, name)
        assert isinstance(value, int) and not isinstance(value, bool), name
    assert 0 <= cfg.seed < 2**32 and cfg.epochs >= 1 and cfg.batch_size >= 1
    assert cfg.device in DEVICES and cfg.protocol in PROTOCOLS and cfg.features in ("mel", "stft")
    assert isinstance(cfg.augment, bool) and isinstance(cfg.demo, bool)
    assert cfg.folds is None or all(isinstance(k, int) and not isinstance(k, bool) for k in cfg.folds)
    # What config.json stores reads back as the same, still valid, config.
    again = TrainConfig.from_dict(json.loads(strict_json(cfg.to_dict()))).validate()
    assert again == cfg

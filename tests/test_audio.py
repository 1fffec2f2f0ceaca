"""load_audio: formats, rates, channels, the cut at max_seconds, and every error path."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser_lab.data.audio import SAMPLE_RATE, SILENCE_PEAK, Clip, audio_fingerprint, load_audio
from ser_lab.errors import (
    AudioError,
    ConfigError,
    EmptyAudioError,
    InvalidSamplesError,
    SilentAudioError,
    TooLargeAudioError,
    TooLongAudioError,
    TooShortAudioError,
    UnreadableAudioError,
)
from tests.audio_fixtures import MP3_WRITABLE, tone, wav_bytes, write_audio


def dominant_hz(samples: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / sr)[np.argmax(spectrum)])


# --------------------------------------------------------------------------- decoding

FORMATS = [
    ("wav", "WAV", "PCM_U8", 0.02),
    ("wav", "WAV", "PCM_16", 1e-3),
    ("wav", "WAV", "PCM_24", 1e-3),
    ("wav", "WAV", "PCM_32", 1e-3),
    ("wav", "WAV", "FLOAT", 1e-3),
    ("wav", "WAV", "DOUBLE", 1e-3),
    ("flac", "FLAC", "PCM_16", 1e-3),
    ("ogg", "OGG", "VORBIS", 0.1),
    pytest.param(
        "mp3",
        "MP3",
        "MPEG_LAYER_III",
        0.1,
        marks=pytest.mark.skipif(not MP3_WRITABLE, reason="libsndfile here cannot write MP3"),
    ),
]


@pytest.mark.parametrize(("ext", "fmt", "subtype", "tol"), FORMATS)
def test_formats_decode_to_16k_mono_float(tmp_path, ext, fmt, subtype, tol):
    x = tone(1.0, sr=22050, freq=440.0, amplitude=0.5)
    path = write_audio(tmp_path / f"a.{ext}", x, 22050, format=fmt, subtype=subtype)
    clip = load_audio(path)
    assert isinstance(clip, Clip)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.sample_rate == SAMPLE_RATE
    assert clip.format == fmt
    assert clip.original_sample_rate == 22050 and clip.original_channels == 1
    assert clip.duration == pytest.approx(1.0, abs=0.01)
    assert clip.samples.size == pytest.approx(SAMPLE_RATE, abs=160)
    assert not clip.truncated
    peak = float(np.max(np.abs(clip.samples)))
    assert peak <= 1.0
    assert peak == pytest.approx(0.5 + 0.03, abs=tol + 0.03)
    assert dominant_hz(clip.samples) == pytest.approx(440.0, abs=2.0)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000])
def test_sample_rates_are_resampled_to_16k(tmp_path, sr):
    path = write_audio(tmp_path / "a.wav", tone(1.0, sr=sr, freq=1000.0), sr)
    clip = load_audio(path)
    assert clip.original_sample_rate == sr
    assert clip.samples.size == pytest.approx(SAMPLE_RATE, abs=2)
    assert dominant_hz(clip.samples) == pytest.approx(1000.0, abs=2.0)
    # Resampling keeps the level: the tone's RMS is 0.5 / sqrt(2).
    assert np.sqrt(np.mean(clip.samples[800:-800] ** 2)) == pytest.approx(0.354, abs=0.01)


def test_unsigned_8bit_is_centred_on_zero(tmp_path):
    path = write_audio(tmp_path / "u8.wav", tone(1.0), subtype="PCM_U8")
    samples = load_audio(path).samples
    assert abs(float(samples.mean())) < 0.01
    assert -1.0 <= samples.min() < -0.4 and 0.4 < samples.max() <= 1.0


def test_stereo_is_mixed_by_mean(tmp_path):
    left = tone(1.0, noise=0.0)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    clip = load_audio(write_audio(tmp_path / "st.wav", stereo, subtype="FLOAT"))
    assert clip.original_channels == 2
    first, last = np.flatnonzero(left)[[0, -1]]  # exact zeros at the ends are dropped
    np.testing.assert_allclose(clip.samples, left[first : last + 1] / 2, atol=1e-6)


def test_exact_zero_padding_at_the_ends_is_dropped(tmp_path):
    voiced = tone(1.0)
    padded = np.concatenate([np.zeros(8000), voiced, np.zeros(16000)])
    clip = load_audio(write_audio(tmp_path / "pad.wav", padded, subtype="FLOAT"))
    assert clip.duration == pytest.approx(len(voiced) / 16000, abs=2e-3)
    assert clip.original_duration == pytest.approx(len(padded) / 16000, abs=1e-3)


def test_anti_phase_stereo_cancels_to_silence(tmp_path):
    left = tone(1.0, noise=0.0)
    path = write_audio(tmp_path / "anti.wav", np.stack([left, -left], axis=1), subtype="FLOAT")
    with pytest.raises(SilentAudioError):
        load_audio(path)


def test_six_channels(tmp_path):
    x = np.zeros((16000, 6), dtype=np.float32)
    x[:, 3] = tone(1.0, noise=0.0)
    clip = load_audio(write_audio(tmp_path / "six.wav", x, subtype="FLOAT"))
    assert clip.original_channels == 6
    assert float(np.max(np.abs(clip.samples))) == pytest.approx(0.5 / 6, rel=1e-3)


def test_bytes_and_path_give_the_same_clip(tmp_path):
    path = write_audio(tmp_path / "a.flac", tone(1.5, sr=44100), 44100)
    from_path = load_audio(path)
    from_bytes = load_audio(path.read_bytes())
    np.testing.assert_array_equal(from_path.samples, from_bytes.samples)
    assert load_audio(str(path)).duration == from_path.duration


def test_long_input_is_cut_at_max_seconds(tmp_path):
    path = write_audio(tmp_path / "long.wav", tone(15.0, sr=8000), 8000)
    clip = load_audio(path)  # default max_seconds = 14
    assert clip.truncated
    assert clip.samples.size == 14 * SAMPLE_RATE
    assert clip.duration == 14.0
    assert clip.original_duration == pytest.approx(15.0)
    short = load_audio(path, max_seconds=2.5)
    assert short.truncated and short.samples.size == 40000


def test_input_of_exactly_max_seconds_is_not_truncated(tmp_path):
    clip = load_audio(write_audio(tmp_path / "a.wav", tone(2.0)), max_seconds=2.0)
    assert not clip.truncated and clip.samples.size == 32000


def test_decoding_writes_nothing_next_to_the_input(tmp_path):
    names = ["a.ogg", "a.flac", "a.wav"] + (["a.mp3"] if MP3_WRITABLE else [])
    for name in names:
        write_audio(tmp_path / name, tone(1.0))
    before = sorted(os.listdir(tmp_path))
    for name in names:
        load_audio(tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == before


def test_quiet_but_real_signal_is_accepted(tmp_path):
    # -60 dBFS tone: well above the -80 dBFS silence threshold.
    load_audio(write_audio(tmp_path / "q.wav", tone(1.0, amplitude=1e-3, noise=0.0)))


def test_audio_fingerprint_is_sha256_of_the_bytes(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(1.0))
    data = path.read_bytes()
    assert audio_fingerprint(path) == hashlib.sha256(data).hexdigest()
    assert audio_fingerprint(data) == audio_fingerprint(str(path))
    with pytest.raises(UnreadableAudioError, match="no such file"):
        audio_fingerprint(tmp_path / "missing.wav")


# --------------------------------------------------------------------------- errors


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="empty.wav"):
        load_audio(path)


def test_zero_bytes_upload():
    with pytest.raises(EmptyAudioError, match="uploaded bytes"):
        load_audio(b"")


def test_valid_header_without_samples(tmp_path):
    path = write_audio(tmp_path / "nosamples.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(EmptyAudioError, match="no samples"):
        load_audio(path)


def test_random_bytes_named_wav(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableAudioError, match="noise.wav"):
        load_audio(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(UnreadableAudioError, match="not readable as audio"):
        load_audio(path)


def test_png_like_file(tmp_path):
    path = tmp_path / "picture.wav"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200))
    with pytest.raises(UnreadableAudioError):
        load_audio(path)


def test_truncated_wav(tmp_path):
    data = wav_bytes(tone(2.0))
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableAudioError, match="truncated"):
        load_audio(path)
    with pytest.raises(UnreadableAudioError, match="truncated"):
        load_audio(data[: len(data) // 2])


def test_header_only_wav(tmp_path):
    with pytest.raises(UnreadableAudioError):
        load_audio(wav_bytes(tone(1.0))[:30])


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UnreadableAudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(UnreadableAudioError, match="not a regular file"):
        load_audio(tmp_path)


def test_unsupported_container_is_refused(tmp_path):
    path = write_audio(tmp_path / "a.mat", tone(1.0), format="MAT5", subtype="FLOAT")
    with pytest.raises(UnreadableAudioError, match="unsupported container 'MAT5'"):
        load_audio(path)


def test_too_large_is_checked_before_decoding(tmp_path):
    # Garbage bytes over the limit: the size check must fire, not the decoder.
    with pytest.raises(TooLargeAudioError, match="2000 bytes"):
        load_audio(b"x" * 2000, max_bytes=1000)
    path = write_audio(tmp_path / "a.wav", tone(1.0))
    with pytest.raises(TooLargeAudioError, match="a.wav"):
        load_audio(path, max_bytes=path.stat().st_size - 1)
    load_audio(path, max_bytes=path.stat().st_size)


def test_too_long_is_checked_from_the_header(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "a.wav", tone(3.0))

    def no_decoding(*args, **kwargs):
        raise AssertionError("samples were decoded")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    with pytest.raises(TooLongAudioError, match="3.0 s"):
        load_audio(path, max_input_seconds=2.0)


def test_too_long_without_a_length_in_the_header_is_caught_while_decoding(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "a.wav", tone(3.0))
    import ser_lab.data.audio

    monkeypatch.setattr(ser_lab.data.audio, "_declared_frames", lambda f: 0)
    with pytest.raises(TooLongAudioError, match="limit of 2.0 s"):
        load_audio(path, max_input_seconds=2.0)


def test_max_input_seconds_allows_shorter_input(tmp_path):
    clip = load_audio(write_audio(tmp_path / "a.wav", tone(3.0)), max_input_seconds=3.5)
    assert clip.duration == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_samples(tmp_path, bad):
    x = tone(1.0)
    x[1234] = bad
    path = write_audio(tmp_path / "bad.wav", x, subtype="FLOAT")
    with pytest.raises(InvalidSamplesError, match="1 sample"):
        load_audio(path)


def test_too_short(tmp_path):
    path = write_audio(tmp_path / "short.wav", tone(0.1))
    with pytest.raises(TooShortAudioError, match="0.100 s"):
        load_audio(path)
    assert load_audio(path, min_seconds=0.05).duration == pytest.approx(0.1)


def test_silence(tmp_path):
    path = write_audio(tmp_path / "zeros.wav", np.zeros(16000, dtype=np.float32))
    with pytest.raises(SilentAudioError, match="zeros.wav"):
        load_audio(path)


def test_dc_is_silent(tmp_path):
    path = write_audio(tmp_path / "dc.wav", np.full(16000, 0.5, dtype=np.float32))
    with pytest.raises(SilentAudioError):
        load_audio(path)


def test_one_lsb_dither_is_silent_and_threshold_is_documented(tmp_path):
    lsb = 1 / 32768
    x = (np.random.default_rng(0).integers(-1, 2, 16000) * lsb).astype(np.float32)
    assert lsb < SILENCE_PEAK
    with pytest.raises(SilentAudioError):
        load_audio(write_audio(tmp_path / "dither.wav", x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_seconds": 0},
        {"min_seconds": -1},
        {"min_seconds": 20, "max_seconds": 14},
        {"max_bytes": -1},
        {"max_input_seconds": 0},
    ],
)
def test_bad_limits_are_config_errors(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        load_audio(wav_bytes(tone(1.0)), **kwargs)


def test_every_audio_error_names_the_source(tmp_path):
    path = tmp_path / "garbage.flac"
    path.write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert "garbage.flac" in str(info.value)


# --------------------------------------------------------------------------- properties

HYPOTHESIS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@HYPOTHESIS
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_clip_or_an_audio_error(data):
    try:
        clip = load_audio(data)
    except AudioError:
        return
    assert clip.samples.dtype == np.float32 and np.isfinite(clip.samples).all()


_VALID = wav_bytes(tone(0.6, sr=8000), 8000)


@HYPOTHESIS
@given(
    st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    st.integers(0, len(_VALID)),
)
def test_corrupted_wav_gives_a_clip_or_an_audio_error(edits, cut):
    # Mutations concentrated in the header reach the decoder's parsing code.
    data = bytearray(_VALID[:cut] if cut > 0 else _VALID)
    for pos, value in edits:
        if data:
            data[pos % min(len(data), 64)] = value
    try:
        clip = load_audio(bytes(data))
    except AudioError:
        return
    assert clip.samples.dtype == np.float32 and np.isfinite(clip.samples).all()
    assert clip.duration <= 14.0

"""Features: the paper's spectrograms, normalisation, the on-disk cache and corpus extraction."""

from __future__ import annotations

import os

import numpy as np
import pytest

import ser_lab.data.features as features_mod
from ser_lab.data.audio import load_audio
from ser_lab.data.features import (
    LOG_FLOOR,
    STD_FLOOR,
    FeatureCache,
    FeatureConfig,
    NormStats,
    compute_features,
    extract_corpus,
)
from ser_lab.errors import ConfigError
from tests.audio_fixtures import tiny_manifest, tone, write_audio

MEL = FeatureConfig(kind="mel")
STFT = FeatureConfig(kind="stft")


# --------------------------------------------------------------------------- config


def test_config_defaults_are_the_papers():
    cfg = FeatureConfig()
    assert (cfg.kind, cfg.sample_rate, cfg.win_length, cfg.hop_length, cfg.n_fft) == (
        "mel",
        16000,
        640,
        160,
        1024,
    )
    assert cfg.n_bins == 128 and cfg.max_seconds == 14.0
    assert STFT.n_bins == 513


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "mfcc"},
        {"hop_length": 0},
        {"win_length": 2048},
        {"n_mels": 1.5},
        {"sample_rate": 8000},
        {"max_seconds": -1.0},
        {"n_fft": True},
    ],
)
def test_invalid_config_is_refused(kwargs):
    with pytest.raises(ConfigError):
        FeatureConfig(**kwargs)


def test_config_round_trip_and_key():
    for cfg in (MEL, STFT, FeatureConfig(max_seconds=10.0)):
        assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
        assert FeatureConfig.from_dict(cfg.to_dict()).key() == cfg.key()
    assert FeatureConfig.from_dict({"kind": "stft"}) == STFT
    keys = {MEL.key(), STFT.key(), FeatureConfig(max_seconds=10.0).key()}
    assert len(keys) == 3
    assert FeatureConfig(max_seconds=14).key() == MEL.key()
    assert len(MEL.key()) == 16
    with pytest.raises(ConfigError, match="unknown"):
        FeatureConfig.from_dict({"kind": "mel", "window": "hamming"})


# --------------------------------------------------------------------------- spectrograms


@pytest.mark.parametrize("n", [0, 159, 160, 8000, 16001, 80159])
@pytest.mark.parametrize("cfg", [MEL, STFT], ids=["mel", "stft"])
def test_shape_and_dtype(n, cfg):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    out = compute_features(x, cfg)
    assert out.shape == (1 + n // 160, cfg.n_bins)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert np.isfinite(out).all()


def reference_power(x: np.ndarray) -> np.ndarray:
    """|STFT|^2 the slow, obvious way, following librosa.stft(center=True, pad_mode="constant"):
    pad n_fft // 2 zeros each side, 1024-sample frames every 160, the 640-sample periodic Hann
    window centred in the frame."""
    window = np.zeros(1024)
    window[192:832] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(640) / 640)
    padded = np.pad(x.astype(np.float64), 512)
    frames = [padded[t * 160 : t * 160 + 1024] for t in range(1 + x.size // 160)]
    return np.abs(np.fft.rfft(np.array(frames) * window, axis=1)) ** 2  # (T, 513)


def test_matches_the_reference_stft_and_librosa_filterbank():
    x = tone(1.3, freq=300.0, noise=0.1)
    power = reference_power(x)
    np.testing.assert_allclose(compute_features(x, STFT), np.log(power + LOG_FLOOR), atol=2e-3)
    basis = features_mod._mel_filterbank(16000, 1024, 128)
    np.testing.assert_allclose(
        compute_features(x, MEL), np.log(power @ basis.T + LOG_FLOOR), atol=1e-4
    )
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(
        sr=16000, n_fft=1024, n_mels=128, fmin=0, fmax=8000, htk=False, norm="slaney"
    )
    np.testing.assert_allclose(basis, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("freq", [1000.0, 2500.0])
def test_pure_tone_peaks_in_the_right_bin_and_band(freq):
    x = tone(1.0, freq=freq, noise=0.0)
    stft = compute_features(x, STFT)[10:-10]  # frames away from the zero-padded edges
    assert set(np.argmax(stft, axis=1)) == {round(freq / (16000 / 1024))}
    # Mel band whose (Slaney) centre frequency is nearest the tone.
    edges = features_mod._mel_to_hz(
        np.linspace(0.0, features_mod._hz_to_mel(8000.0), 128 + 2)
    )
    expected = int(np.argmin(np.abs(edges[1:-1] - freq)))
    mel = compute_features(x, MEL)[10:-10]
    assert set(np.argmax(mel, axis=1)) <= {expected - 1, expected, expected + 1}
    assert np.bincount(np.argmax(mel, axis=1)).argmax() == expected


def test_silence_sits_at_the_log_floor():
    out = compute_features(np.zeros(1600, dtype=np.float32), MEL)
    np.testing.assert_allclose(out, np.log(LOG_FLOOR), rtol=1e-6)


def test_louder_signal_gives_larger_log_power():
    x = tone(1.0, amplitude=0.3, noise=0.1)  # noise puts every bin far above the log floor
    for cfg in (STFT, MEL):
        diff = compute_features(2 * x, cfg) - compute_features(x, cfg)
        np.testing.assert_allclose(diff, np.log(4.0), atol=1e-3)  # power scales by 2^2


def test_rejects_multichannel_input():
    with pytest.raises(ConfigError):
        compute_features(np.zeros((100, 2), dtype=np.float32), MEL)


# --------------------------------------------------------------------------- normalisation


def test_norm_stats_standardise_training_data():
    rng = np.random.default_rng(0)
    feats = [rng.normal(loc=3.0 * i, scale=1.0 + i, size=(50 + 7 * i, 5)) for i in range(4)]
    stats = NormStats.fit(feats)
    allx = np.concatenate([stats.apply(f) for f in feats])
    assert allx.dtype == np.float32
    np.testing.assert_allclose(allx.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(allx.std(axis=0), 1.0, atol=1e-5)
    concat = np.concatenate(feats)
    np.testing.assert_allclose(stats.mean, concat.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.std, concat.std(axis=0), rtol=1e-5)


def test_norm_stats_floor_constant_bins():
    feats = [np.column_stack([np.full(20, -23.0), np.arange(20.0)])]
    stats = NormStats.fit(feats)
    assert stats.std[0] == pytest.approx(STD_FLOOR)
    out = stats.apply(np.array([[-23.0, 5.0]]))
    assert np.isfinite(out).all() and out[0, 0] == 0.0


def test_norm_stats_round_trip_and_errors():
    stats = NormStats.fit([np.random.default_rng(1).normal(size=(30, 4))])
    again = NormStats.from_dict(stats.to_dict())
    assert isinstance(stats.to_dict()["mean"], list)
    np.testing.assert_array_equal(again.mean, stats.mean)
    np.testing.assert_array_equal(again.std, stats.std)
    with pytest.raises(ConfigError):
        NormStats.fit([])
    with pytest.raises(ConfigError):
        NormStats.fit([np.zeros((3, 4)), np.zeros((3, 5))])
    with pytest.raises(ConfigError):
        stats.apply(np.zeros((3, 5)))
    with pytest.raises(ConfigError):
        NormStats.from_dict({"mean": [0.0, 1.0], "std": [1.0]})
    with pytest.raises(ConfigError):
        NormStats.from_dict({"mean": [0.0], "std": [0.0]})
    with pytest.raises(ConfigError):
        NormStats.from_dict({"mean": [0.0]})


# --------------------------------------------------------------------------- cache


def test_cache_put_get(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    x = np.random.default_rng(0).normal(size=(12, 128)).astype(np.float32)
    assert cache.get("ab" * 32, MEL) is None
    cache.put("ab" * 32, MEL, x)
    np.testing.assert_array_equal(cache.get("ab" * 32, MEL), x)
    assert cache.get("ab" * 32, STFT) is None  # keyed by config too
    assert cache.get("cd" * 32, MEL) is None
    # A corrupt entry is a miss, not a crash.
    entry = next((tmp_path / "c").rglob("*.npy"))
    entry.write_bytes(b"garbage")
    assert cache.get("ab" * 32, MEL) is None


def test_cache_default_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "env"))
    assert FeatureCache().root == tmp_path / "env" / "features"


# --------------------------------------------------------------------------- corpus


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    paths = []
    for i, (sr, freq) in enumerate([(16000, 300.0), (22050, 500.0), (8000, 700.0), (44100, 900.0)]):
        paths.append(write_audio(root / f"u{i}.wav", tone(0.8 + 0.1 * i, sr=sr, freq=freq), sr))
    bad = root / "bad.wav"
    bad.write_text("not audio at all")
    paths.insert(2, bad)
    return root, paths


def test_extract_corpus_drops_bad_files_into_problems(corpus):
    root, paths = corpus
    manifest = tiny_manifest(root, paths)
    seen = []
    out = extract_corpus(manifest, MEL, workers=1, progress=lambda d, t: seen.append((d, t)))
    good = [p for p in paths if p.name != "bad.wav"]
    assert [u.path for u in out.manifest.utterances] == [str(p) for p in good]
    assert len(out.features) == 4
    assert [p.path for p in out.manifest.problems] == [str(paths[2])]
    assert "bad.wav" in out.manifest.problems[0].reason
    assert seen == [(i, 5) for i in range(1, 6)]
    for path, feats in zip(good, out.features, strict=True):
        expected = compute_features(load_audio(path).samples, MEL)
        np.testing.assert_array_equal(feats, expected)
    assert len(manifest.utterances) == 5 and manifest.problems == []  # input untouched


def test_extract_corpus_cuts_at_max_seconds(tmp_path):
    path = write_audio(tmp_path / "long.wav", tone(3.0))
    out = extract_corpus(tiny_manifest(tmp_path, [path]), FeatureConfig(max_seconds=1.0), workers=1)
    assert out.features[0].shape == (1 + 16000 // 160, 128)


def test_missing_file_becomes_a_problem(tmp_path):
    manifest = tiny_manifest(tmp_path, [tmp_path / "gone.wav"])
    out = extract_corpus(manifest, MEL, workers=1)
    assert out.features == [] and len(out.manifest.problems) == 1


def test_warm_pass_does_no_decoding_hashing_or_stft(corpus, tmp_path, monkeypatch):
    root, paths = corpus
    manifest = tiny_manifest(root, paths)
    cache = FeatureCache(tmp_path / "cache")
    cold = extract_corpus(manifest, STFT, cache=cache, workers=1)

    def forbidden(*args, **kwargs):
        raise AssertionError("the warm pass must not decode, hash or compute")

    for name in ("load_audio", "compute_features", "audio_fingerprint"):
        monkeypatch.setattr(features_mod, name, forbidden)
    warm = extract_corpus(manifest, STFT, cache=cache, workers=1)
    assert [u.utt_id for u in warm.manifest.utterances] == [
        u.utt_id for u in cold.manifest.utterances
    ]
    assert warm.manifest.problems == cold.manifest.problems  # the bad file's reason is cached too
    for a, b in zip(cold.features, warm.features, strict=True):
        np.testing.assert_array_equal(a, b)


def test_changed_file_is_recomputed(corpus, tmp_path):
    root, paths = corpus
    manifest = tiny_manifest(root, paths)
    cache = FeatureCache(tmp_path / "cache")
    first = extract_corpus(manifest, MEL, cache=cache, workers=1)
    write_audio(paths[0], tone(1.0, freq=2000.0))
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = extract_corpus(manifest, MEL, cache=cache, workers=1)
    expected = compute_features(load_audio(paths[0]).samples, MEL)
    np.testing.assert_array_equal(second.features[0], expected)
    assert not np.array_equal(first.features[0], second.features[0])


def test_workers_give_the_same_result(corpus, tmp_path):
    root, paths = corpus
    manifest = tiny_manifest(root, paths)
    one = extract_corpus(manifest, MEL, workers=1)
    seen = []
    two = extract_corpus(
        manifest,
        MEL,
        cache=FeatureCache(tmp_path / "c2"),
        workers=2,
        progress=lambda d, t: seen.append(d),
    )
    assert one.manifest.utterances == two.manifest.utterances
    assert one.manifest.problems == two.manifest.problems
    for a, b in zip(one.features, two.features, strict=True):
        np.testing.assert_array_equal(a, b)
    assert seen == [1, 2, 3, 4, 5]


def test_invalid_workers(corpus):
    root, paths = corpus
    with pytest.raises(ConfigError):
        extract_corpus(tiny_manifest(root, paths), MEL, workers=0)


def test_extract_corpus_keeps_the_manifest_type_and_extra_fields(corpus):
    from dataclasses import dataclass, field

    from ser_lab.data.corpora.base import Manifest

    @dataclass
    class Extended(Manifest):
        excluded: dict = field(default_factory=dict)

    root, paths = corpus
    base = tiny_manifest(root, paths)
    manifest = Extended(base.corpus, base.root, base.labels, base.utterances, excluded={"x": 1})
    out = extract_corpus(manifest, MEL, workers=1).manifest
    assert isinstance(out, Extended) and out.excluded == {"x": 1}
    assert len(out.utterances) == 4 and len(out.problems) == 1


def test_subset_manifest_reuses_per_file_entries_without_decoding(corpus, tmp_path, monkeypatch):
    root, paths = corpus
    cache = FeatureCache(tmp_path / "cache")
    full = extract_corpus(tiny_manifest(root, paths), MEL, cache=cache, workers=1)

    def forbidden(*args, **kwargs):
        raise AssertionError("cached files must not be decoded, hashed or transformed")

    for name in ("load_audio", "compute_features", "audio_fingerprint"):
        monkeypatch.setattr(features_mod, name, forbidden)
    subset = [paths[3], paths[0]]  # another manifest (no pack for it yet), same files
    out = extract_corpus(tiny_manifest(root, subset), MEL, cache=cache, workers=1)
    by_path = dict(zip([u.path for u in full.manifest.utterances], full.features, strict=True))
    for utt, feats in zip(out.manifest.utterances, out.features, strict=True):
        np.testing.assert_array_equal(feats, by_path[utt.path])


def test_damaged_pack_falls_back_to_per_file_entries(corpus, tmp_path):
    root, paths = corpus
    manifest = tiny_manifest(root, paths)
    cache = FeatureCache(tmp_path / "cache")
    cold = extract_corpus(manifest, MEL, cache=cache, workers=1)
    packs = list((tmp_path / "cache").rglob("packs/*.npy"))
    assert len(packs) == 1
    packs[0].write_bytes(b"\x93NUMPY garbage")
    warm = extract_corpus(manifest, MEL, cache=cache, workers=1)
    for a, b in zip(cold.features, warm.features, strict=True):
        np.testing.assert_array_equal(a, b)
    assert warm.manifest.problems == cold.manifest.problems

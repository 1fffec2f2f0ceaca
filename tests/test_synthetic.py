"""The built-in synthetic corpus: determinism, layout, voices, emotion cues, atomic generation,
and that the task is learnable but not trivial."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lab.data.corpora import synthetic
from ser_lab.data.corpora import voice as voice_mod
from ser_lab.data.corpora.base import PAPER_EMOTIONS
from ser_lab.data.corpora.synthetic import SIZES, default_root, generate_synthetic, load_synthetic
from ser_lab.errors import ConfigError, CorpusError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("syn") / "tiny", size="tiny", workers=2)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("syn") / "small", size="small", workers=2)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_whatever_the_workers(tiny: Path, tmp_path: Path
                                                              ) -> None:
    again = generate_synthetic(tmp_path / "again", size="tiny", workers=1)
    a, b = _files(tiny), _files(again)
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.endswith(".wav")]) == SIZES["tiny"].utterances
    assert a == b


def test_other_seed_gives_other_audio(tiny: Path) -> None:
    x0 = synthetic.render_utterance(0, 0, "neutral", 0)
    x1 = synthetic.render_utterance(1, 0, "neutral", 0)
    assert x0.shape != x1.shape or not np.array_equal(x0, x1)
    # the file in the corpus is exactly the seed-0 rendering
    data, sr = sf.read(tiny / "wav" / "spk01_neutral_001.wav", dtype="int16")
    assert sr == 16000
    np.testing.assert_array_equal(data, voice_mod.to_pcm16(x0))


def test_smaller_size_is_a_subset_of_a_larger_one(tiny: Path, small: Path) -> None:
    a, b = _files(tiny), _files(small)
    wavs = [k for k in a if k.endswith(".wav")]
    assert wavs and all(a[k] == b[k] for k in wavs)


# ------------------------------------------------------------------------------ layout, counts


def test_manifest_counts_and_fields(tiny: Path) -> None:
    m = load_synthetic(tiny)
    spec = SIZES["tiny"]
    assert m.corpus == "synthetic" and m.labels == PAPER_EMOTIONS
    assert len(m) == spec.utterances
    assert m.counts_by_label() == {e: spec.speakers * spec.per_emotion for e in PAPER_EMOTIONS}
    assert m.counts_by_speaker() == {f"spk{i:02d}": len(PAPER_EMOTIONS) * spec.per_emotion
                                     for i in range(1, spec.speakers + 1)}
    assert len({u.utt_id for u in m.utterances}) == len(m)
    for u in m.utterances:
        assert u.group == u.speaker and u.corpus == "synthetic"
        assert Path(u.path).is_absolute() and Path(u.path).is_file()
        assert u.utt_id.startswith(u.speaker) and u.label in u.utt_id
    info = json.loads((tiny / "corpus.json").read_text())
    assert info["generator_version"] == synthetic.GENERATOR_VERSION
    assert (info["seed"], info["size"]) == (0, "tiny")
    assert info["counts"]["utterances"] == spec.utterances
    assert info["synthetic"] is True


def test_files_are_16k_mono_pcm16_with_durations_in_range(small: Path) -> None:
    m = load_synthetic(small)
    durations = []
    for u in m.utterances:
        info = sf.info(u.path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames / 16000 == pytest.approx(u.duration, abs=1e-3)
        assert voice_mod.MIN_SECONDS <= u.duration <= voice_mod.MAX_SECONDS
        durations.append(u.duration)
    assert 2.5 < np.mean(durations) < 5.5
    assert np.std(durations) > 0.3  # lengths vary


# ---------------------------------------------------------------------------- voices and cues


def _frames(x: np.ndarray, n: int = 640, hop: int = 160) -> np.ndarray:
    idx = np.arange(n)[None, :] + hop * np.arange(1 + (len(x) - n) // hop)[:, None]
    return x[idx]


def _median_f0(x: np.ndarray) -> float:
    """Median autocorrelation F0 over the loud, clearly periodic frames."""
    fr = _frames(x) * np.hanning(640)
    energy = (fr**2).sum(1)
    fr = fr[energy > energy.max() * 1e-2]
    ac = np.fft.irfft(np.abs(np.fft.rfft(fr, 2048, axis=1)) ** 2, axis=1)[:, :400]
    ac /= ac[:, :1]
    lo, hi = 16000 // 500, 16000 // 70
    lag = lo + ac[:, lo:hi].argmax(1)
    periodic = ac[np.arange(len(ac)), lag] > 0.5
    return float(np.median(16000 / lag[periodic]))


def _cues(path: str) -> tuple[float, float, float]:
    """(active level dB, median F0 Hz, share of energy above 1 kHz in dB)."""
    x, _ = sf.read(path)
    fr = _frames(x)
    energy = (fr**2).mean(1)
    active = energy > energy.max() * 1e-3
    spec = np.abs(np.fft.rfft(fr[active] * np.hanning(640), axis=1)) ** 2
    f = np.fft.rfftfreq(640, 1 / 16000)
    return (10 * np.log10(energy[active].mean()), _median_f0(x),
            10 * np.log10(spec[:, f > 1000].sum() / spec.sum()))


def test_low_and_high_voices(small: Path) -> None:
    m = load_synthetic(small)
    f0 = defaultdict(list)
    for u in m.utterances:
        if u.label == "neutral":
            f0[u.speaker].append(_median_f0(sf.read(u.path)[0]))
    for speaker, values in f0.items():
        voice = voice_mod.make_speaker(int(speaker[3:]) - 1).voice
        median = float(np.median(values))
        if voice == "low":
            assert 85 < median < 165, (speaker, median)
        else:
            assert 165 < median < 300, (speaker, median)
    assert {voice_mod.make_speaker(i).voice for i in range(4)} == {"low", "high"}


def test_emotion_cues_point_the_right_way_within_speaker(small: Path) -> None:
    m = load_synthetic(small)
    cues = defaultdict(list)
    for u in m.utterances:
        cues[(u.speaker, u.label)].append(_cues(u.path))
    speakers = sorted({u.speaker for u in m.utterances})
    mean = {k: np.mean(v, axis=0) for k, v in cues.items()}

    def diff(a: str, b: str) -> np.ndarray:  # (level dB, F0 log-ratio, HF dB), speaker-average
        d = [mean[(s, a)] - mean[(s, b)] for s in speakers]
        r = [np.log(mean[(s, a)][1] / mean[(s, b)][1]) for s in speakers]
        return np.array([np.mean([x[0] for x in d]), np.mean(r), np.mean([x[2] for x in d])])

    level, f0, hf = diff("angry", "sad")
    assert level > 5 and f0 > np.log(1.2) and hf > 2
    level, f0, hf = diff("happy", "sad")
    assert level > 2 and f0 > np.log(1.15) and hf > 1
    level, f0, hf = diff("neutral", "sad")
    assert level > 1 and f0 > 0 and hf > 0
    level, f0, hf = diff("angry", "happy")
    assert level > 1 and hf > 0


def test_drawn_parameters_overlap_between_neighbouring_emotions() -> None:
    """The cues are distributions: some happy utterances are louder than some angry ones."""
    spk = voice_mod.make_speaker(0)
    draws = {e: [voice_mod.draw_params(spk, e, np.random.default_rng([7, i]))
                 for i in range(200)] for e in PAPER_EMOTIONS}

    def values(e: str, field: str) -> np.ndarray:
        return np.array([getattr(p, field) for p in draws[e]])

    for a, b in (("angry", "happy"), ("neutral", "sad")):
        for field in ("intensity_db", "f0_mean", "tilt_db_oct"):
            lo, hi = sorted((values(a, field), values(b, field)), key=np.mean)
            assert hi.min() < lo.max(), (a, b, field)  # overlapping ranges
            assert hi.mean() > lo.mean()
    assert values("angry", "intensity_db").mean() - values("sad", "intensity_db").mean() > 10
    all_durations = np.concatenate([values(e, "duration") for e in PAPER_EMOTIONS])
    assert all_durations.min() >= 1.5 and all_durations.max() <= 8.0
    assert values("sad", "duration").mean() > values("angry", "duration").mean()


# ---------------------------------------------------------------- atomic generation and loading


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    calls = {"n": 0}
    real = synthetic._render_chunk

    def flaky(jobs: list, wav_dir: str) -> list:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(jobs, wav_dir)

    monkeypatch.setattr(synthetic, "_render_chunk", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_synthetic(tmp_path / "corpus", size="tiny", workers=1)
    assert list(tmp_path.iterdir()) == []  # neither the corpus nor its temporary folder


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftover_partial_folder_is_ignored_and_cleaned(cache: Path) -> None:
    root = default_root("tiny")
    assert root.parent.parent == cache
    root.parent.mkdir(parents=True)
    stale = root.parent / f".{root.name}.partial-{socket.gethostname()}-{_dead_pid()}-abcd1234"
    (stale / "wav").mkdir(parents=True)
    (stale / "metadata.csv").write_text("utt_id,file,label,speaker,group,duration\n")
    live = root.parent / f".{root.name}.partial-{socket.gethostname()}-{os.getpid()}-live0000"
    live.mkdir()
    m = load_synthetic(size="tiny", seed=0)
    assert len(m) == SIZES["tiny"].utterances and Path(m.root) == root.resolve()
    assert not stale.exists()  # its generator is dead
    assert live.exists()  # a running generator's folder is left alone


def test_damaged_cache_folder_is_rebuilt(cache: Path) -> None:
    root = default_root("tiny")
    (root / "wav").mkdir(parents=True)  # no metadata.csv / corpus.json: not a finished corpus
    m = load_synthetic(size="tiny")
    assert len(m) == SIZES["tiny"].utterances and (root / "corpus.json").is_file()


def test_load_generates_once_then_reuses(cache: Path) -> None:
    seen = []
    m1 = load_synthetic(size="tiny", seed=3, progress=lambda d, t: seen.append((d, t)))
    total = SIZES["tiny"].utterances
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert Path(m1.root) == default_root("tiny", 3).resolve()
    assert default_root("tiny", 3).name == f"v{synthetic.GENERATOR_VERSION}-tiny-seed3"
    seen.clear()
    m2 = load_synthetic(size="tiny", seed=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [] and m2.fingerprint() == m1.fingerprint()


def test_existing_same_corpus_is_reused_by_generate(tiny: Path) -> None:
    before = (tiny / "corpus.json").stat().st_mtime_ns
    assert generate_synthetic(tiny, size="tiny") == tiny
    assert (tiny / "corpus.json").stat().st_mtime_ns == before


def test_bad_inputs_raise_clear_errors(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(ConfigError, match="size"):
        default_root("huge")
    with pytest.raises(ConfigError, match="seed"):
        default_root("tiny", -1)
    with pytest.raises(ConfigError, match="classes"):
        load_synthetic(tiny, classes="six")
    with pytest.raises(ConfigError, match="workers"):
        generate_synthetic(tmp_path / "x", size="tiny", workers=0)
    with pytest.raises(CorpusError, match="metadata.csv"):
        load_synthetic(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CorpusError, match="already exists"):
        generate_synthetic(other, size="tiny")
    with pytest.raises(CorpusError, match="already exists"):
        generate_synthetic(tiny, size="tiny", seed=1)  # a different corpus is there
    assert load_synthetic(tiny, classes="all").labels == PAPER_EMOTIONS


# ------------------------------------------------------------------------------------ difficulty


def test_task_is_learnable_but_not_trivial(tmp_path: Path) -> None:
    """Speaker-independent logistic regression on per-utterance log-Mel mean/std.

    The corpus is tuned so that this proxy lands around 65-85 % UA on the default size; here a
    smaller corpus must still be clearly above chance and must not be near-perfect.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix, recall_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from ser_lab.data.features import FeatureConfig, compute_features

    m = load_synthetic(generate_synthetic(tmp_path / "medium", size="medium", workers=2))
    cfg = FeatureConfig("mel")
    feats = []
    for u in m.utterances:
        logmel = compute_features(sf.read(u.path, dtype="float32")[0], cfg)
        feats.append(np.concatenate([logmel.mean(0), logmel.std(0)]))
    x, y, groups = np.array(feats), m.label_ids(), m.groups()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    with threadpool_limits(1):  # BLAS threads fighting over 2 shared cores cost 10x
        pred = cross_val_predict(clf, x, y, groups=groups, cv=GroupKFold(n_splits=4))
    ua = recall_score(y, pred, average="macro")
    assert 0.45 < ua <= 0.95, ua
    cm = confusion_matrix(y, pred, labels=range(4))
    i = {e: k for k, e in enumerate(PAPER_EMOTIONS)}
    angry_sad = cm[i["angry"], i["sad"]] + cm[i["sad"], i["angry"]]
    angry_happy = cm[i["angry"], i["happy"]] + cm[i["happy"], i["angry"]]
    neutral_sad = cm[i["neutral"], i["sad"]] + cm[i["sad"], i["neutral"]]
    assert angry_sad < angry_happy and angry_sad < neutral_sad, cm

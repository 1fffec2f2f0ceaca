"""Bad audio everywhere it can enter, and bounded uploads (docs/reliability.md, sections 1-2).

One catalogue of bad and odd inputs (`CATALOGUE`) goes through every entry point:
- the decoder, `load_audio` (the arbitrary-bytes Hypothesis properties live in test_audio.py);
- `python -m ser_lab predict RUN CLIP...` as a real process: one line per clip, a specific
  message for each bad one, exit status 2, never a traceback;
- a corpus scan (`load_corpus("folder")` + `extract_corpus`): the bad files are skipped and
  listed in `manifest.problems` with their reason, and training on the good ones still works.
The app's Explore page feeds uploads to the same `Predictor.predict`; its engineer tests the page
with this catalogue (see docs/reliability.md).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tomllib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ser_lab.cli import main as cli_main
from ser_lab.data.audio import load_audio
from ser_lab.errors import (
    AudioError,
    EmptyAudioError,
    InvalidSamplesError,
    SilentAudioError,
    TooLargeAudioError,
    TooLongAudioError,
    TooShortAudioError,
    UnreadableAudioError,
)
from ser_lab.paths import PROJECT_ROOT
from ser_lab.runs import RunStore
from tests.audio_fixtures import tone, wav_bytes, write_audio

LIMIT_S = 60.0  # the max_input_seconds used where a limit is set
TEN_MINUTES = 600.0


# ----------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Case:
    """One input: how to write it, and what each entry point must make of it.

    error: the AudioError subclass load_audio raises (None: valid audio, decoded);
    message: a regex its message (and the CLI's line) must match;
    scan: a regex the reason in manifest.problems must match (None: the scan keeps the file).
    """

    file: str
    write: Callable[[Path], None]
    error: type[AudioError] | None
    message: str
    scan: str | None


def _wav_with(field_offset: int, fmt: str, value: int) -> Callable[[Path], None]:
    """A 1 s 16 kHz 16-bit WAV whose header field at `field_offset` lies."""

    def write(path: Path) -> None:
        data = bytearray(wav_bytes(tone(1.0)))
        assert data[36:40] == b"data"  # canonical 44-byte header: fields at fixed offsets
        struct.pack_into(fmt, data, field_offset, value)
        path.write_bytes(bytes(data))

    return write


def _png(path: Path) -> None:
    """A real 1x1 PNG image."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _truncated(path: Path) -> None:
    data = wav_bytes(tone(2.0))
    path.write_bytes(data[: len(data) // 2])


def _nan(path: Path) -> None:
    x = tone(1.0)
    x[100:110] = np.nan
    write_audio(path, x, subtype="FLOAT")


def _huge_sample(path: Path) -> None:
    """A float WAV with one finite but absurd sample: squared in the spectrogram it overflows."""
    x = tone(1.0)
    x[500] = 3e38
    write_audio(path, x, subtype="FLOAT")


def _large_chunk_then_lying_size(path: Path) -> None:
    """A 100 kB LIST chunk, then a data chunk claiming 10^8 bytes: the lie sits past 64 KiB."""
    data = wav_bytes(tone(1.0))
    fmt, audio = data[12:36], data[44:]
    junk = b"LIST" + struct.pack("<I", 100_000) + b"\0" * 100_000
    body = b"WAVE" + fmt + junk + b"data" + struct.pack("<I", 10**8) + audio
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _six_channels(path: Path) -> None:
    x = np.stack([tone(1.0, freq=200.0 * (c + 1), seed=c) for c in range(6)], axis=1)
    write_audio(path, x, subtype="PCM_16")


def _ten_minutes(path: Path) -> None:
    """600 s of 16 kHz 16-bit audio (19.2 MB, under the 20 MiB upload limit)."""
    second = (tone(1.0, freq=300.0) * 32767).astype(np.int16)
    write_audio(path, np.tile(second, int(TEN_MINUTES)), subtype="PCM_16")


UNREADABLE = "not readable as audio"
SCAN_UNREADABLE = r"unreadable audio|not readable as audio"

CATALOGUE: dict[str, Case] = {
    "zero-byte file": Case(
        "zero_byte.wav", lambda p: p.write_bytes(b""), EmptyAudioError,
        r"the file is empty \(0 bytes\)", SCAN_UNREADABLE,
    ),
    "random bytes named .wav": Case(
        "random_bytes.wav",
        lambda p: p.write_bytes(np.random.default_rng(1).integers(0, 256, 8192, np.uint8).tobytes()),
        UnreadableAudioError, UNREADABLE, SCAN_UNREADABLE,
    ),
    "truncated WAV (cut in half)": Case(
        "truncated.wav", _truncated, UnreadableAudioError,
        r"truncated WAV: the header declares 64000 bytes of audio but the file holds only 31978",
        r"truncated WAV",
    ),
    "text file named .wav": Case(
        "text.wav", lambda p: p.write_text("this is not audio\n" * 100), UnreadableAudioError,
        UNREADABLE, SCAN_UNREADABLE,
    ),
    "PNG image": Case("picture.png", _png, UnreadableAudioError, UNREADABLE, r"not an audio file"),
    "lying header: data size > file": Case(
        "lying_data_size.wav", _wav_with(40, "<I", 10**9), UnreadableAudioError,
        r"truncated WAV: the header declares 1000000000 bytes", r"truncated WAV",
    ),
    "lying header: data size 0, audio follows": Case(
        "lying_data_size_zero.wav", _wav_with(40, "<I", 0), UnreadableAudioError,
        r"unfinished WAV: the header declares 0 bytes of audio but 32000 bytes follow",
        r"empty audio \(no samples\)",
    ),
    "lying header: sample rate 0": Case(
        "lying_rate_zero.wav", _wav_with(24, "<I", 0), UnreadableAudioError, UNREADABLE,
        SCAN_UNREADABLE,
    ),
    "lying header: sample rate 1 MHz": Case(
        "lying_rate_huge.wav", _wav_with(24, "<I", 1_000_000), UnreadableAudioError,
        r"sample rate 1000000 Hz is outside 1000-768000 Hz", r"sample rate 1000000 Hz is outside",
    ),
    "lying header: 0 channels": Case(
        "lying_channels_zero.wav", _wav_with(22, "<H", 0), UnreadableAudioError,
        UNREADABLE + r" \(Channel count is zero", SCAN_UNREADABLE,
    ),
    "lying header: plausible wrong rate (8 kHz for 16 kHz data)": Case(
        "lying_rate_plausible.wav", _wav_with(24, "<I", 8000), None, "", None,
    ),
    "huge finite sample (3e38, float WAV)": Case(
        "huge_sample.wav", _huge_sample, InvalidSamplesError,
        r"1 sample\(s\) exceed 1e\+06 times full scale \(largest 3e\+38", r"exceed 1e\+06",
    ),
    "lying data size after a 100 kB chunk": Case(
        "large_chunk_lying_size.wav", _large_chunk_then_lying_size, UnreadableAudioError,
        r"truncated WAV: the header declares 100000000 bytes of audio but the file holds only 32000",
        r"truncated WAV",
    ),
    "text file named .mp3 (fake mp3)": Case(
        "fake.mp3", lambda p: p.write_text("this is not an mp3\n" * 100), UnreadableAudioError,
        r"not readable as audio \(unknown format: not a WAV, FLAC, OGG, MP3, AIFF, AU or CAF file",
        r"unreadable audio \(unknown format",
    ),
    "0.4999 s": Case(
        "just_short.wav", lambda p: write_audio(p, tone(0.4999)), TooShortAudioError,
        r"0\.4999 s of audio is shorter than the minimum of 0\.5 s", r"0\.4999 s of audio",
    ),
    "NaN samples (float WAV)": Case(
        "nan.wav", _nan, InvalidSamplesError, r"10 sample\(s\) are NaN or infinite",
        r"NaN or infinite",
    ),
    "8-bit WAV": Case("pcm_u8.wav", lambda p: write_audio(p, tone(1.0), subtype="PCM_U8"), None, "", None),
    "32-bit float WAV": Case(
        "float32.wav", lambda p: write_audio(p, tone(1.0), subtype="FLOAT"), None, "", None
    ),
    "8 kHz": Case("rate_8k.wav", lambda p: write_audio(p, tone(1.0, sr=8000), 8000), None, "", None),
    "96 kHz": Case(
        "rate_96k.wav", lambda p: write_audio(p, tone(1.0, sr=96000), 96000), None, "", None
    ),
    "6 channels": Case("six_channels.wav", _six_channels, None, "", None),
    "0.1 s": Case(
        "short.wav", lambda p: write_audio(p, tone(0.1)), TooShortAudioError,
        r"0\.100 s of audio is shorter than the minimum of 0\.5 s", r"shorter than the minimum",
    ),
    "10 minutes (no limit: cut at 14 s)": Case("ten_minutes.wav", _ten_minutes, None, "", None),
    "pure silence": Case(
        "silence.wav", lambda p: write_audio(p, np.zeros(16000, np.float32)), SilentAudioError,
        r"the signal is silent or constant", r"silent or constant",
    ),
    "pure DC": Case(
        "dc.wav", lambda p: write_audio(p, np.full(16000, 0.25, np.float32)), SilentAudioError,
        r"the signal is silent or constant", r"silent or constant",
    ),
}
# Refused by the corpus scan from the header alone (the rest only when decoded).
HEADER_LEVEL = (
    "zero-byte file", "random bytes named .wav", "text file named .wav", "PNG image",
    "text file named .mp3 (fake mp3)",
    "lying header: data size 0, audio follows", "lying header: sample rate 0",
    "lying header: 0 channels",
)
BAD = {name: case for name, case in CATALOGUE.items() if case.error is not None}
VALID = {name: case for name, case in CATALOGUE.items() if case.error is None}


def write_catalogue(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, case in CATALOGUE.items():
        path = folder / case.file
        case.write(path)
        paths[name] = path
    return paths


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_catalogue(tmp_path_factory.mktemp("catalogue"))


@pytest.fixture(scope="module")
def folder_corpus(tmp_path_factory: pytest.TempPathFactory, reliability_cache: Path) -> dict:
    """A `folder` corpus: the tiny synthetic corpus laid out as root/<label>/<speaker>/*.wav,
    plus every catalogue file in root/angry/spk01/. Trained once (1 epoch, fold 0 of 2)."""
    from ser_lab.config import TrainConfig
    from ser_lab.data.corpora import load_corpus
    from ser_lab.learn.trainer import new_run, train_run

    base = tmp_path_factory.mktemp("folder_corpus")
    cache = reliability_cache
    root, store_dir = base / "corpus", base / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_LAB_CACHE", str(cache))
        mp.setenv("SER_LAB_CHECKPOINTS", str(store_dir))
        synthetic = load_corpus("synthetic", size="tiny")
        for u in synthetic.utterances:
            target = root / u.label / u.speaker / Path(u.path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(u.path, target)
        bad_dir = root / "angry" / synthetic.utterances[0].speaker
        paths = write_catalogue(bad_dir)
        scanned = load_corpus("folder", root)
        store = RunStore(store_dir)
        cfg = TrainConfig(
            corpus="folder", root=str(root), epochs=1, n_folds=2, folds=[0], workers=1,
            device="cpu", seed=0,
        )
        run = new_run(cfg, store, name="folder with bad files")
        with run.lock():
            results = train_run(run)
    return {
        "root": root, "paths": paths, "scanned": scanned, "n_good": len(synthetic),
        "run": run, "store": store, "results": results, "cache": cache,
    }


# ----------------------------------------------------------------------------- the decoder


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_decoder_gives_the_specific_error_or_a_clip(catalogue: dict[str, Path], name: str) -> None:
    case, path = CATALOGUE[name], catalogue[name]
    if case.error is None:
        clip = load_audio(path)
        assert clip.sample_rate == 16000 and clip.samples.dtype == np.float32
        assert clip.samples.ndim == 1 and np.isfinite(clip.samples).all()
        assert 0.5 <= clip.duration <= 14.0
        return
    with pytest.raises(case.error, match=case.message) as info:
        load_audio(path)
    assert type(info.value) is case.error
    assert case.file in str(info.value)  # the message names the file


def test_valid_odd_formats_keep_what_they_were(catalogue: dict[str, Path]) -> None:
    assert load_audio(catalogue["8 kHz"]).original_sample_rate == 8000
    assert load_audio(catalogue["96 kHz"]).original_sample_rate == 96000
    six = load_audio(catalogue["6 channels"])
    assert six.original_channels == 6 and six.duration == pytest.approx(1.0)
    u8 = load_audio(catalogue["8-bit WAV"])
    assert abs(float(u8.samples.mean())) < 0.01 and 0.4 < float(np.abs(u8.samples).max()) < 0.6
    # A plausible but wrong rate cannot be told from the data: decoded at the rate it claims.
    lying = load_audio(catalogue["lying header: plausible wrong rate (8 kHz for 16 kHz data)"])
    assert lying.original_sample_rate == 8000 and lying.duration == pytest.approx(2.0)


def test_ten_minutes_is_refused_with_a_limit_and_cut_without(catalogue: dict[str, Path]) -> None:
    path = catalogue["10 minutes (no limit: cut at 14 s)"]
    with pytest.raises(TooLongAudioError, match=r"600\.0 s is longer than the limit of 60\.0 s"):
        load_audio(path, max_input_seconds=LIMIT_S)
    clip = load_audio(path)
    assert clip.truncated and clip.duration == 14.0 and clip.samples.size == 14 * 16000
    assert clip.original_duration == pytest.approx(TEN_MINUTES)


# ----------------------------------------------------------------------------- the CLI


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ser_lab", *args], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )


def _probabilities_by_clip(out: str, clips: list[str]) -> dict[str, list[float]]:
    """The p=... values printed under each clip's label line."""
    found: dict[str, list[float]] = {}
    current = None
    for line in out.splitlines():
        head = next((c for c in clips if line.startswith(f"{c}: ")), None)
        if head is not None:
            current = head
            found.setdefault(current, [])
            continue
        m = re.match(r"^  \S+\s+p=\s*(\S+)\s+distance to center\s+(\S+)$", line)
        if m and current is not None:
            found[current].append(float(m.group(1)))
            assert np.isfinite(float(m.group(2))), line
    return found


def _lines_by_clip(out: str, clips: list[str]) -> dict[str, str]:
    """The first line the CLI printed for each clip ("<clip>: <label>" or "<clip>: error: ...")."""
    found = {}
    for line in out.splitlines():
        for clip in clips:
            if line.startswith(f"{clip}: ") and clip not in found:
                found[clip] = line[len(clip) + 2 :]
    return found


def test_cli_predict_gives_one_line_per_clip_and_no_traceback(folder_corpus: dict, tmp_path: Path) -> None:
    """The real process, every catalogue file plus a missing file and a folder, in one call."""
    paths = {name: str(p) for name, p in folder_corpus["paths"].items()}
    paths["missing file"] = str(tmp_path / "missing.wav")
    paths["a folder"] = str(tmp_path)
    env = {**os.environ, "SER_LAB_CACHE": str(folder_corpus["cache"]),
           "SER_LAB_MAX_INPUT_SECONDS": str(LIMIT_S)}
    env.pop("SER_LAB_MAX_UPLOAD_MB", None)
    run_id = folder_corpus["run"].run_id
    done = _cli("--store", str(folder_corpus["store"].root), "predict", run_id, *paths.values(), env=env)
    assert done.returncode == 2, done.stderr  # some clip failed
    assert "Traceback" not in done.stdout + done.stderr
    lines = _lines_by_clip(done.stdout, list(paths.values()))
    assert set(lines) == set(paths.values())
    probabilities = _probabilities_by_clip(done.stdout, list(paths.values()))
    labels = ("neutral", "angry", "happy", "sad")
    for name, case in CATALOGUE.items():
        line = lines[paths[name]]
        if name.startswith("10 minutes"):  # with the limit set: refused before decoding
            assert re.fullmatch(r"error: .*600\.0 s is longer than the limit of 60\.0 s", line), line
        elif case.error is None:
            assert line in labels, (name, line)
            p = np.array(probabilities[paths[name]])
            assert p.shape == (4,) and np.isfinite(p).all(), (name, p)  # never a NaN
            assert abs(p.sum() - 1.0) < 5e-3 and (p >= 0).all(), (name, p)  # 3 decimals each
            assert line == labels[int(np.argmax(p))], (name, line, p)
        else:
            assert line.startswith("error: ") and re.search(case.message, line), (name, line)
    assert "no such file" in lines[paths["missing file"]]
    assert "not a regular file" in lines[paths["a folder"]]


def test_cli_predict_cuts_ten_minutes_without_a_limit(
    folder_corpus: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SER_LAB_CACHE", str(folder_corpus["cache"]))
    monkeypatch.delenv("SER_LAB_MAX_INPUT_SECONDS", raising=False)  # default: 600 s allowed
    path = str(folder_corpus["paths"]["10 minutes (no limit: cut at 14 s)"])
    code = cli_main(["--store", str(folder_corpus["store"].root), "predict",
                     folder_corpus["run"].run_id, path])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(rf"^{re.escape(path)}: (neutral|angry|happy|sad) \(cut at 14 s\)$", out, re.M)


def test_cli_predict_refuses_an_oversized_upload_before_decoding(
    folder_corpus: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """21 MiB of garbage: refused by size (20 MiB default), so the decoder never sees it."""
    import ser_lab.data.audio

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the decoder was called")

    monkeypatch.setattr(ser_lab.data.audio, "_decode", no_decoding)
    monkeypatch.delenv("SER_LAB_MAX_UPLOAD_MB", raising=False)
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (21 * 1024 * 1024))
    code = cli_main(["--store", str(folder_corpus["store"].root), "predict",
                     folder_corpus["run"].run_id, str(big)])
    out = capsys.readouterr().out
    assert code == 2
    assert f"{big}: error: '{big}': {21 * 1024 * 1024} bytes is more than the limit of 20971520 bytes" in out


# ----------------------------------------------------------------------------- corpus scans


def test_corpus_scan_skips_and_lists_every_bad_file(folder_corpus: dict) -> None:
    from ser_lab.data.features import FeatureCache, FeatureConfig, extract_corpus

    paths = folder_corpus["paths"]
    scanned = folder_corpus["scanned"]
    features = extract_corpus(scanned, FeatureConfig(), cache=FeatureCache(folder_corpus["cache"] / "features"), workers=1)
    manifest = features.manifest
    problems = {Path(p.path).name: p.reason for p in manifest.problems}
    kept = {Path(u.path).name for u in manifest.utterances}
    for name, case in CATALOGUE.items():
        file = paths[name].name
        if case.scan is None:
            assert file in kept, name
            assert file not in problems, (name, problems.get(file))
        else:
            assert file not in kept, name
            assert re.search(case.scan, problems[file]), (name, problems[file])
    assert len(manifest.problems) == len(BAD)
    assert len(manifest) == folder_corpus["n_good"] + len(VALID)
    assert len(features.features) == len(manifest)


def test_training_on_a_corpus_with_bad_files_uses_the_good_ones(folder_corpus: dict) -> None:
    run = folder_corpus["run"]
    assert run.read_status()["state"] == "done"
    data = run.config["data"]
    assert data["n_problems"] == len(BAD)
    assert data["n_utterances"] == folder_corpus["n_good"] + len(VALID)
    emb = run.load_embeddings(0)
    assert len(emb["utt_ids"]) == data["n_utterances"]
    bad_ids = {f"angry/{p.parent.name}/{p.stem}" for n, p in folder_corpus["paths"].items() if n in BAD}
    assert not bad_ids & set(emb["utt_ids"].tolist())
    # The model is real: every weight finite (the 3e38 sample would have made them NaN) ...
    state = run.load_model(0)["state_dict"]
    assert all(np.isfinite(t.float().numpy()).all() for t in state.values())
    assert np.isfinite(emb["probs"]).all() and np.isfinite(emb["z"]).all()
    np.testing.assert_array_equal(emb["preds"], emb["probs"].argmax(1))
    # ... and the reported UA is the UA of its own test predictions, not just any fraction.
    from ser_lab.learn.metrics import scores

    test = emb["split"] == "test"
    names = tuple(str(n) for n in emb["label_names"])
    ua = scores(emb["labels"][test], emb["preds"][test], names)["UA"]
    assert folder_corpus["results"]["folds"][0]["UA"] == pytest.approx(ua)
    assert folder_corpus["results"]["pooled"]["UA"] == pytest.approx(ua)
    assert np.isfinite(ua) and 0.0 <= ua <= 1.0


def test_cli_data_describe_lists_the_unreadable_files(
    folder_corpus: dict, capsys: pytest.CaptureFixture
) -> None:
    """`data describe` reads headers only: it lists the files whose header is unusable."""
    header_level = {CATALOGUE[name].file for name in HEADER_LEVEL}
    assert {Path(p.path).name for p in folder_corpus["scanned"].problems} == header_level
    code = cli_main(["data", "describe", "--corpus", "folder", "--root", str(folder_corpus["root"])])
    out = capsys.readouterr().out
    assert code == 0
    assert f"problems: {len(header_level)}" in out
    for file in header_level:
        assert re.search(rf"^  angry/\w+/{re.escape(file)}: ", out, re.M), file


# ----------------------------------------------------------------------------- upload bounds


def test_upload_limit_matches_the_streamlit_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app refuses bigger uploads in the browser; inference refuses the same size again."""
    from ser_lab import inference

    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    max_mb = config["server"]["maxUploadSize"]
    assert max_mb == inference.DEFAULT_MAX_UPLOAD_MB == 20
    monkeypatch.delenv(inference.ENV_MAX_UPLOAD_MB, raising=False)
    monkeypatch.delenv(inference.ENV_MAX_INPUT_SECONDS, raising=False)
    max_bytes, max_seconds = inference.upload_limits()
    # Streamlit counts maxUploadSize in MiB (server.maxUploadSize * 1024 * 1024 bytes).
    assert max_bytes == max_mb * 1024 * 1024
    assert max_seconds == inference.DEFAULT_MAX_INPUT_SECONDS


def test_predictor_checks_both_bounds_before_decoding(
    folder_corpus: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import soundfile as sf

    from ser_lab.inference import Predictor

    monkeypatch.setenv("SER_LAB_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("SER_LAB_MAX_INPUT_SECONDS", "30")
    predictor = Predictor.from_run(folder_corpus["run"], fold=0)
    assert (predictor.max_bytes, predictor.max_input_seconds) == (1024 * 1024, 30.0)

    def no_samples(*args: object, **kwargs: object) -> None:
        raise AssertionError("samples were decoded")

    monkeypatch.setattr(sf.SoundFile, "read", no_samples)
    with pytest.raises(TooLargeAudioError, match="more than the limit of 1048576 bytes"):
        predictor.predict(b"\0" * (1024 * 1024 + 1), with_projection=False, with_neighbours=False)
    long_clip = wav_bytes(tone(31.0, sr=8000), 8000)  # 496 kB: under the size limit
    with pytest.raises(TooLongAudioError, match="31.0 s is longer than the limit of 30.0 s"):
        predictor.predict(long_clip, with_projection=False, with_neighbours=False)

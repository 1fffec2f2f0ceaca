"""The second reliability pass (docs/reliability.md, sections 8-10): no NaN ever reported as a
result, no traceback, only regular files opened, any bytes in a name.

Each test here failed on the code before the fix it names (issue 13) and passes after it.
Trainings use the tiny synthetic corpus (1-2 epochs, fold 0 of 2) and the reliability modules'
shared cache, so the corpus and its features are made once per session.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_lab import fileio
from ser_lab.cli import main as cli_main
from ser_lab.config import TrainConfig
from ser_lab.data.audio import load_audio
from ser_lab.data.corpora import audio_duration, describe, load_corpus
from ser_lab.errors import ConfigError, CorpusError, NonFiniteError, UnreadableAudioError
from ser_lab.learn.trainer import check_finite, drop_non_finite
from ser_lab.runs import MODEL_KEYS, RunStore
from tests.audio_fixtures import tiny_manifest, tone, wav_bytes, write_audio

TINY = ["train", "--corpus", "synthetic", "--size", "tiny", "--folds", "2", "--fold", "0",
        "--workers", "1", "--device", "cpu"]


@pytest.fixture
def env(reliability_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = reliability_cache
    store = tmp_path / "runs"
    monkeypatch.setenv("SER_LAB_CACHE", str(cache))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(store))
    return {"cache": cache, "store": store}


def one_error_line(err: str) -> str:
    """The single `error: ...` line of stderr; progress bars (redrawn with \\r) aside."""
    shown = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    lines = [line for line in shown if line.strip() and not re.match(r"^\w+ +[\d.]+%\|", line)]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def strict_lines(path: Path) -> list[dict]:
    """JSON lines parsed strictly: a bare NaN / Infinity fails."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON constant {token} in {path}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines() if line]


# ----------------------------------------------------------------------------- divergence


def test_a_diverging_training_fails_naming_epoch_batch_and_cause(env, capsys) -> None:
    """Was: `train --lam 1e300` ended `done` with NaN weights and UA 25 %."""
    code = cli_main(["--store", str(env["store"]), *TINY, "--epochs", "1", "--lam", "1e300"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert "training diverged at fold 0, epoch 1, batch 1" in line
    assert "lambda = 1e+300" in line and "too large" in line
    (row,) = RunStore(env["store"]).list()
    assert row.state == "failed" and "diverged" in row.error and row.UA is None
    run_dir = env["store"] / row.run_id
    assert not (run_dir / "results.json").exists()
    assert not (run_dir / "fold_0" / "model.pt").exists()


def test_divergence_later_keeps_the_last_good_epoch_and_resumes(env, monkeypatch, capsys) -> None:
    """A NaN loss in epoch 2 stops the run `failed`; epoch 1's state and metrics stay intact."""
    import ser_lab.learn.objectives as objectives

    real = objectives.weighted_cross_entropy
    calls = {"n": 0}

    def nan_from_the_second_batch(logits, labels, weights):
        calls["n"] += 1
        loss = real(logits, labels, weights)
        return loss * float("nan") if calls["n"] >= 2 else loss

    monkeypatch.setattr(objectives, "weighted_cross_entropy", nan_from_the_second_batch)
    code = cli_main(["--store", str(env["store"]), *TINY, "--epochs", "2", "--lam", "0.3"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "epoch 2, batch 1: the loss is nan" in line
    (row,) = RunStore(env["store"]).list()
    run = RunStore(env["store"]).get(row.run_id)
    assert row.state == "failed"
    last = torch.load(run.fold_dir(0) / "last.pt", weights_only=True)
    assert last["epoch"] == 1  # the last good state
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    records = strict_lines(run.metrics_path)
    assert [r["epoch"] for r in records] == [1]
    assert all(np.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    monkeypatch.setattr(objectives, "weighted_cross_entropy", real)
    assert cli_main(["--store", str(env["store"]), "train", "--resume", row.run_id]) == 0
    assert run.read_status()["state"] == "done"
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]


def test_check_finite_names_the_step() -> None:
    model = torch.nn.Linear(3, 2)
    centers = types.SimpleNamespace(centers=torch.zeros(2, 3))
    cfg = TrainConfig(lam=0.3, lr=3e-4)
    check_finite(torch.tensor(1.5), model, centers, cfg=cfg, fold=1, epoch=3, batch=7)  # fine
    with pytest.raises(NonFiniteError, match=r"fold 1, epoch 3, batch 7: the loss is inf"):
        check_finite(torch.tensor(float("inf")), model, centers, cfg=cfg, fold=1, epoch=3, batch=7)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"weights or centers after the step are not finite"):
        check_finite(torch.tensor(0.5), model, centers, cfg=cfg, fold=1, epoch=3, batch=7)


def test_non_finite_features_are_listed_not_trained_on(tmp_path: Path) -> None:
    """Features cached before samples were bounded may hold inf: left out, with the reason."""
    paths = [write_audio(tmp_path / f"u{i}.wav", tone(1.0, seed=i)) for i in range(3)]
    manifest = tiny_manifest(tmp_path, paths)
    feats = [np.zeros((10, 4), np.float32) for _ in range(3)]
    feats[1][3, 2] = np.inf
    kept, kept_feats = drop_non_finite(manifest, feats)
    assert [u.utt_id for u in kept.utterances] == ["u0", "u2"] and len(kept_feats) == 2
    assert kept.problems[-1].path == str(paths[1])
    assert "NaN or infinite" in kept.problems[-1].reason


# ----------------------------------------------------------------------------- disk full


def test_disk_full_while_training_is_one_line_and_resumable(env, monkeypatch, capsys) -> None:
    """Was: an `OSError: [Errno 28]` traceback (the run was already marked failed)."""
    real = fileio.atomic_torch_save

    def full_disk(path, obj):
        if Path(path).name == "last.pt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, obj)

    monkeypatch.setattr(fileio, "atomic_torch_save", full_disk)
    code = cli_main(["--store", str(env["store"]), *TINY, "--epochs", "1"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert "disk full (No space left on device) while writing" in line and "--resume" in line
    (row,) = RunStore(env["store"]).list()
    assert row.state == "failed" and row.error.startswith("disk full")
    monkeypatch.setattr(fileio, "atomic_torch_save", real)  # space freed
    assert cli_main(["--store", str(env["store"]), "train", "--resume", row.run_id]) == 0
    run = RunStore(env["store"]).get(row.run_id)
    assert run.read_status()["state"] == "done"

    # The same run with one weight set to NaN: eval and predict refuse it; never a NaN printed.
    payload = run.load_model(0)
    payload["state_dict"] = dict(payload["state_dict"])
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name] = payload["state_dict"][name].clone().fill_(float("nan"))
    run.save_model(0, payload)
    clip = write_audio(env["store"].parent / "clip.wav", tone(1.0))
    capsys.readouterr()
    assert cli_main(["--store", str(env["store"]), "predict", row.run_id, str(clip)]) == 2
    out, err = capsys.readouterr()
    assert "nan" not in out.lower()
    assert "NaN or infinite weights" in one_error_line(err) and "diverged" in err


# ----------------------------------------------------------------------------- configs and paths


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("seed", -1, "0 <= seed < 2\\*\\*32"),
        ("seed", 2**32, "0 <= seed < 2\\*\\*32"),
        ("seed", 1.5, "seed must be an integer"),
        ("lr", float("nan"), "learning rate must be a finite number"),
        ("lr", float("inf"), "learning rate must be a finite number"),
        ("lam", "abc", "lambda must be a number"),
        ("lam", float("-inf"), "lambda must be a finite number"),
        ("alpha", float("nan"), "alpha must be a finite number"),
        ("epochs", True, "epochs must be an integer"),
        ("val_fraction", float("nan"), "val_fraction must be a finite number"),
        ("batch_size", 0, "batch size must be >= 1"),
        ("augment", "yes", "augment must be true or false"),
        ("folds", [0, "1"], "fold index must be an integer"),
        ("root", "a\x00b", "root must be text without NUL bytes"),
    ],
)
def test_train_config_refuses_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value}).validate()


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--seed", str(2**32)]])
def test_bad_seed_is_refused_before_any_folder(env, capsys, args: list[str]) -> None:
    """Was: a numpy ValueError traceback and a failed folder left behind."""
    code = cli_main(["--store", str(env["store"]), *TINY, "--epochs", "1", *args])
    assert code == 2 and "seed" in one_error_line(capsys.readouterr().err)
    assert not env["store"].exists()  # not even the store folder


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device_fails_before_a_queued_folder(env, capsys) -> None:
    """Was: a `queued` folder, listed interrupted, that could not resume."""
    code = cli_main(["--store", str(env["store"]), *TINY[:-2], "--epochs", "1", "--device", "cuda"])
    assert code == 2 and "no CUDA GPU" in one_error_line(capsys.readouterr().err)
    assert not env["store"].exists() or RunStore(env["store"]).list() == []


def test_store_at_a_file_or_unwritable_place_is_one_line(tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for args in (["runs"], [*TINY, "--epochs", "1"]):
        assert cli_main(["--store", str(a_file), *args]) == 2
        assert "is a file, not a folder" in one_error_line(capsys.readouterr().err)
    assert cli_main(["--store", "/proc/ser_lab_store", *TINY, "--epochs", "1"]) == 2
    assert "cannot create the run store /proc/ser_lab_store" in one_error_line(capsys.readouterr().err)


def test_listing_runs_creates_no_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    missing = tmp_path / "nowhere" / "runs"
    assert cli_main(["--store", str(missing), "runs"]) == 0
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "default-store"))
    assert cli_main(["runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out
    assert not missing.parent.exists() and not (tmp_path / "default-store").exists()


def test_json_files_are_strict(tmp_path: Path) -> None:
    """Was: metrics.jsonl held bare NaN / Infinity."""
    fileio.append_jsonl(tmp_path / "m.jsonl", {"loss": float("nan"), "x": [1.0, float("inf")]})
    fileio.atomic_write_json(tmp_path / "r.json", {"recall": {"sad": np.float32("nan")}})
    assert strict_lines(tmp_path / "m.jsonl") == [{"loss": None, "x": [1.0, None]}]
    assert json.loads((tmp_path / "r.json").read_text()) == {"recall": {"sad": None}}


# ----------------------------------------------------------------------------- broken run folders


def _embeddings(n: int = 8) -> dict:
    labels = np.arange(n) % 4
    return {
        "z": np.eye(n, 4, dtype=np.float32), "labels": labels, "preds": labels,
        "probs": np.full((n, 4), 0.25), "utt_ids": np.array([f"u{i}" for i in range(n)]),
        "split": np.array(["train"] * (n - 2) + ["test"] * 2), "centers": np.eye(4),
        "label_names": np.array(["neutral", "angry", "happy", "sad"]),
    }


def _done_run(store: RunStore, config: dict, folds: dict[int, dict]):
    run = store.create(config)
    for k, payload in folds.items():
        run.save_model(k, payload)
        run.save_embeddings(k, **_embeddings())
    fold_rows = [{"fold": k, "UA": 0.5, "WA": 0.5} for k in (0, 1)]
    run.write_results({"folds": fold_rows, "mean": {"UA": 0.5, "WA": 0.5}, "pooled": {"UA": 0.5, "WA": 0.5}})
    run.update_status(state="done", progress=1.0)
    return run


def test_wrong_typed_run_files_are_one_broken_row_each(tmp_path: Path, capsys) -> None:
    """Was: `runs` died with `Unknown format code 'f'` and hid every row after the bad one."""
    from ser_lab.app import run_tables

    store = RunStore(tmp_path / "runs")
    full = {key: torch.zeros(1) for key in MODEL_KEYS}
    good = _done_run(store, {"lam": 0.3, "alpha": 0.5, "corpus": "synthetic"}, {0: full, 1: full})
    bad = {
        "lam-abc": _done_run(store, {"lam": "abc", "alpha": 0.5}, {0: full, 1: full}),
        "train-seed": _done_run(store, {"lam": 0.0, "train": {"seed": "x"}}, {0: full, 1: full}),
        "no-keys": _done_run(
            store, {"lam": 0.0, "train": TrainConfig().to_dict()}, {0: {"state_dict": {}}, 1: full}
        ),
    }
    with open(bad["lam-abc"].status_path) as f:
        assert json.load(f)["state"] == "done"
    status = bad["train-seed"]  # also a status with a wrong-typed progress
    text = status.status_path.read_text().replace('"progress": 1.0', '"progress": "most"')
    status.status_path.write_text(text)
    ua = _done_run(store, {"lam": 0.1}, {0: full, 1: full})
    ua.results_path.write_text(ua.results_path.read_text().replace('"UA": 0.5', '"UA": "half"', 1))
    rows = {r.run_id: r for r in store.list()}
    assert rows[good.run_id].state == "done" and rows[good.run_id].UA == 0.5
    assert rows[bad["lam-abc"].run_id].problem == "config.json: lam is 'abc', expected a finite number"
    assert "train.seed is 'x', expected an integer" in rows[bad["train-seed"].run_id].problem
    assert rows[bad["no-keys"].run_id].problem.startswith("fold 0 model.pt lacks centers, norm")
    assert "is not a fraction" in rows[ua.run_id].problem
    for run in (*bad.values(), ua):
        assert rows[run.run_id].state == "broken"
    # Every table and label of the app takes these rows.
    assert len(run_tables.runs_frame(rows.values())) == 5
    assert all(isinstance(run_tables.run_label(r), str) for r in rows.values())
    assert run_tables.default_pair(list(rows.values()))[0] in (None, good.run_id)
    assert cli_main(["--store", str(store.root), "runs"]) == 0
    out = capsys.readouterr().out
    assert all(run_id in out for run_id in rows)
    assert "! config.json: lam is 'abc'" in out
    # eval / predict on the model without keys: one line (was: KeyError: 'model_config').
    for command in (["eval", bad["no-keys"].run_id], ["predict", bad["no-keys"].run_id, "x.wav"]):
        assert cli_main(["--store", str(store.root), *command]) == 2
        assert "model.pt lacks centers" in one_error_line(capsys.readouterr().err)


def test_eval_with_a_missing_fold_says_so(tmp_path: Path, capsys) -> None:
    """Was: exit 0, re-scoring the other folds without a word."""
    store = RunStore(tmp_path / "runs")
    full = {key: torch.zeros(1) for key in MODEL_KEYS}
    run = _done_run(store, {"lam": 0.0, "train": TrainConfig().to_dict()}, {1: full})
    assert cli_main(["--store", str(store.root), "eval", run.run_id]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "fold 0 has no saved model" in line and "nothing is reported" in line


# ----------------------------------------------------------------------------- corpus scans


def _good_folder(root: Path) -> None:
    """root/neutral/s1/good0.wav and root/angry/s1/good1.wav."""
    for i, label in enumerate(("neutral", "angry")):
        (root / label / "s1").mkdir(parents=True, exist_ok=True)
        write_audio(root / label / "s1" / f"good{i}.wav", tone(1.0, seed=i))


def _in_time(fn, seconds: float = 30.0):
    """fn() in a thread; fails (instead of hanging the suite) if it does not return in time."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("v", fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the scan hangs"
    return out["v"]


def test_fifo_socket_and_device_are_listed_without_being_opened(tmp_path: Path) -> None:
    """Was: a FIFO listed in a CSV corpus made `data describe` hang forever."""
    root = tmp_path / "corpus"
    _good_folder(root)
    (root / "sad" / "s1").mkdir(parents=True)
    os.mkfifo(root / "angry" / "s1" / "pipe.wav")
    os.symlink("/dev/zero", root / "neutral" / "s1" / "zero.wav")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sad" / "s1" / "sock.wav"))
        manifest = _in_time(lambda: load_corpus("folder", root))
        reasons = {Path(p.path).name: p.reason for p in manifest.problems}
        assert "FIFO (named pipe)" in reasons["pipe.wav"] and "never opened" in reasons["pipe.wav"]
        assert "character device" in reasons["zero.wav"]
        assert "socket" in reasons["sock.wav"]
        assert len(manifest) == 2
    csv = tmp_path / "list.csv"
    csv.write_text(f"path,label\n{root}/angry/s1/pipe.wav,angry\n{root}/angry/s1/good1.wav,angry\n")
    manifest = _in_time(lambda: load_corpus("csv", csv))
    assert "FIFO" in manifest.problems[0].reason and len(manifest) == 1
    os.mkfifo(tmp_path / "pipe.csv")
    exc = _in_time(lambda: _raises(lambda: load_corpus("csv", tmp_path / "pipe.csv")))
    assert isinstance(exc, CorpusError) and "not a regular file" in str(exc)
    with pytest.raises(UnreadableAudioError, match=r"not a regular file \(a FIFO"):
        load_audio(root / "angry" / "s1" / "pipe.wav")


def _raises(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - handed back to the test thread
        return exc
    return None


def test_nul_bytes_in_a_csv_are_a_listed_problem(tmp_path: Path, capsys) -> None:
    """Was: `ValueError: embedded null byte` traceback."""
    write_audio(tmp_path / "a.wav", tone(1.0))
    csv = tmp_path / "list.csv"
    csv.write_bytes(b"path,label\na.wav,angry\nb\x00.wav,sad\na.wav,ne\x00utral\n")
    manifest = load_corpus("csv", csv)
    assert len(manifest) == 1
    assert [p.reason for p in manifest.problems] == ["the row holds a NUL byte"] * 2
    assert cli_main(["data", "describe", "--corpus", "csv", "--root", str(csv)]) == 0
    assert "the row holds a NUL byte: 2" in capsys.readouterr().out


def test_any_bytes_in_a_file_name(tmp_path: Path, capsys) -> None:
    """Was: `UnicodeEncodeError` killed the whole scan; predict said "not readable as audio"."""
    root = tmp_path / "corpus"
    _good_folder(root)
    odd = os.fsencode(root / "angry" / "s1") + b"/caf\xe9.wav"
    with open(odd, "wb") as f:
        f.write(wav_bytes(tone(1.0)))
    odd_folder = os.fsencode(root) + b"/\xff\xfe"
    os.mkdir(odd_folder)
    with open(odd_folder + b"/x.wav", "wb") as f:
        f.write(wav_bytes(tone(1.0)))
    manifest = load_corpus("folder", root, classes="all")
    reasons = {p.path: p.reason for p in manifest.problems}
    assert reasons[f"{root}/angry/s1/caf\\xe9.wav"].startswith("file name is not valid UTF-8")
    assert reasons[f"{root}/\\xff\\xfe/x.wav"].startswith("file name is not valid UTF-8")
    assert len(manifest) == 2
    json.dumps([p.path for p in manifest.problems])  # plain text everywhere downstream
    describe(manifest).encode("utf-8")
    assert cli_main(["data", "describe", "--corpus", "folder", "--root", str(root)]) == 0
    assert "caf\\xe9.wav: file name is not valid UTF-8" in capsys.readouterr().out
    clip = load_audio(os.fsdecode(odd))  # as a single clip it is simply decoded
    assert clip.duration == pytest.approx(1.0)
    assert audio_duration(Path(os.fsdecode(odd)))[0] == pytest.approx(1.0)


def test_an_empty_label_folder_is_reported(tmp_path: Path) -> None:
    """Was: its class disappeared without a word."""
    root = tmp_path / "corpus"
    _good_folder(root)
    (root / "sad").mkdir()
    manifest = load_corpus("folder", root)
    assert [(Path(p.path).name, p.reason) for p in manifest.problems] == [
        ("sad", "empty label folder: no files in it")
    ]


def test_a_fake_mp3_is_one_clean_error_with_no_decoder_noise(tmp_path: Path, capfd) -> None:
    """Was: "File does not exist ... (possibly a pipe?)" plus mpg123 notes on stderr."""
    fake = tmp_path / "fake.mp3"
    fake.write_bytes(np.random.default_rng(0).integers(0, 256, 6000, np.uint8).tobytes())
    with pytest.raises(UnreadableAudioError, match="unknown format") as info:
        load_audio(fake)
    assert "pipe" not in str(info.value)
    duration, reason = audio_duration(fake)
    assert duration is None and "unknown format" in reason
    err = capfd.readouterr().err
    assert "MPEG" not in err and "resync" not in err, err


def test_a_nul_byte_in_a_clip_path_is_an_audio_error() -> None:
    with pytest.raises(UnreadableAudioError, match="cannot read the file"):
        load_audio("a\x00b.wav")

"""Tiny synthetic audio for tests: written with numpy + soundfile into a tmp folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from ser_lab.data.corpora.base import Manifest, Utterance

MP3_WRITABLE = "MP3" in sf.available_formats()


def tone(
    seconds: float = 1.0,
    sr: int = 16000,
    freq: float = 440.0,
    amplitude: float = 0.5,
    noise: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """A sine plus a little white noise, float32 mono."""
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = amplitude * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write_audio(
    path: Path,
    data: np.ndarray,
    sr: int = 16000,
    *,
    format: str | None = None,
    subtype: str | None = None,
) -> Path:
    """Write `data` ((n,) or (n, channels)) with soundfile and return the path."""
    sf.write(str(path), data, sr, format=format, subtype=subtype)
    return path


def wav_bytes(data: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> bytes:
    """The bytes of a WAV file holding `data`."""
    import io

    buf = io.BytesIO()
    sf.write(buf, data, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def tiny_manifest(
    root: Path, paths: list[Path], labels: tuple[str, ...] = ("neutral", "angry")
) -> Manifest:
    """A Manifest over the given files, labels alternating."""
    utts = [
        Utterance(
            utt_id=p.stem,
            path=str(p),
            label=labels[i % len(labels)],
            speaker=f"s{i % 2}",
            group=f"s{i % 2}",
            duration=1.0,
            corpus="test",
        )
        for i, p in enumerate(paths)
    ]
    return Manifest(corpus="test", root=str(root), labels=labels, utterances=utts)

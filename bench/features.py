"""Benchmark feature extraction: cold vs cached passes, 1 worker vs all cores, per-clip cost.

    .venv/bin/python bench/features.py [--kind mel|stft] [--emodb PATH] [--synthetic-size SIZE]

For each corpus (EmoDB from ../shared/datasets/emodb, and the built-in synthetic corpus):
- cold, workers=1 and cold, workers=os.cpu_count(): each into a fresh, empty temporary cache
  (the audio files themselves may sit in the OS page cache after the first pass; "cold" means
  the feature cache is empty, so every file is hashed, decoded, resampled and transformed);
- warm: the same extraction again, 5 times, on the cache the all-cores cold pass filled (the
  path index and the corpus pack mean no hashing, no decoding, no STFT: one stat per file and
  one read of the pack). The speed-up is cold (all cores) / median warm pass; the first warm
  pass is reported too (cached_speedup_first_warm).
Also times load_audio + compute_features on one clip.
Prints the results as JSON (the last stdout line) and writes bench/results/features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ser_lab.data.audio import load_audio  # noqa: E402
from ser_lab.data.corpora.base import Manifest, Utterance  # noqa: E402
from ser_lab.data.features import FeatureCache, FeatureConfig, compute_features, extract_corpus  # noqa: E402
from ser_lab.fileio import atomic_write_json  # noqa: E402

EMODB_LETTERS = {"W": "angry", "L": "bored", "E": "disgust", "A": "fear", "F": "happy",
                 "T": "sad", "N": "neutral"}


def emodb_manifest(root: Path) -> tuple[Manifest, str]:
    """Every EmoDB file (all 7 emotions: more files to time), via the adapter when it exists."""
    try:
        from ser_lab.data.corpora import load_corpus

        return load_corpus("emodb", root, classes="all"), "ser_lab.data.corpora.load_corpus('emodb')"
    except (ImportError, AttributeError) as exc:
        note = f"emodb adapter unavailable ({exc}); manifest built from the wav files"
    utts = [
        Utterance(utt_id=p.stem, path=str(p), label=EMODB_LETTERS[p.stem[5]], speaker=p.stem[:2],
                  group=p.stem[:2], duration=2.0, corpus="emodb")
        for p in sorted((root / "wav").glob("*.wav"))
    ]
    labels = tuple(sorted({u.label for u in utts}))
    return Manifest(corpus="emodb", root=str(root), labels=labels, utterances=utts), note


WARM_REPEATS = 5  # the first warm pass can still wait on the pack the cold pass just wrote


def time_corpus(manifest: Manifest, cfg: FeatureConfig) -> dict:
    n = len(manifest)
    cores = os.cpu_count() or 1
    out: dict = {"files": n, "audio_seconds": round(sum(u.duration for u in manifest.utterances), 1)}
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        t0 = time.perf_counter()
        extract_corpus(manifest, cfg, cache=FeatureCache(one), workers=1)
        cold_1 = time.perf_counter() - t0
        cache = FeatureCache(many)
        t0 = time.perf_counter()
        cold = extract_corpus(manifest, cfg, cache=cache, workers=cores)
        cold_n = time.perf_counter() - t0
        warm_runs = []
        for _ in range(WARM_REPEATS):
            t0 = time.perf_counter()
            warm = extract_corpus(manifest, cfg, cache=cache, workers=cores)
            warm_runs.append(time.perf_counter() - t0)
        warm_s = statistics.median(warm_runs)
    same = len(cold.features) == len(warm.features) and all(
        np.array_equal(a, b) for a, b in zip(cold.features, warm.features, strict=True)
    )
    out.update(
        usable=len(cold.features),
        problems=len(cold.manifest.problems) - len(manifest.problems),
        cold_workers_1_s=round(cold_1, 3),
        cold_workers_1_files_per_s=round(n / cold_1, 1),
        workers=cores,
        cold_s=round(cold_n, 3),
        cold_files_per_s=round(n / cold_n, 1),
        warm_s=round(warm_s, 4),
        warm_runs_s=[round(t, 4) for t in warm_runs],
        warm_files_per_s=round(n / warm_s, 1),
        cached_speedup=round(cold_n / warm_s, 1),
        cached_speedup_first_warm=round(cold_n / warm_runs[0], 1),
        parallel_speedup=round(cold_1 / cold_n, 2),
        warm_identical=same,
    )
    return out


def time_clip(path: str) -> dict:
    """Per-clip cost on the inference path: decode + resample, and each feature kind (5 s)."""
    def median_ms(fn, repeats: int = 30) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(statistics.median(times) * 1e3, 2)

    five_s = np.random.default_rng(0).standard_normal(5 * 16000).astype(np.float32) * 0.1
    return {
        "load_audio_ms": median_ms(lambda: load_audio(path)),
        "mel_5s_ms": median_ms(lambda: compute_features(five_s, FeatureConfig(kind="mel"))),
        "stft_5s_ms": median_ms(lambda: compute_features(five_s, FeatureConfig(kind="stft"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["mel", "stft"], default="mel")
    parser.add_argument("--emodb", type=Path, default=ROOT.parent / "shared" / "datasets" / "emodb")
    parser.add_argument("--synthetic-size", default="default")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "features.json")
    args = parser.parse_args()
    cfg = FeatureConfig(kind=args.kind)
    result: dict = {
        "benchmark": "features",
        "feature_config": cfg.to_dict(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_average_1min_at_start": round(os.getloadavg()[0], 2)},
        "corpora": {},
        "notes": [],
    }
    if (args.emodb / "wav").is_dir():
        manifest, how = emodb_manifest(args.emodb)
        result["notes"].append(f"emodb: {how}")
        result["corpora"]["emodb"] = time_corpus(manifest, cfg)
        result["clip"] = time_clip(manifest.utterances[0].path)
    else:
        result["notes"].append(f"emodb skipped: no wav folder under {args.emodb}")
    try:
        from ser_lab.data.corpora import load_corpus

        t0 = time.perf_counter()
        synthetic = load_corpus("synthetic", size=args.synthetic_size)
        result["notes"].append(
            f"synthetic: size {args.synthetic_size!r} at {synthetic.root} "
            f"(loaded/generated in {time.perf_counter() - t0:.1f} s, not part of the timings)"
        )
        result["corpora"]["synthetic"] = time_corpus(synthetic, cfg)
    except ImportError as exc:
        result["notes"].append(f"synthetic skipped: load_corpus unavailable ({exc})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

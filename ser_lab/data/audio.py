"""Audio input: turn a file or uploaded bytes into 16 kHz mono float32 samples, or say why not.

`load_audio` is the one way SER Lab reads audio (corpus extraction, the CLI and the app all use
it). It decodes WAV/FLAC/OGG/MP3 (and AIFF, AU, CAF, W64, RF64) with libsndfile through
`soundfile` (MP3 needs libsndfile >= 1.1, i.e. soundfile >= 0.12, which bundles it), mixes to
mono, resamples to 16 kHz with soxr (HQ) and cuts at `max_seconds` (the paper cuts utterances at
14 s). libsndfile only reads: nothing is ever written next to the input, and nothing is handed to
an external program, so a hostile file cannot make the loader hang on a subprocess.

Every way audio can be unusable raises a specific `ser_lab.errors.AudioError` whose message names
the file (or "uploaded bytes") and what was found. The checks, in order:

1. `TooLargeAudioError`: more than `max_bytes` (file size or len(bytes)); nothing is decoded.
2. `EmptyAudioError`: zero bytes.
3. `UnreadableAudioError`: missing file, not audio, corrupt, truncated or unfinished WAV
   (data chunk size beyond the end of the file, or 0 with audio after it), a container outside
   `SUPPORTED_FORMATS`, or an absurd header (sample rate / channel count). Any decoder exception
   becomes this error; nothing else escapes (a Hypothesis test feeds arbitrary bytes).
4. `TooLongAudioError`: declared duration (from the header, before decoding) > `max_input_seconds`
   (for a header that gives no length, found while decoding the first max_seconds).
5. `EmptyAudioError`: a valid header with no samples.
6. `InvalidSamplesError`: NaN or infinite samples, or samples larger than
   `MAX_SAMPLE_MAGNITUDE` = 1e6 times full scale (+120 dBFS): possible only in float files, and
   always a corrupt or wrongly written file. Such values are refused, not clipped: squared in the
   spectrogram they overflow float32 (3e38 already does), and one such file would turn a whole
   fold's normalisation statistics and every weight into NaN.
7. `TooShortAudioError`: less than `min_seconds` of signal (exact-zero padding at either end
   is dropped first: it is a converter's padding, not sound).
8. `SilentAudioError`: after removing the mean (so pure DC counts as silent), the peak absolute
   value is below `SILENCE_PEAK` = 1e-4 of full scale (-80 dBFS). That is below one 16-bit step
   (3.05e-5 is the step, so a 16-bit file of +-1 LSB dither is silent) and far below any speech.

Integer PCM (unsigned 8-bit, 16, 24, 32) decodes to [-1, 1); float files keep their values
(libsndfile does not rescale them; values beyond +-1 up to MAX_SAMPLE_MAGNITUDE are kept, not
clipped, since the features are log-compressed and normalised afterwards).

File names may hold any bytes: paths are handed to libsndfile as bytes (`os.fsencode`) and
shown in messages with undecodable bytes escaped (`fileio.display_path`). Only regular files
are ever opened: a FIFO, device or socket is refused from `stat` alone, so it cannot hang the
reader. libsndfile's MP3 decoder writes notes ("Illegal Audio-MPEG-Header") straight to the
process's stderr; they are silenced while a file that is MP3 or not recognised is decoded.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np

from ser_lab.errors import (
    ConfigError,
    EmptyAudioError,
    InvalidSamplesError,
    SilentAudioError,
    TooLargeAudioError,
    TooLongAudioError,
    TooShortAudioError,
    UnreadableAudioError,
)
from ser_lab.fileio import display_path, not_regular_reason

SAMPLE_RATE = 16000
MAX_SECONDS = 14.0
MIN_SECONDS = 0.5
# Peak |x - mean(x)| below this (full scale = 1.0) counts as silence: -80 dBFS.
SILENCE_PEAK = 1e-4
# Containers we accept (libsndfile major format names). Others libsndfile could parse (MAT5, SD2,
# XI, ...) are refused: nobody records speech in them and their parsers are a needless risk.
SUPPORTED_FORMATS = frozenset(
    {"WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG", "MP3", "AIFF", "AU", "CAF"}
)
# Sanity limits on what a header may claim; a corrupt header beyond them is "unreadable".
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000
MAX_CHANNELS = 64
# Largest |sample| accepted (full scale = 1.0): +120 dBFS. Beyond it a float file is corrupt or
# wrongly scaled, and its squared values would overflow the float32 spectrogram.
MAX_SAMPLE_MAGNITUDE = 1e6
# A WAV whose data chunk claims more than this many bytes beyond the end of the file is truncated.
_WAV_TRUNCATION_SLACK = 64
# At most this many RIFF chunks are walked looking for the data chunk (the walk seeks from
# header to header, so a large chunk before the data costs nothing).
_WAV_MAX_CHUNKS = 4096
_BLOCK_FRAMES = 65536
_MAGIC_PEEK = 16
# How each supported container starts (MP3: an ID3 tag or an MPEG frame sync, checked apart).
_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"riff", b"fLaC", b"OggS", b"FORM", b".snd",
          b"dns.", b"caff")
_STDERR_LOCK = threading.Lock()

Source = str | Path | bytes


@dataclass
class Clip:
    """Decoded audio, ready for feature extraction."""

    samples: np.ndarray  # (n,) float32 mono at `sample_rate`
    sample_rate: int  # always SAMPLE_RATE
    duration: float  # seconds, after the cut at max_seconds
    truncated: bool  # True when the input was longer than max_seconds and was cut
    original_sample_rate: int
    original_channels: int
    original_duration: float  # seconds, of the whole input (header value when cut)
    format: str = ""  # container as libsndfile names it ("WAV", "FLAC", "MP3", ...)


def load_audio(
    source: Source,
    *,
    max_seconds: float = MAX_SECONDS,
    min_seconds: float = MIN_SECONDS,
    max_bytes: int | None = None,
    max_input_seconds: float | None = None,
) -> Clip:
    """Decode `source` (a path or the bytes of an uploaded file) to a 16 kHz mono `Clip`.

    Raises a subclass of `AudioError` for unusable audio (see the module docstring) and
    `ConfigError` for inconsistent limits.
    """
    _check_limits(max_seconds, min_seconds, max_bytes, max_input_seconds)
    name, size = _describe(source)
    if max_bytes is not None and size > max_bytes:
        raise TooLargeAudioError(
            f"{name}: {size} bytes is more than the limit of {max_bytes} bytes"
        )
    if size == 0:
        raise EmptyAudioError(f"{name}: the file is empty (0 bytes)")
    _check_wav_not_truncated(source, name, size)

    mono, info = _decode(source, name, max_seconds, max_input_seconds)
    sr = info["sample_rate"]
    if mono.size == 0:
        raise EmptyAudioError(f"{name}: the audio holds no samples")
    check_samples(mono, name)
    mono = _trim_digital_silence(mono)
    seconds = mono.size / sr
    if seconds < min_seconds:
        raise TooShortAudioError(
            f"{name}: {format_seconds(seconds, min_seconds)} s of audio is shorter than the "
            f"minimum of {min_seconds} s"
        )
    _check_not_silent(mono, name)

    samples = _resample(mono, sr)
    max_samples = round(max_seconds * SAMPLE_RATE)
    samples = np.ascontiguousarray(samples[:max_samples], dtype=np.float32)
    return Clip(
        samples=samples,
        sample_rate=SAMPLE_RATE,
        duration=samples.size / SAMPLE_RATE,
        truncated=info["truncated"],
        original_sample_rate=sr,
        original_channels=info["channels"],
        original_duration=info["original_duration"],
        format=info["format"],
    )


def check_samples(samples: np.ndarray, name: str) -> None:
    """InvalidSamplesError unless every sample is finite and at most MAX_SAMPLE_MAGNITUDE.

    Called on every decoded signal; the inference path calls it again on what it feeds the
    network, so no NaN can reach a prediction from the audio side.
    """
    finite = np.isfinite(samples)
    if not finite.all():
        bad = int(np.count_nonzero(~finite))
        raise InvalidSamplesError(f"{name}: {bad} sample(s) are NaN or infinite")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > MAX_SAMPLE_MAGNITUDE:
        bad = int(np.count_nonzero(np.abs(samples) > MAX_SAMPLE_MAGNITUDE))
        raise InvalidSamplesError(
            f"{name}: {bad} sample(s) exceed {MAX_SAMPLE_MAGNITUDE:g} times full scale "
            f"(largest {peak:.3g}; full scale is 1.0): a corrupt or wrongly scaled float file"
        )


def format_seconds(seconds: float, limit: float, digits: int = 3) -> str:
    """`seconds` with enough decimals that it does not print equal to `limit` (0.4999 s is
    shown as 0.4999, not 0.500, next to a minimum of 0.5 s)."""
    for d in range(digits, 10):
        text = f"{seconds:.{d}f}"
        if seconds == limit or float(text) != limit:
            return text
    return repr(seconds)


def audio_fingerprint(source: Source) -> str:
    """SHA-256 (hex) of the file's bytes: the content key of the feature cache."""
    h = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        h.update(source)
        return h.hexdigest()
    name, _ = _describe(source)
    try:
        with _open_regular(source) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise UnreadableAudioError(f"{name}: cannot read the file ({exc.strerror or exc})") from exc
    return h.hexdigest()


# --------------------------------------------------------------------------- helpers


def _check_limits(
    max_seconds: float, min_seconds: float, max_bytes: int | None, max_input_seconds: float | None
) -> None:
    if not (max_seconds > 0 and math.isfinite(max_seconds)):
        raise ConfigError(f"max_seconds must be a finite number > 0, got {max_seconds}")
    if not 0 <= min_seconds <= max_seconds:
        raise ConfigError(
            f"min_seconds must be in [0, max_seconds={max_seconds}], got {min_seconds}"
        )
    if max_bytes is not None and max_bytes < 0:
        raise ConfigError(f"max_bytes must be >= 0, got {max_bytes}")
    if max_input_seconds is not None and not max_input_seconds > 0:
        raise ConfigError(f"max_input_seconds must be > 0, got {max_input_seconds}")


def _describe(source: Source) -> tuple[str, int]:
    """A name for messages and the size in bytes; a missing path is unreadable."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "uploaded bytes", len(source)
    if not isinstance(source, (str, Path)):
        raise TypeError(f"audio source must be a path or bytes, got {type(source).__name__}")
    name = f"'{display_path(source)}'"
    try:
        st = os.stat(os.fsencode(source))
    except FileNotFoundError as exc:
        raise UnreadableAudioError(f"{name}: no such file") from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UnreadableAudioError(f"{name}: cannot read the file ({reason})") from exc
    kind = not_regular_reason(st)
    if kind:
        raise UnreadableAudioError(f"{name}: not a regular file ({kind})")
    return name, st.st_size


@contextlib.contextmanager
def _open_regular(source: str | Path) -> Iterator:
    """Open a path for reading without ever blocking on a FIFO (O_NONBLOCK), and refuse it
    unless the opened file is a regular one (fstat, so a swap after `_describe` is caught)."""
    fd = os.open(os.fsencode(source), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        kind = not_regular_reason(os.fstat(fd))
        if kind:
            raise OSError(0, f"not a regular file ({kind})")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _check_wav_not_truncated(source: Source, name: str, size: int) -> None:
    """Refuse a RIFF/WAVE file whose data chunk claims more bytes than the file holds.

    libsndfile quietly shortens such files to what is there; a cut-off upload or copy should be
    reported instead. The walk seeks from chunk header to chunk header over the whole file, so
    a large chunk (LIST, JUNK, bext) before the data chunk does not hide it. A size of
    0xFFFFFFFF (a streaming writer that never fixed the header) is accepted: libsndfile reads to
    the end of the file. A size of 0 followed by audio bytes (the same, from writers that leave
    0) is refused with its own message, since libsndfile would read no samples and the file
    would look empty.
    """
    try:
        with _reader(source) as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return
            pos = 12
            for _ in range(_WAV_MAX_CHUNKS):
                f.seek(pos)
                header = f.read(8)
                if len(header) < 8:
                    return  # no data chunk: libsndfile gives its own verdict
                chunk_id = header[:4]
                (chunk_size,) = struct.unpack("<I", header[4:8])
                if chunk_id == b"data":
                    _check_data_chunk(name, chunk_size, size - (pos + 8))
                    return
                pos += 8 + chunk_size + (chunk_size & 1)
    except OSError as exc:
        raise UnreadableAudioError(f"{name}: cannot read the file ({exc.strerror or exc})") from exc


def _check_data_chunk(name: str, chunk_size: int, available: int) -> None:
    if chunk_size == 0 and available > _WAV_TRUNCATION_SLACK:
        raise UnreadableAudioError(
            f"{name}: unfinished WAV: the header declares 0 bytes of audio but "
            f"{available} bytes follow (a recording that was never finalised?)"
        )
    if chunk_size not in (0, 0xFFFFFFFF) and chunk_size - available > _WAV_TRUNCATION_SLACK:
        raise UnreadableAudioError(
            f"{name}: truncated WAV: the header declares {chunk_size} bytes of audio but "
            f"the file holds only {max(available, 0)}"
        )


def _reader(source: Source):
    """A seekable binary reader over a path (regular files only) or bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return BytesIO(bytes(source))
    return _open_regular(source)


def _head(source: Source, n: int = _MAGIC_PEEK) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:n])
    try:
        with _open_regular(source) as f:
            return f.read(n)
    except OSError:
        return b""


def _known_magic(head: bytes) -> str | None:
    """"mp3" for an ID3 tag or an MPEG frame sync, "other" for another supported container's
    magic, None for content none of the supported containers starts with."""
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return "other" if head[:4] in _MAGIC else None


def looks_like_audio(source: Source) -> bool:
    """Whether the content starts like one of the supported containers (magic bytes only)."""
    return _known_magic(_head(source)) is not None


def quiet_decoder(source: Source):
    """A context in which libsndfile may open `source` without its MP3 decoder's notes reaching
    stderr (a no-op for content that starts like another supported container)."""
    return _quiet_native_stderr(_known_magic(_head(source)) != "other")


@contextlib.contextmanager
def _quiet_native_stderr(active: bool) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while libsndfile's MP3 decoder runs: it prints
    "Note: Illegal Audio-MPEG-Header ..." there, from C, for every bad frame. Serialised by a
    lock; Python code writing to stderr from another thread in that moment is silenced too."""
    if not active:
        yield
        return
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _decode(
    source: Source, name: str, max_seconds: float, max_input_seconds: float | None
) -> tuple[np.ndarray, dict]:
    """Read at most `max_seconds` of audio, mixed to mono, at the file's own rate.

    Reads block by block and mixes each block at once, so memory stays at one mono buffer
    however many channels or however long the file claims to be.
    """
    import soundfile as sf

    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    handle = BytesIO(bytes(source)) if is_bytes else os.fsencode(source)
    magic = _known_magic(_head(source))
    try:
        with _quiet_native_stderr(magic != "other"), sf.SoundFile(handle) as f:
            fmt, sr, channels = f.format, int(f.samplerate), int(f.channels)
            frames = _declared_frames(f)
            _check_header(name, fmt, sr, channels)
            declared = frames / sr if frames > 0 else None
            too_long = max_input_seconds is not None and (declared or 0.0) > max_input_seconds
            if too_long:
                raise TooLongAudioError(
                    f"{name}: {declared:.1f} s is longer than the limit of {max_input_seconds} s"
                )
            limit = math.ceil(max_seconds * sr)
            mono = np.empty(min(frames, limit) if frames > 0 else 0, dtype=np.float32)
            n = 0
            while n < limit:
                block = f.read(min(_BLOCK_FRAMES, limit - n), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                mixed = block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0]
                if n + mixed.size > mono.size:
                    mono = np.resize(mono, max(n + mixed.size, 2 * mono.size))
                mono[n : n + mixed.size] = mixed
                n += mixed.size
                if max_input_seconds is not None and n / sr > max_input_seconds:
                    # Header without a (reliable) length: caught while decoding instead.
                    raise TooLongAudioError(
                        f"{name}: longer than the limit of {max_input_seconds} s"
                    )
            truncated = n >= limit and f.read(1, dtype="float32").shape[0] > 0
    except (TooLongAudioError, UnreadableAudioError):
        raise
    except Exception as exc:  # any decoder failure: corrupt, not audio, unsupported codec
        if magic is None:  # libsndfile's own words here ("possibly a pipe?") would mislead
            reason = (
                "unknown format: not a WAV, FLAC, OGG, MP3, AIFF, AU or CAF file; "
                f"it starts with {_head(source, 8)!r}"
            )
        else:
            reason = _short(exc)
        raise UnreadableAudioError(f"{name}: not readable as audio ({reason})") from exc
    mono = mono[:n]
    # When cut, the header says how long the whole input is (a lower bound if it does not).
    original = max(declared or 0.0, n / sr) if truncated else n / sr
    info = {
        "format": fmt,
        "sample_rate": sr,
        "channels": channels,
        "truncated": bool(truncated),
        "original_duration": original,
    }
    return mono, info


def _declared_frames(f: object) -> int:
    """Frames the header declares (libsndfile's estimate for MP3; 0 when it does not say)."""
    return max(int(getattr(f, "frames", 0)), 0)


def _check_header(name: str, fmt: str, sr: int, channels: int) -> None:
    if fmt not in SUPPORTED_FORMATS:
        raise UnreadableAudioError(
            f"{name}: unsupported container {fmt!r} "
            f"(supported: {', '.join(sorted(SUPPORTED_FORMATS))})"
        )
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise UnreadableAudioError(
            f"{name}: sample rate {sr} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnreadableAudioError(f"{name}: {channels} channels (at most {MAX_CHANNELS} allowed)")


def _trim_digital_silence(mono: np.ndarray) -> np.ndarray:
    """Drop runs of exact zeros at both ends (padding added by a converter, not recorded sound).

    Some corpus copies pad short utterances with digital zeros (EmoDB's 2.0 s copy does); their
    log spectrum is the log floor, far below any recorded frame, and would distort the
    per-bin normalisation. An all-zero signal is left alone for the silence check to report.
    """
    nonzero = np.flatnonzero(mono)
    if nonzero.size == 0:
        return mono
    return mono[nonzero[0] : nonzero[-1] + 1]


def _check_not_silent(mono: np.ndarray, name: str) -> None:
    centred_peak = float(np.max(np.abs(mono - mono.mean(dtype=np.float64))))
    if centred_peak < SILENCE_PEAK:
        raise SilentAudioError(
            f"{name}: the signal is silent or constant (peak {centred_peak:.2e} around its mean, "
            f"threshold {SILENCE_PEAK:g} of full scale)"
        )


def _resample(mono: np.ndarray, sr: int) -> np.ndarray:
    """Resample to SAMPLE_RATE with soxr (high quality, a few ms for 14 s of audio)."""
    if sr == SAMPLE_RATE:
        return mono
    import soxr

    return soxr.resample(mono, sr, SAMPLE_RATE, quality="HQ")


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    # libsndfile messages start with "Error opening <object ...>: "; keep the reason only.
    if ": " in text and text.startswith("Error opening"):
        text = text.split(": ", 1)[1]
    return text[:200]

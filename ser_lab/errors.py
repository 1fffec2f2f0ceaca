"""The project's own exception types.

Every error a user can cause (bad audio, bad corpus path, bad config, unknown run) is one of
these, so the CLI and the app can show its message instead of a traceback.
"""


class SerLabError(Exception):
    """Base class of every error SER Lab raises on purpose."""


class ConfigError(SerLabError, ValueError):
    """An invalid setting (e.g. a negative lambda, an unknown protocol)."""


class AudioError(SerLabError):
    """Audio that cannot be used. Subclasses say why."""


class UnreadableAudioError(AudioError):
    """Not audio, or a corrupt / truncated / unsupported file."""


class EmptyAudioError(AudioError):
    """A file or byte string with no samples at all."""


class TooShortAudioError(AudioError):
    """Less than the minimum duration of signal."""


class TooLongAudioError(AudioError):
    """Longer than an upload limit allows (clips longer than 14 s are cut, not refused)."""


class TooLargeAudioError(AudioError):
    """More bytes than an upload limit allows (checked before decoding)."""


class SilentAudioError(AudioError):
    """All-silent (or constant) signal."""


class InvalidSamplesError(AudioError):
    """NaN or infinite sample values, or magnitudes no audio file can mean (> 1e6 x full scale)."""


class CorpusError(SerLabError):
    """A corpus that cannot be loaded: unknown name, missing folder, no usable audio."""


class RunError(SerLabError):
    """A run that does not exist, is broken, locked or from an incompatible version."""


class NonFiniteError(SerLabError):
    """A NaN or infinite value where a number must be finite: a training step's loss or the
    weights after it (the run diverged), a normalisation statistic, a model's output."""


class AccessDeniedError(SerLabError):
    """An action this app instance does not allow (shared mode: training, stopping, resuming,
    or a corpus root outside the allow-list)."""


class Interrupted(Exception):  # noqa: N818 - the name the CLI and tests use
    """Raised inside the training loop when a stop was requested (SIGTERM, SIGINT or the callback)."""

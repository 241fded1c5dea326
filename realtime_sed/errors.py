"""Errors a user can cause. `cli.py` turns each into a one-line message and a non-zero exit."""


class SedError(Exception):
    """Base class: the message is meant for the user, as it is."""


class AudioError(SedError):
    """A file that is missing, unreadable, empty or not audio."""


class ModelError(SedError):
    """A model file that is missing, not ONNX, or not a realtime-sed model."""


class FrontEndError(ModelError):
    """A model trained on another log-mel front end (sample rate, FFT, hop, mel bands or scale...)
    than the one the runtime computes."""


class DeviceError(SedError):
    """No PortAudio, or no such input device."""


class DataError(SedError):
    """A dataset folder that is missing pieces of the UrbanSound8K layout."""


class OutputError(SedError):
    """An output that cannot be written: a missing folder, a full disk, one of the inputs."""

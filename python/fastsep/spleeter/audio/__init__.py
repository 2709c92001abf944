"""``spleeter.audio``'s enumerations: the output codecs, and the STFT backends Spleeter 2.0-2.3 let one choose."""

from enum import Enum


class _StrEnum(str, Enum):
    """str members that format as their value ("wav"), as Spleeter's StrEnum does in a filename format."""

    __str__ = str.__str__
    __format__ = str.__format__


class Codec(_StrEnum):
    """Output codecs Spleeter names (fastsep writes these and opus)."""

    WAV = "wav"
    MP3 = "mp3"
    OGG = "ogg"
    M4A = "m4a"
    WMA = "wma"
    FLAC = "flac"


class STFTBackend(_StrEnum):
    """Spleeter 2.0-2.3's STFT choice. Accepted for old code; fastsep has one STFT (docs/spec.md §2), which
    computes what Spleeter's TensorFlow one does, whatever is chosen."""

    AUTO = "auto"
    TENSORFLOW = "tensorflow"
    LIBROSA = "librosa"


def codec_name(codec) -> str:
    """A Codec member or a codec string -> the plain lower-case name fastsep.audio knows."""
    return str(codec.value if isinstance(codec, Enum) else codec).lower()

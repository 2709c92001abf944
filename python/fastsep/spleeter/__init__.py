"""Spleeter 2.4's Python API, run by fastsep: change ``spleeter`` to ``fastsep.spleeter`` in the imports and keep
the code (README, "From Spleeter").

The names and signatures are Spleeter's (``fastsep.spleeter.separator.Separator``,
``fastsep.spleeter.audio.adapter.AudioAdapter``, ``fastsep.spleeter.audio.Codec``, ``fastsep.spleeter.SpleeterError``);
the work is fastsep's own: models through the resolver, separation by fastsep.Separator, files by the file engine.
"""

from ._errors import SpleeterError
from .audio.adapter import AudioAdapter
from .separator import Separator

__all__ = ["AudioAdapter", "Separator", "SpleeterError"]

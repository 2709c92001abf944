"""What the pipeline does beyond Spleeter-exact output (docs/spec.md §12), without NumPy: the CLI parses it."""

from __future__ import annotations

import dataclasses

from .errors import OptionError

MAX_OVERLAP = 0.9  # 10 network calls per segment of audio
RECOMMENDED_OVERLAP = 0.25  # benchmarks/RESULTS.md "Segment overlap and full-band stems"
FADES = ("cosine", "linear")
BLENDS = ("estimates", "masks")
EXTENSIONS = ("average", "top_octave", "last_bins")


@dataclasses.dataclass(frozen=True)
class Quality:
    """What the host pipeline does beyond Spleeter: overlap in [0, MAX_OVERLAP], full-band masks.

    fade, blend and extension are the measured choices (benchmarks/quality.py); the defaults are the best ones.
    """

    overlap: float = 0.0
    full_band: bool = False
    fade: str = "cosine"
    blend: str = "estimates"
    extension: str = "average"

    def __post_init__(self):
        overlap = self.overlap  # the one check of overlap, for the API and the CLI's --overlap alike
        number = not isinstance(overlap, bool) and isinstance(overlap, (int, float))
        if not number or not 0 <= overlap <= MAX_OVERLAP:  # also refuses nan
            shown = f"{overlap:g}" if number else repr(overlap)
            raise OptionError(f"overlap must be a number from 0 to {MAX_OVERLAP:g} (got {shown})")
        if self.fade not in FADES or self.blend not in BLENDS or self.extension not in EXTENSIONS:
            raise OptionError(f"unknown quality option: fade {self.fade!r}, blend {self.blend!r}, "
                             f"extension {self.extension!r}")

    @property
    def native(self) -> bool:
        """The C++ pipeline runs it: the measured best fade, blend and extension (the others are the NumPy
        pipeline's, for benchmarks/quality.py)."""
        return (self.fade, self.blend, self.extension) == ("cosine", "estimates", "average")

    @property
    def spleeter_exact(self) -> bool:
        return self.overlap == 0 and not self.full_band


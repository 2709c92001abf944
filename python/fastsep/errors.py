"""One exception family: the CLI prints str(error) on one line and exits non-zero."""


class FastsepError(Exception):
    """Base of every error fastsep raises on purpose."""


class ModelError(FastsepError):
    """A model, checkpoint or config that is missing, malformed or does not fit."""


class InputError(FastsepError):
    """Audio input that cannot be separated (empty, NaN/Inf, wrong shape)."""


class UsageError(FastsepError):
    """Bad options or setup found before any work starts (the CLI exits 2)."""


class OptionError(UsageError, InputError):
    """A run option that cannot be used (model and backend, precision, overlap, mwf), refused where the run is
    planned (fastsep.run_plan). It is a UsageError for the CLI and, as the API refused overlap before, an
    InputError."""


class MissingDependencyError(FastsepError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(f"{purpose} needs the '{package}' package: pip install 'fastsep[{extra}]'")

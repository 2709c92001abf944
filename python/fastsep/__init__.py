"""fastsep: Spleeter-exact music source separation, fast."""

from .errors import FastsepError, InputError, MissingDependencyError, ModelError

__version__ = "0.1.0"


def __getattr__(name):
    # Separator pulls in onnxruntime; keep `import fastsep` (and the CLI's --version) light.
    if name == "Separator":
        from .separator import Separator

        return Separator
    raise AttributeError(name)


__all__ = ["Separator", "FastsepError", "InputError", "ModelError", "MissingDependencyError", "__version__"]

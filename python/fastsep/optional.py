"""Optional dependencies (the extras in pyproject.toml): imported where first used, and a missing one is one line
that names the extra to install (MissingDependencyError)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

from .errors import FastsepError, MissingDependencyError


def require(module: str, *, extra: str, what: str, package: Optional[str] = None,
            broken: Optional[str] = None) -> ModuleType:
    """Import `module` for `what` ("the OpenVINO backend"); where it cannot be imported, MissingDependencyError:
    "<what> needs the '<package>' package: pip install 'fastsep[<extra>]'" (package: default the module's name).
    broken: the package's name in "<broken> is installed but cannot be loaded: ..." for a module that is found
    but fails to load (else that counts as missing)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise MissingDependencyError(package or module, extra, what) from None
    except ImportError as e:
        if broken is None:
            raise MissingDependencyError(package or module, extra, what) from None
        raise FastsepError(f"{broken} is installed but cannot be loaded: {e}") from None


def try_import(module: str) -> Optional[ModuleType]:
    """`module`, or None where it cannot be imported (for a choice between alternatives)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None

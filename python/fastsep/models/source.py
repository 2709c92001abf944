"""One resolver from whatever names a model to a validated ModelSource (docs/architecture.md, "Models").

A user names a model as a stock name (`2stems`, `spleeter:4stems-16kHz`), a Spleeter checkpoint folder, a
Spleeter JSON config (whose `model_dir` names the checkpoint), a fastsep model file (.safetensors), an ONNX export
or an engine file. `resolve` decides which once, and reads and validates the config without loading any weights,
so that callers (Separator, the CLI's output plan, the engine builder) ask the source, never the string.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import ModelError
from . import config as configs
from .config import ModelConfig

#: What a ModelSource can be; the first three carry weights, the last two a compiled network.
KINDS = ("stock", "checkpoint", "safetensors", "onnx", "engine")


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A model named by the user, resolved: what it is, where it is, and its validated config."""

    kind: str
    spec: str  # as the user gave it
    config: ModelConfig
    path: Optional[Path] = None  # file or folder; None for a stock model (found or downloaded by weights())
    precision: Optional[str] = None  # onnx and engine: the precision they were exported / built with
    config_spec: Optional[str] = None  # the config the user gave, if any
    flavour: Optional[str] = None  # engine: the TensorRT flavour it was built with
    # Where a stock model's download reports (the CLI's progress line); set by run_plan.resolve_plan.
    download_progress: Optional[Callable[[int, int], None]] = dataclasses.field(default=None, compare=False,
                                                                                 repr=False)
    download_log: Optional[Callable[[str], None]] = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def has_weights(self) -> bool:
        return self.kind in ("stock", "checkpoint", "safetensors")

    @property
    def stock_name(self) -> Optional[str]:
        return configs.stock_name(self.spec) if self.kind == "stock" else None

    def checkpoint_folder(self) -> Path:
        """The checkpoint folder of a stock or checkpoint model: the one place a stock model is downloaded (on
        first use, reported to download_progress / download_log)."""
        if self.kind == "checkpoint":
            return self.path
        if self.kind == "stock":
            from .download import ensure_model

            return Path(ensure_model(self.spec, progress=self.download_progress, log=self.download_log))
        raise ModelError(f"{self.spec} is a {self.kind} model, not a checkpoint")

    def weights(self) -> dict[str, np.ndarray]:
        """float32 variables by TensorFlow name, checked against the config (a stock model is downloaded on first
        use)."""
        from .tf_checkpoint import read_checkpoint
        from .weights import check_variables, load_model_file

        if self.kind == "safetensors":
            stored, variables = load_model_file(self.path)
            return variables if stored == self.config else check_variables(variables, self.config, str(self.path))
        if self.kind == "checkpoint":
            return check_variables(read_checkpoint(self.path), self.config, f"checkpoint {self.path}")
        if self.kind == "stock":
            folder = self.checkpoint_folder()
            try:
                variables = read_checkpoint(folder)
            except ModelError as e:  # a damaged cached copy: say where it is and how to fetch it again
                from .download import model_folder_name

                raise ModelError(f"{e}: the stock model in {folder} is damaged; fetch it again with "
                                 f"'fastsep download {model_folder_name(self.spec)} --force'") from None
            return check_variables(variables, self.config, f"checkpoint {folder}")
        raise ModelError(f"{self.path}: an exported network holds no checkpoint; give a stock name, a checkpoint "
                         "folder or a .safetensors model file")

    def onnx_network(self, precision: Optional[str] = None) -> tuple[bytes | str, Optional[dict]]:
        """The ONNX network of every stem: (a file path or serialized graph, its in-memory weights or None).
        precision None: an ONNX export as it was exported, a graph built from weights in fp32."""
        from .onnx_export import build_model_in_memory

        if self.kind == "onnx":
            if precision is not None and self.precision != precision:
                raise ModelError(f"{self.path} is an {self.precision} export; export it again with precision "
                                 f"{precision} or give the model itself")
            return str(self.path), None
        return build_model_in_memory(self.config, self.weights(), precision or "fp32")

    def identity(self) -> list:
        """What a network built from this source depends on, cheaply and without downloading: files (path, size,
        mtime, inode) and config. A stock model fastsep downloaded is its name (its archive was checked against a
        sha256); one found under $MODEL_PATH (Spleeter's layout) is its files, and one not yet here is not fetched."""
        ident = [f"{self.kind}:{self.stock_name or self.spec}"]
        path = self.path
        if self.kind == "stock":
            from .download import find_model, model_home

            found = find_model(self.spec)
            path = found if found is not None and found.parent != model_home() else None
        files = [] if path is None else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            st = f.stat()
            ident.append((str(f.resolve()), st.st_size, st.st_mtime_ns, st.st_ino))  # a rewrite is a new inode
        ident.append(self.config.to_json())
        return ident


def kind_of(model: str | os.PathLike | ModelSource) -> str:
    """What `model` names, from its name alone (resolve() then checks it): one of KINDS. A Spleeter JSON config
    counts as a checkpoint; anything unknown too (resolve() says what is wrong with it)."""
    if isinstance(model, ModelSource):
        return model.kind
    suffix = Path(str(model)).suffix.lower()
    if suffix in (".engine", ".onnx", ".safetensors"):
        return suffix[1:]
    if configs.stock_name(str(model)) is not None and not Path(str(model)).is_dir():
        return "stock"
    return "checkpoint"


def resolve(model: str | os.PathLike | ModelSource, config: Optional[str] = None) -> ModelSource:
    """The ModelSource for `model`; `config` (a stock config name or a Spleeter JSON file) completes or replaces
    what the model says. Raises ModelError, one line, for anything that is not a usable model."""
    if isinstance(model, ModelSource):
        if config is not None and config != model.config_spec:
            return resolve(model.spec, config)
        return model
    spec = str(model)
    path = Path(spec)
    kind = kind_of(spec)
    try:
        exists = path.exists()
    except (OSError, ValueError) as e:  # a name too long, a NUL byte
        raise ModelError(f"model {spec[:100]!r} is not a usable path: {getattr(e, 'strerror', None) or e}") from None
    if kind != "stock" and not exists:
        raise ModelError(f"unknown model {spec!r}: it does not exist as a file or folder, nor is it a stock model "
                         f"({', '.join(configs.STOCK_NAMES)}) nor an existing checkpoint folder, Spleeter JSON config "
                         "or model file")
    if kind == "engine":
        return _engine(spec, path, config)
    if kind == "onnx":
        from .onnx_export import load_onnx

        _, cfg, precision = load_onnx(path, config, load_weights=False)
        return ModelSource("onnx", spec, cfg, path, precision, config)
    if kind == "safetensors":
        from .weights import read_model_config

        cfg = read_model_config(path) if config is None else configs.load(config)
        return ModelSource("safetensors", spec, cfg, path, config_spec=config)
    if path.suffix.lower() == ".json" and not path.is_dir() and config is None:  # read_regular refuses a FIFO
        return _spleeter_json(spec, path)
    if path.is_dir():
        return ModelSource("checkpoint", spec, _folder_config(path, config), path, config_spec=config)
    name = configs.stock_name(spec)
    if name is not None:
        cfg = configs.load(config) if config is not None else configs.stock(name)
        return ModelSource("stock", spec, cfg, config_spec=config)
    raise ModelError(f"{path} is not a model: expected a Spleeter checkpoint folder, a Spleeter JSON config, or "
                     "a .safetensors, .onnx or .engine file")


def _engine(spec: str, path: Path, config: Optional[str]) -> ModelSource:
    from .engine_file import read_engine_header

    if config is not None:
        raise ModelError("an engine file holds its config: do not pass one")
    header, _ = read_engine_header(path)
    return ModelSource("engine", spec, header["config"], path, header["precision"], flavour=header["flavour"])


def _folder_config(folder: Path, config: Optional[str]) -> ModelConfig:
    if config is not None:
        return configs.load(config)
    name = folder.resolve().name
    if name in configs.STOCK_NAMES:
        return configs.stock(name)
    raise ModelError(f"cannot tell which config checkpoint folder {folder} uses: pass a config "
                     f"({', '.join(configs.STOCK_NAMES)} or a Spleeter JSON file)")


def _spleeter_json(spec: str, path: Path) -> ModelSource:
    """Spleeter's `-p config.json`: the JSON is the config and its `model_dir` the checkpoint, looked up as a path
    (as given, then beside the JSON), then under $MODEL_PATH (default ./pretrained_models), then as a stock name."""
    from .files import read_regular

    text = read_regular(path, "Spleeter config", configs.MAX_CONFIG_BYTES)  # regular files only, size checked
    try:
        params = json.loads(text.decode("utf-8"))
        model_dir = str(params["model_dir"])
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise ModelError(f"cannot read model_dir from Spleeter config {path}: {type(e).__name__}: {e}") from None
    cfg = configs.load(spec)
    spleeter_home = os.environ.get("MODEL_PATH") or "pretrained_models"
    for cand in (Path(model_dir), path.absolute().parent / model_dir, Path(spleeter_home) / model_dir):
        if cand.is_dir():
            return ModelSource("checkpoint", str(cand), cfg, cand, config_spec=spec)
    if configs.stock_name(model_dir) is not None:
        return ModelSource("stock", model_dir, cfg, config_spec=spec)
    raise ModelError(f"model_dir {model_dir!r} of {path} not found (as a path, beside the config or under "
                     f"{spleeter_home})")

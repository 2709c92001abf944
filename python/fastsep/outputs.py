"""Where outputs go: the `-f` filename format, output folders, and the plan of every stem's path.

Every output must land strictly inside the output folder (links followed), have its codec's extension, and never
be one of the inputs; a plan is checked whole before any work starts. Shared by `fastsep separate`, `evaluate`
and the Spleeter-compatible API.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import string
import tempfile

from .errors import UsageError

FORMAT_FIELDS = ("filename", "foldername", "instrument", "codec")
DEFAULT_FORMAT = "{filename}/{instrument}.{codec}"
MAX_SECONDS = 1e9  # -s/-d beyond any real file: keeps sample counts exact integers
#: Longest file or folder name most file systems take (NAME_MAX), and longest path (PATH_MAX), in bytes.
NAME_MAX, PATH_MAX = 255, 4096
#: What the hidden temporary file of a stem adds to its name: ".<name>.<pid>-<8 random>.part", pids up to 2**22
#: (fastsep.atomic.temp_prefix); it lies beside the final name, so the final name must leave room for it.
TEMP_NAME_EXTRA = len("." + "." + "4194304" + "-" + "x" * 8 + ".part")


def check_duration(duration: float | None) -> None:
    if duration is not None and not 0 < duration <= MAX_SECONDS:  # also refuses nan and inf
        raise UsageError(f"-d/--duration must be > 0 and at most {MAX_SECONDS:g} s (got {duration:g})")


def _quote(text, limit: int = 100) -> str:
    """repr() of a user- or model-supplied string, cut short: error lines stay one short line."""
    r = repr(str(text))
    return r if len(r) <= limit else r[:limit] + "...'"


def check_format(fmt: str) -> None:
    """``-f`` names a file and uses only the plain FORMAT_FIELDS (else UsageError)."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as e:
        raise UsageError(f"bad -f/--filename_format {_quote(fmt)}: {e}") from None
    plain = ", ".join("{" + x + "}" for x in FORMAT_FIELDS)
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        written = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        base = field.split(".")[0].split("[")[0]
        if base in FORMAT_FIELDS and (field != base or spec or conversion):
            # str.format would honour them: a width spec alone can ask for gigabytes
            raise UsageError(f"bad -f/--filename_format: {_quote(written)} is not allowed; only the plain fields "
                             f"{plain} (no format specs, conversions, attributes or indexes)")
        if field not in FORMAT_FIELDS:
            what = "a positional {}" if field == "" or field.isdigit() else written
            raise UsageError(f"bad -f/--filename_format {_quote(fmt)}: {what} is not a field (use {plain})")
    if not fmt.strip() or fmt.endswith(("/", os.sep)):
        raise UsageError(f"bad -f/--filename_format {_quote(fmt)}: it must name a file")


def precheck_output(folder: pathlib.Path) -> None:
    """Fail early (before loading a model) for an output folder that cannot be created or written; creates nothing."""
    p = folder.absolute()
    for name in p.parts:
        if len(os.fsencode(name)) > NAME_MAX:
            raise UsageError(f"output folder {_quote(folder)}: the name {_quote(name, 60)} is {len(os.fsencode(name))} "
                             f"bytes, over the {NAME_MAX} a file system allows")
    if len(os.fsencode(str(p))) >= PATH_MAX:
        raise UsageError(f"output folder {_quote(folder)}: its path is over the {PATH_MAX} bytes a file system allows")
    while not p.exists():
        if p.is_symlink():
            raise UsageError(f"output folder {folder}: {p} is a broken link")
        p = p.parent
    if not p.is_dir():
        raise UsageError(f"output folder {folder} cannot be created: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {folder} is not writable ({p}: permission denied)")


def check_writable(folder: pathlib.Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"output folder {folder} exists and is not a folder") from None
    except OSError as e:
        raise UsageError(f"cannot create output folder {folder}: {e.strerror or e}") from None
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} exists and is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".fastsep-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"output folder {folder} is not writable: {e.strerror or e}") from None


#: Extensions besides audio.CODECS' own that name a codec's container just as well (-f may spell them out).
EXTENSION_ALIASES = {"ogg": ("oga",), "opus": ("ogg",), "m4a": ("mp4",)}


def codec_extensions(codec: str) -> tuple:
    from .audio import CODECS

    return (CODECS[codec][2],) + EXTENSION_ALIASES.get(codec, ())


def resolved_folder(folder: pathlib.Path) -> str:
    """The real path of an output folder (links followed, whether or not it exists yet)."""
    return os.path.realpath(folder)


def check_inside(target: pathlib.Path, root: str, out_dir: pathlib.Path, owner: str) -> None:
    """Refuse (UsageError) a planned output whose real path is not strictly inside ``root`` (the real ``out_dir``).

    Links in existing parents (and the target itself) are followed: the check is on where the write would land."""
    try:
        real = os.path.realpath(target)
    except ValueError as e:  # an embedded NUL byte
        raise UsageError(f"output {_quote(target)} of {owner} is not a valid path ({e})") from None
    if real == root or os.path.commonpath([real, root]) != root:
        via = f" (through a link: {_quote(real)})" if real != os.path.abspath(target) else ""
        raise UsageError(f"output {_quote(target)} of {owner} is outside the output folder {out_dir}{via}")


def check_name_lengths(target: pathlib.Path, out_dir: pathlib.Path, owner: str) -> None:
    """Refuse (UsageError) an output whose path has a name over NAME_MAX bytes (its temporary file's included) or is
    over PATH_MAX: found with the rest of the plan, never as an OSError once the work has started."""
    try:
        relative = target.relative_to(out_dir)
    except ValueError:
        relative = target
    names = [*relative.parent.parts, target.name + "x" * TEMP_NAME_EXTRA]
    for name in names:
        size = len(os.fsencode(name))
        if size > NAME_MAX:
            shown = name if name != names[-1] else target.name
            extra = (f" with the {TEMP_NAME_EXTRA} bytes of its temporary name" if name == names[-1] else "")
            raise UsageError(f"output {_quote(target)} of {owner}: the name {_quote(shown, 60)} is {size} bytes"
                             f"{extra}, over the {NAME_MAX} a file system allows: use a shorter -f or input name")
    size = len(os.fsencode(os.path.abspath(target))) + TEMP_NAME_EXTRA
    if size >= PATH_MAX:
        raise UsageError(f"output {_quote(target)} of {owner}: its path is {size} bytes with its temporary name, over "
                         f"the {PATH_MAX} a file system allows: use a shorter -o, -f or input path")


def output_paths(inp: str, out_dir: pathlib.Path, fmt: str, instruments, codec: str, root: str | None = None) -> dict:
    """{instrument: output path} for input ``inp``, each inside ``out_dir`` with the codec's extension.

    Raises UsageError when a path leaves the output folder (resolved: ``root``), when two stems share a path, or when
    the file name's extension is not the codec's."""
    root = root or resolved_folder(out_dir)
    p = pathlib.Path(inp)
    # abspath drops "." and ".." lexically, so {foldername} is a real folder's name as typed, never ".."
    fields = dict(filename=p.stem if p.name else "audio", foldername=pathlib.Path(os.path.abspath(p)).parent.name,
                  codec=codec)
    paths = {}
    seen = {}
    for inst in instruments:
        rel = fmt.format(instrument=inst, **fields)
        target = pathlib.Path(os.path.normpath(out_dir / rel))
        check_inside(target, root, out_dir, f"{inp} (-f/--filename_format {_quote(fmt)})")
        check_name_lengths(target, pathlib.Path(os.path.normpath(out_dir)), _quote(inp))
        ext = target.suffix.lower().lstrip(".")
        if ext not in codec_extensions(codec):
            raise UsageError(f"-f/--filename_format {_quote(fmt)} gives {_quote(target.name)} an extension that is not "
                             f"-c {codec}'s ({' or '.join('.' + e for e in codec_extensions(codec))}): end it with "
                             "'.{codec}' or give the -c of its extension")
        if target in seen:
            raise UsageError(f"-f/--filename_format {_quote(fmt)} maps stems {_quote(seen[target])} and {_quote(inst)} "
                             f"of {inp} to the same file {target}: add {{instrument}}")
        seen[target] = inst
        paths[inst] = target
    return paths


def file_id(path) -> tuple | None:
    """(device, inode) of the file ``path`` names (links followed); None when it names none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def file_ids(paths) -> dict:
    """{(device, inode): path} of the files ``paths`` name; missing ones (reported when read) left out."""
    ids = {}
    for p in paths:
        key = file_id(p)
        if key is not None:
            ids[key] = p
    return ids


@dataclasses.dataclass(frozen=True)
class Clash:
    """Why a planned output cannot be written: it is the input ``input``, or ``owner`` planned it first."""

    stem: str
    path: pathlib.Path
    input: str | None = None
    owner: str | None = None


class OutputPlan:
    """The one collision check of every output planner (`separate` and the Spleeter API through plan_outputs,
    `evaluate`, the catalogue), each with its own naming: no output may be one of the inputs (device and inode,
    links followed) nor be planned twice (compared on real paths: a link inside OUT may join two folders)."""

    def __init__(self, inputs: dict):
        self.inputs = inputs  # file_ids of every input
        self.owners = {}  # real path -> owner

    def add(self, owner, paths: dict) -> Clash | None:
        """Add ``owner``'s outputs ({stem: path}) to the plan; or, adding none, return the first that clashes."""
        mine = {}
        for stem, target in paths.items():
            source = self.inputs.get(file_id(target))
            if source is not None:
                return Clash(stem, target, input=source)
            real = os.path.realpath(target)
            other = self.owners.get(real, owner if real in mine else None)
            if other is not None:
                return Clash(stem, target, owner=other)
            mine[real] = owner
        self.owners.update(mine)
        return None


def plan_outputs(inputs, out_dir: pathlib.Path, fmt: str, instruments, codec: str) -> list:
    """output_paths of every input; no output may be an input (itself, or through a link) nor shared by two inputs."""
    root = resolved_folder(out_dir)
    plans = [output_paths(f, out_dir, fmt, instruments, codec, root) for f in inputs]
    planned = OutputPlan(file_ids(inputs))
    for f, paths in zip(inputs, plans):
        clash = planned.add(f, paths)
        if clash is not None and clash.input is not None:
            raise UsageError(f"output {clash.path} of {f} is the input {clash.input}: choose another -o or -f")
        if clash is not None:
            raise UsageError(f"{clash.owner} and {f} would both write {clash.path}: use -f with {{foldername}} "
                             "or separate them in two runs")
    return plans


def missing_folders(paths, out_dir: pathlib.Path) -> list:
    """Folders that writing ``paths`` (and ``out_dir``) would create, deepest first: a run removes those it leaves
    empty."""
    missing = set()
    for chain in [[out_dir, *out_dir.parents]] + [pathlib.Path(p).parents for p in paths]:
        for folder in chain:
            if folder.exists() or folder.is_symlink():
                break
            missing.add(folder)
    return sorted(missing, key=lambda f: len(f.absolute().parts), reverse=True)


def remove_empty(folders) -> None:
    for folder in folders:
        try:
            folder.rmdir()  # only ever removes an empty folder
        except OSError:
            pass


def check_encoding(codec: str, bitrate, pcm: str, offset: float, duration: float | None, fmt: str) -> None:
    """The options every file-writing command shares (-c, -b, --pcm, -s, -d, -f), checked before any work."""
    from . import audio
    from .errors import FastsepError

    if codec not in audio.CODECS:
        raise UsageError(f"unknown codec {codec!r}: choose one of {', '.join(audio.CODECS)}")
    if pcm not in audio.PCM_FORMATS:
        raise UsageError(f"unknown --pcm {pcm!r}: choose one of {', '.join(audio.PCM_FORMATS)}")
    try:
        audio.parse_bitrate(bitrate)
    except FastsepError as e:
        raise UsageError(str(e)) from None
    if not 0 <= offset <= MAX_SECONDS:  # also refuses nan and inf
        raise UsageError(f"-s/--offset must be >= 0 and at most {MAX_SECONDS:g} s (got {offset:g})")
    check_duration(duration)
    check_format(fmt)

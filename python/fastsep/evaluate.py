"""``fastsep evaluate``: BSSEval v4 scores (museval) of a model on tracks with reference stems.

As ``spleeter evaluate`` (docs/spec.md §11) via ``museval.eval_mus_dir``: 1 s windows and hops, each metric's
median over a track's frames (NaN frames of silent references ignored), then the median over tracks.  Targets are
scored jointly as museval does: the model's stems that have references (accompaniment left out when vocals and
accompaniment are both there), then vocals/accompaniment as their own pair.  The accompaniment reference is
``accompaniment.wav`` if present, else drums + bass + other.

Only ``museval.metrics`` is loaded (NumPy/SciPy): ``import museval`` imports musdb -> stempeg, which refuses to
load without an ffmpeg binary, which fastsep does not need.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib

import numpy as np

from .errors import FastsepError, InputError, MissingDependencyError, UsageError

METRICS = ("SDR", "SIR", "SAR", "ISR")
MUSDB_STEMS = ("drums", "bass", "other", "vocals")
STEM_MP4_STREAMS = ("mix", "drums", "bass", "other", "vocals")
REFERENCE_NAMES = ("vocals", "drums", "bass", "other", "piano", "accompaniment")


@dataclasses.dataclass
class Track:
    """A track with reference stems: a musdb folder (mixture.wav + <stem>.wav) or a .stem.mp4 file."""

    name: str
    path: pathlib.Path
    kind: str  # "folder" or "stem.mp4"

    def files(self) -> list[pathlib.Path]:
        """The files this track reads."""
        if self.kind != "folder":
            return [self.path]
        return [self.path / "mixture.wav"] + [self.path / f"{n}.wav" for n in REFERENCE_NAMES]

    def load(self, rate: int, duration: float | None = None) -> tuple[np.ndarray, dict]:
        """(mixture, {reference name: audio}), all float32 (n, channels) at ``rate``, cut to a common length."""
        from . import audio

        refs = {}
        if self.kind == "folder":
            mix, _ = audio.load(self.path / "mixture.wav", duration=duration, sample_rate=rate)
            for name in REFERENCE_NAMES:
                f = self.path / f"{name}.wav"
                if f.is_file():
                    refs[name], _ = audio.load(f, duration=duration, sample_rate=rate)
        else:
            info = audio.probe(self.path)
            if info.streams < len(STEM_MP4_STREAMS):
                raise InputError(f"{self.path}: {info.streams} audio streams; a .stem.mp4 has 5 "
                                 f"({', '.join(STEM_MP4_STREAMS)})")
            mix, _ = audio.load(self.path, duration=duration, sample_rate=rate, stream=0)
            for k, name in enumerate(STEM_MP4_STREAMS[1:], start=1):
                refs[name], _ = audio.load(self.path, duration=duration, sample_rate=rate, stream=k)
        if not refs:
            raise InputError(f"{self.path}: no reference stems ({', '.join(n + '.wav' for n in REFERENCE_NAMES)})")
        n = min([mix.shape[0]] + [r.shape[0] for r in refs.values()])
        mix = mix[:n]
        refs = {k: _stereo(v[:n]) for k, v in refs.items()}
        if "accompaniment" not in refs and all(s in refs for s in ("drums", "bass", "other")):
            refs["accompaniment"] = (refs["drums"] + refs["bass"] + refs["other"]).astype(np.float32)
        return mix, refs


def _stereo(x: np.ndarray) -> np.ndarray:
    if x.shape[1] == 1:
        return np.repeat(x, 2, axis=1)
    return x[:, :2]


def _match_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[1] == channels:
        return x
    return _stereo(x) if channels == 2 else x[:, :channels]


def find_tracks(paths) -> list[Track]:
    """Tracks under each path: a .stem.mp4 file, a track folder, or a folder of tracks (or of ``test/``)."""
    tracks = []
    for p in map(pathlib.Path, paths):
        name = os.path.basename(os.path.abspath(p))  # "x/.." and "." named by their real folder
        if p.is_file():
            tracks.append(Track(name.removesuffix(".mp4").removesuffix(".stem"), p, "stem.mp4"))
        elif (p / "mixture.wav").is_file():
            tracks.append(Track(name, p, "folder"))
        elif p.is_dir():
            root = p / "test" if (p / "test").is_dir() else p
            found = []
            for child in sorted(root.iterdir()):
                if child.is_dir() and (child / "mixture.wav").is_file():
                    found.append(Track(child.name, child, "folder"))
                elif child.is_file() and child.name.endswith(".stem.mp4"):
                    found.append(Track(child.name.removesuffix(".stem.mp4"), child, "stem.mp4"))
            if not found:
                raise InputError(f"{p}: no tracks (expected <track>/mixture.wav with <stem>.wav, or *.stem.mp4)")
            tracks += found
        else:
            raise InputError(f"{p}: no such file or folder")
    return tracks


def _metrics_module():
    """museval/metrics.py alone, found without importing museval (the module docstring says why)."""
    try:
        spec = importlib.util.find_spec("museval")
    except (ImportError, ValueError):
        spec = None
    mspec = None
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "metrics.py")
        mspec = importlib.util.spec_from_file_location("fastsep._museval_metrics", path)
    if mspec is None or mspec.loader is None:
        raise MissingDependencyError("museval", "eval", "fastsep evaluate")
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module


def bss_eval_v4(references: np.ndarray, estimates: np.ndarray, rate: int = 44100) -> dict:
    """museval.evaluate(mode="v4", win=hop=1 s): {metric: (n_sources, n_frames)} for (n_src, n, ch) arrays."""
    metrics = _metrics_module()
    n = references.shape[1]
    if estimates.shape[1] > n:
        estimates = estimates[:, :n]
    elif estimates.shape[1] < n:
        estimates = np.pad(estimates, [(0, 0), (0, n - estimates.shape[1]), (0, 0)])
    sdr, isr, sir, sar, _ = metrics.bss_eval(references.astype(np.float64), estimates.astype(np.float64),
                                             compute_permutation=False, window=rate, hop=rate,
                                             framewise_filters=False, bsseval_sources_version=False)
    return {"SDR": sdr, "ISR": isr, "SIR": sir, "SAR": sar}


def score_track(estimates: dict, refs: dict, rate: int = 44100) -> dict:
    """{target: {metric: frame median}} with museval's grouping of targets."""
    targets = [t for t in estimates if t in refs]
    has_acc = "vocals" in targets and "accompaniment" in targets
    groups = []
    joint = [t for t in targets if not (has_acc and t == "accompaniment")]
    if len(joint) >= 2:
        groups.append((joint, [t for t in joint if not (has_acc and t == "vocals")]))
    if has_acc:
        groups.append((["vocals", "accompaniment"], ["vocals", "accompaniment"]))
    if not groups:
        raise InputError(f"need at least two of the model's stems ({', '.join(estimates)}) among the references "
                         f"({', '.join(refs)})")
    scores = {}
    for group, keep in groups:
        ref = np.stack([refs[t] for t in group])
        est = np.stack([_match_channels(estimates[t], ref.shape[2]) for t in group])
        frames = bss_eval_v4(ref, est, rate)
        for k, t in enumerate(group):
            if t in keep:
                scores[t] = {m: _nanmedian(frames[m][k]) for m in METRICS}
    return scores


def _nanmedian(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def aggregate(per_track: dict) -> dict:
    """{target: {metric: median over tracks}} from {track: {target: {metric: value}}}."""
    out = {}
    targets = []
    for scores in per_track.values():
        targets += [t for t in scores if t not in targets]
    for t in targets:
        out[t] = {m: _nanmedian([s[t][m] for s in per_track.values() if t in s]) for m in METRICS}
    return out


def format_table(scores: dict, title: str) -> str:
    lines = [title, f"  {'target':<14}" + "".join(f"{m:>8}" for m in METRICS)]
    for t, vals in scores.items():
        lines.append(f"  {t:<14}" + "".join(f"{vals[m]:8.2f}" for m in METRICS))
    return "\n".join(lines)


def output_paths(tracks, out_dir: pathlib.Path, instruments) -> dict:
    """{track name: {instrument: out_dir/<track>/<instrument>.wav}}, each inside ``out_dir`` and none of them a file
    that a track reads (else UsageError); planned by outputs.OutputPlan, as every output."""
    from .outputs import OutputPlan, check_inside, file_ids, resolved_folder

    root = resolved_folder(out_dir)
    planned = OutputPlan(file_ids(f for track in tracks for f in track.files()))
    plans = {}
    for track in tracks:
        if track.name in plans:
            raise UsageError(f"two tracks are named {track.name!r} and would write the same estimates in {out_dir}")
        paths = {inst: pathlib.Path(os.path.normpath(out_dir / track.name / f"{inst}.wav")) for inst in instruments}
        for target in paths.values():
            check_inside(target, root, out_dir, f"track {track.name!r}")
        clash = planned.add(track.name, paths)
        if clash is not None and clash.input is not None:
            raise UsageError(f"estimate {clash.path} would replace the input {clash.input}: choose another -o")
        if clash is not None:  # two track folders joined by a link inside the output folder
            raise UsageError(f"tracks {clash.owner!r} and {track.name!r} would write the same estimate {clash.path}: "
                             "choose another -o")
        plans[track.name] = paths
    return plans


def run_cli(args, con) -> int:
    from . import audio
    from .run_plan import plan_from_args
    from .outputs import check_duration, missing_folders, precheck_output, remove_empty
    from .separator import Separator

    audio.silence_ffmpeg_logs()
    _metrics_module()  # fail early when museval is missing
    plan = plan_from_args(args, con)  # the model, backend and quality options, checked once
    tracks = find_tracks(args.inputs)
    names = [t.name for t in tracks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # their scores (and estimates) would replace each other's
        raise UsageError(f"two tracks are named {twice[0]!r}: evaluate them in separate runs")
    check_duration(args.duration)
    if args.json:
        _check_json_target(pathlib.Path(args.json))
    out_dir = pathlib.Path(args.output_path) if args.output_path else None
    plans = {}
    if out_dir is not None:  # checked whole before the model loads
        precheck_output(out_dir)
        plans = output_paths(tracks, out_dir, plan.source.config.instruments)
    sep = Separator(plan)
    created = missing_folders([t for paths in plans.values() for t in paths.values()], out_dir) if plans else []
    try:
        return _evaluate_tracks(args, con, sep, tracks, plans)
    finally:
        remove_empty(created)  # left by failed tracks


def _evaluate_tracks(args, con, sep, tracks, plans: dict) -> int:
    from . import audio

    rate = int(sep.config.sample_rate)
    per_track = {}
    failed = 0
    for i, track in enumerate(tracks):
        label = f"[{i + 1}/{len(tracks)}] {track.name}"
        try:
            mix, refs = track.load(rate, args.duration)
            con.print(f"{label}: separating {mix.shape[0] / rate:.1f} s")
            estimates = sep.run(mix, rate)
            for inst, target in plans.get(track.name, {}).items():
                audio.save(target, estimates[inst], rate, pcm="f32")
            con.print(f"{label}: scoring")
            per_track[track.name] = score_track(estimates, refs, rate)
        except FastsepError as e:
            failed += 1
            con.error(f"{track.name}: {e}")
            continue
        print(format_table(per_track[track.name], f"{track.name} (median over frames, dB)"), flush=True)
    if per_track:
        agg = aggregate(per_track)
        print(format_table(agg, f"{sep.config.name}: median over {len(per_track)} track(s), dB"), flush=True)
        if args.json:
            result = {"model": sep.config.name, "tracks": per_track, "aggregate": agg,
                      "method": "museval BSSEval v4, win=hop=1 s, median over frames then over tracks"}
            _write_atomically(pathlib.Path(args.json), json.dumps(result, indent=2, allow_nan=True))
    return 1 if failed or not per_track else 0


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Through fastsep.atomic: an exclusive temporary file, fsynced, renamed over ``path``."""
    from .atomic import write_atomically
    from .audio import OutputError

    write_atomically(path, text.encode("utf-8"), error=OutputError)


def _check_json_target(path: pathlib.Path) -> None:
    """--json is checked before any work: its folder exists and is writable, and it is not a folder."""
    folder = path.absolute().parent
    if path.is_dir():
        raise UsageError(f"--json {path} is a folder: give a file name")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--json {path}: its folder {folder} does not exist or is not writable")

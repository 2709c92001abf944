"""A catalogue run on Ray: start or join the cluster, start the workers (each holds one model), feed them tracks
(IN_FLIGHT_PER_WORKER each), and end on SIGINT or SIGTERM with the report written and unfinished stems discarded."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Optional

from ..errors import UsageError
from ..optional import require
from .inputs import find_tracks, max_entries
from .planning import Options, abandon, completed, model_identity, plan
from .remote import env_number, remote_timeout
from .report import REPORT_NAME, Summary, write_report
from .worker import CatalogueWorker

# under the names the code moved from catalogue.py calls them by
from .remote import first_line as _first_line
from .remote import is_uri as _is_uri
from .report import row as _row

IN_FLIGHT_PER_WORKER = 2  # one running, one queued: a worker never waits for the driver


def run_catalogue(inputs, out_dir, model="2stems", *, config: Optional[str] = None, backend: str = "auto",
                  precision: Optional[str] = None, options: Options = Options(), ray_address: str = "local",
                  workers: Optional[int] = None, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                  retries: int = 2, console=None) -> Summary:
    """Separate every track of `inputs` into `out_dir` with Ray workers; write OUT/_fastsep_report.parquet.

    Tracks already complete (same model, options and input size/mtime) are skipped; bad tracks are 'failed' rows
    and never stop the run. A worker that dies is restarted and its track retried up to `retries` times. Raises
    UsageError / ModelError (nothing done) for bad options, inputs or model. SIGTERM (in the main thread) and
    SIGINT end the run alike: unfinished stems are discarded, the report is written, KeyboardInterrupt is raised."""
    main = threading.current_thread() is threading.main_thread()
    on_term = signal.getsignal(signal.SIGTERM) if main else None
    if main:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(inputs, out_dir, model, config, backend, precision, options, ray_address, workers,
                    cpus_per_worker, gpus_per_worker, retries, console)
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run(inputs, out_dir, model, config, backend, precision, options, ray_address, workers, cpus_per_worker,
         gpus_per_worker, retries, console) -> Summary:
    from ..outputs import check_writable, precheck_output
    from ..run_plan import resolve_plan

    t0 = time.monotonic()
    options.check()
    out_dir = Path(out_dir).absolute()  # workers run elsewhere (another folder, another node)
    if _is_uri(str(out_dir)):
        raise UsageError("the output folder must be a path (a local or shared file system), not a URI")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if not cpus_per_worker > 0 or not gpus_per_worker >= 0 or max(cpus_per_worker, gpus_per_worker) == float("inf"):
        raise UsageError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
    remote_timeout(), max_entries(), worker_start_timeout()  # bad settings are usage errors, before any work
    precheck_output(out_dir)
    run_plan = resolve_plan(model, config, backend=backend, precision=precision,
                            threads=max(1, int(cpus_per_worker)))
    if run_plan.source.kind == "stock":  # fetched once here, not by every worker at once
        run_plan.source.checkpoint_folder()
    model_id = model_identity(run_plan)
    tracks = find_tracks(inputs, out_dir)
    check_writable(out_dir)
    jobs, rows = plan(tracks, out_dir, run_plan.source.config.instruments, options, model_id)
    todo = []
    for job in jobs:
        marker = completed(job)
        if marker is None:
            todo.append(job)
        else:
            rows.append(_row(job.track, "skipped", audio_seconds=marker.get("audio_seconds")))
    progress = Progress(console, len(todo))
    if console is not None:
        console.print(f"{len(tracks)} tracks: {len(todo)} to separate, {len(jobs) - len(todo)} already complete, "
                      f"{len(tracks) - len(jobs)} cannot be planned")
    for row in rows:
        if row["status"] == "failed":
            progress.add(row)
    n_workers = 0
    if todo:
        started = connect(ray_address)
        ray = _ray()
        actors, running = [], {}
        try:
            no_room = worker_room(cpus_per_worker, gpus_per_worker)
            if no_room is not None and started and ray_address == "local":
                raise UsageError(no_room)  # a cluster started here never grows
            n_workers = min(workers or default_workers(cpus_per_worker, gpus_per_worker), len(todo))
            try:
                actor_class = ray.remote(CatalogueWorker).options(
                    num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=-1, max_task_retries=retries)
            except ValueError as e:  # Ray refuses e.g. 1.5 GPUs (fractions only below 1)
                raise UsageError(f"--cpus-per-worker / --gpus-per-worker: {_first_line(e)}") from None
            actors = [actor_class.remote(run_plan) for _ in range(n_workers)]
            if no_room is not None and console is not None:
                console.warning(f"{no_room}: waiting up to {worker_start_timeout():g} s for one "
                                "(FASTSEP_WORKER_START_TIMEOUT)")
            probes = _check_model_loads(actors, no_room)
            _schedule(probes, todo, retries, progress, rows, running)
        except KeyboardInterrupt:  # the tracks finished so far are reported; the rest are redone on a rerun
            if console is not None:
                console.done()
                console.print("interrupted: stopping the workers and discarding unfinished stems", always=True)
            rows.extend(_stop(actors, running))
            actors = []
            write_report(rows, out_dir / REPORT_NAME)
            raise
        finally:
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - already dead
                    pass
            if started:
                ray.shutdown()
            if console is not None:
                console.done()
    summary = Summary(rows, out_dir / REPORT_NAME, time.monotonic() - t0, n_workers)
    write_report(rows, summary.report)
    return summary


def _check_model_loads(actors, no_room: Optional[str] = None) -> dict:
    """Wait (at most worker_start_timeout()) for the first worker: a model that cannot load, or a worker the
    cluster cannot place, is one clear error before any track is tried. Returns {ready() ref: actor}."""
    from ray.exceptions import RayError

    from ..errors import ModelError

    ray = _ray()
    timeout = worker_start_timeout()
    deadline = time.monotonic() + timeout
    probes = {a.ready.remote(): a for a in actors}
    while True:
        left = deadline - time.monotonic()
        done, _ = ray.wait(list(probes), num_returns=1, timeout=max(0.0, min(left, 1.0)))  # short: signals get through
        if done:
            break
        if left <= 0:
            why = no_room or "Ray could not place one (see `ray status`)"
            raise UsageError(f"no worker started within {timeout:g} s (FASTSEP_WORKER_START_TIMEOUT): {why}")
    try:
        _, error = ray.get(done[0], timeout=max(1.0, deadline - time.monotonic()))
    except RayError as e:
        raise ModelError(f"the first worker failed to start: {_first_line(e)}") from None
    if error is not None:
        raise ModelError(f"the workers cannot load the model: {error}")
    return probes


def _ray():
    return require("ray", extra="ray", what="fastsep catalogue")


def connect(address: str) -> bool:
    """Start or join Ray; True when this call started it (and so must shut it down). An already initialised Ray
    (an embedding application, tests) is used as it is. Ray's own SIGTERM handler (exit without a report) is
    replaced again by the one in force before: SIGTERM ends a run as SIGINT does."""
    import logging

    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    main = threading.current_thread() is threading.main_thread()
    on_term = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if address == "local":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            ray.init(address="local", num_cpus=cores, **kwargs)
        else:
            _probe(address)
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise UsageError(f"cannot join the Ray cluster at {address!r}: {_first_line(e)}") from None
    except SystemExit as e:  # Ray's own handler took a SIGTERM while it started
        if e.code == signal.SIGTERM:
            raise KeyboardInterrupt from None
        raise
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)
    return True


def _probe(address: str) -> None:
    """A cluster address where nothing answers is one clear line within seconds: ray.init would retry for many
    minutes. 'auto' (the address Ray recorded on this machine) is left to Ray, which fails fast without one."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray {address!r}: give local, auto, or a cluster address host:port (or ray://host:port)")
    timeout = min(remote_timeout(), 10.0)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise UsageError(f"cannot join the Ray cluster at {address!r}: nothing answers there "
                         f"({e.strerror or e})") from None


def default_workers(cpus_per_worker: float, gpus_per_worker: float) -> int:
    """As many workers as the cluster's GPUs (GPU workers) or CPUs hold right now."""
    resources = _ray().cluster_resources()
    if gpus_per_worker:
        n = int(resources.get("GPU", 0) // gpus_per_worker)
        if n < 1:
            raise UsageError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has "
                             f"{resources.get('GPU', 0):g} GPUs")
        return n
    return max(1, int(resources.get("CPU", 1) // cpus_per_worker))


def worker_room(cpus_per_worker: float, gpus_per_worker: float) -> Optional[str]:
    """None when some live node of the cluster can hold one worker; else why none can (one line)."""
    nodes = [n.get("Resources") or {} for n in _ray().nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus_per_worker and r.get("GPU", 0) >= gpus_per_worker for r in nodes):
        return None
    big = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    return (f"each worker asks for {cpus_per_worker:g} CPUs and {gpus_per_worker:g} GPUs (--cpus-per-worker, "
            f"--gpus-per-worker) and no node of the Ray cluster has them (the largest: {big.get('CPU', 0):g} CPUs, "
            f"{big.get('GPU', 0):g} GPUs)")


def worker_start_timeout() -> float:
    """Seconds the first worker may take to start and load the model: FASTSEP_WORKER_START_TIMEOUT, default 600
    (an autoscaler may have to add a node first)."""
    return env_number("FASTSEP_WORKER_START_TIMEOUT", 600.0, 0.01)


class Progress:
    """Tracks done / failed / left, audio hours per hour and an ETA, on one status line (or a line every 30 s)."""

    def __init__(self, con, total: int):
        self.con, self.total = con, total
        self.done = self.failed = 0
        self.audio_seconds = 0.0
        self.t0 = time.monotonic()
        self._printed = self.t0

    def add(self, row: dict) -> None:
        if row["status"] == "ok":
            self.done += 1
            self.audio_seconds += row["audio_seconds"] or 0.0
        else:
            self.failed += 1
            if self.con is not None:
                error = row["error"] or ""
                self.con.error(error if row["path"] in error else f"{row['path']}: {error}")

    def line(self) -> str:
        from ..console import fmt_seconds

        elapsed = max(time.monotonic() - self.t0, 1e-9)
        finished = self.done + self.failed
        left = self.total - finished
        eta = fmt_seconds(left * elapsed / finished) if finished else "?"
        return (f"{self.done} done, {self.failed} failed, {left} left | {self.audio_seconds / elapsed:.1f} h of "
                f"audio per hour | ETA {eta}")

    def show(self) -> None:
        if self.con is None:
            return
        if self.con.tty:
            self.con.status(self.line())
        elif time.monotonic() - self._printed >= 30:
            self._printed = time.monotonic()
            self.con.print(self.line())


def _schedule(probes: dict, jobs, retries: int, progress: Progress, rows: list, running: dict) -> None:
    """Feed jobs to the actors, IN_FLIGHT_PER_WORKER each, and append one row per job to `rows`; `running` holds
    the jobs in flight (ref -> (job, actor)), for the caller to discard on an interrupt. `probes` (ready() ref ->
    actor) says which actors have started: only those get tracks, so a worker the cluster cannot place (more
    --workers than fit) holds none back; the others take them all."""
    ray = _ray()
    from ray.exceptions import RayActorError, RayError

    queue = deque(jobs)
    starting = dict(probes)

    def submit(actor):
        if queue:
            job = queue.popleft()
            running[actor.separate.remote(job)] = (job, actor)

    def admit():
        if not starting:
            return
        started, _ = ray.wait(list(starting), num_returns=len(starting), timeout=0)
        for ref in started:
            actor = starting.pop(ref)
            try:
                ray.get(ref)
            except RayError:
                continue  # it died while starting: no tracks for it
            for _ in range(IN_FLIGHT_PER_WORKER):
                submit(actor)

    admit()
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
        for ref in ready:
            job, actor = running[ref]
            try:
                row = ray.get(ref)
            except RayActorError as e:
                abandon(job)
                row = _row(job.track, "failed", error=f"its worker died on each of {retries + 1} attempt(s) "
                                                      f"({_first_line(e)})")
            except RayError as e:
                abandon(job)
                row = _row(job.track, "failed", error=f"Ray error: {_first_line(e)}")
            except Exception as e:  # noqa: BLE001 - one track never ends the run
                abandon(job)
                row = _row(job.track, "failed", error=f"unexpected {type(e).__name__}: {_first_line(e)}")
            del running[ref]
            rows.append(row)
            progress.add(row)
            submit(actor)
        admit()
        progress.show()


#: Seconds an interrupted run waits for its killed workers to be gone before it removes their unfinished stems.
STOP_TIMEOUT = 10.0


def _stop(actors, running: dict) -> list:
    """Kill the workers, wait (bounded) until Ray reports them dead, so that none renames a stem afterwards, then
    discard the tracks they had in flight: stems without a marker and the temp files of dead writers. A track in
    flight whose marker was written (its worker finished it just before the stop) is complete and kept: its 'ok'
    rows are returned."""
    ray = _ray()
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass
    try:
        probes = [actor.ready.remote() for actor in actors]
        ray.wait(probes, num_returns=len(probes), timeout=STOP_TIMEOUT)
    except Exception:  # noqa: BLE001 - a dead actor's call fails: that is what is waited for
        pass
    kept = []
    for job, _ in running.values():
        marker = completed(job)
        if marker is not None:
            kept.append(_row(job.track, "ok", audio_seconds=marker.get("audio_seconds")))
        else:
            abandon(job)
    return kept

"""A catalogue run's report: one row per track, OUT/_fastsep_report.parquet, and the one-screen summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..atomic import write_atomically
from .inputs import Track
from .remote import printable


REPORT_NAME = "_fastsep_report.parquet"
REPORT_COLUMNS = ("path", "status", "seconds", "audio_seconds", "error", "warnings", "worker")


@dataclasses.dataclass
class Summary:
    """What run_catalogue did."""

    rows: list  # one dict per track, REPORT_COLUMNS
    report: Path
    wall_seconds: float
    workers: int

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def failed(self) -> int:
        return self.count("failed")


def row(track: Track, status: str, seconds=None, audio_seconds=None, error=None, warnings=None, worker=None) -> dict:
    """One report row (REPORT_COLUMNS) of `track`."""
    return {"path": printable(track.uri), "status": status, "seconds": seconds, "audio_seconds": audio_seconds,
            "error": None if error is None else printable(error),
            "warnings": None if warnings is None else printable(warnings), "worker": worker}


def write_report(rows, path: Path) -> None:
    """The per-track report as Parquet, written atomically, readable as the umask says (as the stems)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("path", pa.string()), ("status", pa.string()), ("seconds", pa.float64()),
                        ("audio_seconds", pa.float64()), ("error", pa.string()), ("warnings", pa.string()),
                        ("worker", pa.string())])
    table = pa.Table.from_pylist([{c: r[c] for c in REPORT_COLUMNS} for r in rows], schema=schema)
    write_atomically(path, lambda f: pq.write_table(table, f))


def summary_lines(summary: Summary, failures_shown: int = 8) -> list:
    """The one-screen summary."""
    from ..console import fmt_seconds

    ok, skipped, failed = summary.count("ok"), summary.count("skipped"), summary.failed
    audio = sum(r["audio_seconds"] or 0.0 for r in summary.rows if r["status"] == "ok")
    busy = sum(r["seconds"] or 0.0 for r in summary.rows if r["status"] == "ok")
    lines = [f"{len(summary.rows)} tracks in {fmt_seconds(summary.wall_seconds)}: {ok} separated, {skipped} "
             f"already complete, {failed} failed ({summary.workers} workers)"]
    if ok:
        lines.append(f"audio separated: {audio / 3600:.2f} h, {audio / max(summary.wall_seconds, 1e-9):.1f}x real "
                     f"time overall, {audio / max(busy, 1e-9):.1f}x per worker")
    bad = [r for r in summary.rows if r["status"] == "failed"]
    for r in bad[:failures_shown]:
        lines.append(f"  failed: {r['error'] if r['path'] in (r['error'] or '') else r['path'] + ': ' + r['error']}")
    if len(bad) > failures_shown:
        lines.append(f"  ... and {len(bad) - failures_shown} more failures")
    lines.append(f"report: {summary.report}")
    return lines

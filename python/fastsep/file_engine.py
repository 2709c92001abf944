"""Files to stems: decode one input, separate it, encode each stem into its own file, all streaming
(docs/architecture.md).

`separate_file` is the one way a file becomes stems, for the CLI, the Spleeter-compatible API and the catalogue
workers. Three stages overlap: a decode thread feeds blocks through a bounded queue, the separator streams them
(Separator.stream), and an encode thread writes each stem block by block into a hidden temporary file renamed into
place when complete, so an interrupted or failed run never leaves a truncated stem under a final name. Memory is a
few blocks per stage, whatever the song's length. PyAV and NumPy release the GIL while they decode, encode and
compute, so threads overlap the stages (benchmarks/streaming.py measures it).
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional

from . import audio

QUEUE_BLOCKS = 4  # blocks (of about 1.5 s) waiting between two stages


@dataclasses.dataclass
class FileResult:
    """What separate_file did for one input."""

    input: str
    outputs: dict[str, Path]  # stem -> file written
    seconds: float  # audio seconds separated
    sample_rate: int  # of the stems written
    clipped: dict[str, int]  # stem -> samples clipped to the integer format's full scale (0 when none)
    peaks: dict[str, float]  # stem -> peak magnitude before clipping


_END = object()


class _Stage:
    """A worker thread and the bounded queue between it and the separator; its exception reaches the other side."""

    def __init__(self, name: str, depth: int, cancel: Optional[threading.Event]):
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()  # the other side gave up
        self.cancel = cancel
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        try:
            self.work()
        except BaseException as e:  # noqa: BLE001 - handed to the other side
            self.error = e
            self._put(_END)

    def work(self) -> None:
        raise NotImplementedError

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self):
        while True:
            if self.cancel is not None and self.cancel.is_set():
                raise KeyboardInterrupt
            try:
                return self.queue.get(timeout=0.1)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    raise RuntimeError(f"{self.thread.name} stopped without a word") from self.error

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class _Decoding(_Stage):
    """Decodes blocks ahead of the separator."""

    def __init__(self, blocks: Iterable, depth: int, cancel):
        super().__init__("fastsep-decode", depth, cancel)
        self.blocks = blocks
        self.thread.start()

    def work(self) -> None:
        for block in self.blocks:
            if not self._put(block):
                return
        self._put(_END)

    def __iter__(self) -> Iterator:
        while True:
            item = self._get()
            if item is _END:
                if self.error is not None:
                    raise self.error
                return
            yield item


class _Encoding(_Stage):
    """Writes each stem's blocks behind the separator, then commits every file."""

    def __init__(self, writers: dict, depth: int, cancel):
        super().__init__("fastsep-encode", depth, cancel)
        self.writers = writers
        self.reports: dict = {}
        self.thread.start()

    def work(self) -> None:
        while not self.stop.is_set():
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                empty = [w for w in self.writers.values() if w.samples == 0]
                if empty:  # checked before any stem is committed: an empty stem is never counted as separated
                    raise audio.OutputError(f"{empty[0].path}: the stem holds no samples at {empty[0].sample_rate} "
                                            "Hz (the audio is too short); nothing written")
                self.reports = {name: w.commit() for name, w in self.writers.items()}
                return
            for name, w in self.writers.items():
                w.write(item[name])

    def put(self, item) -> None:
        """Hand a block over (waits while the queue is full); raises what stopped the encoder."""
        while True:
            if self.error is not None:
                raise self.error
            if self.cancel is not None and self.cancel.is_set():
                raise KeyboardInterrupt
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> dict:
        self.put(_END)
        while self.thread.is_alive():
            self.thread.join(0.1)  # Ctrl-C still gets through
        if self.error is not None:
            raise self.error
        return self.reports


def separate_file(separator, path: str | os.PathLike, outputs: Mapping[str, str | os.PathLike], *,
                  offset: float = 0.0, duration: Optional[float] = None, codec: Optional[str] = None,
                  bitrate: str = "128k", pcm: str = "s16", sample_rate: Optional[int] = None,
                  overwrite: bool = False, cancel: Optional[threading.Event] = None,
                  on_warning: Optional[Callable[[str], None]] = None,
                  progress: Optional[Callable[[int, int], None]] = None,
                  queue_blocks: int = QUEUE_BLOCKS) -> FileResult:
    """Separate the audio file `path` with `separator` and write the stems named in `outputs` ({stem: path}; stems
    not named are not written), streaming: memory does not grow with the song.

    offset / duration (seconds) select a part of the input. codec defaults to each output's extension; bitrate
    applies to lossy codecs, pcm ("s16", "s24", "f32") to wav and flac. sample_rate is the stems' rate (default:
    the input's own). An existing output is refused before any work (OutputExistsError) unless `overwrite`.
    `cancel` (an Event) stops between blocks and leaves no file behind (KeyboardInterrupt). Decoder warnings (a
    damaged or truncated input) go to `on_warning`. `progress(done, total)` counts samples at the stems' rate
    (total from the file's header, 0 when it does not say). queue_blocks: blocks waiting between stages.
    """
    unknown = set(outputs) - set(separator.instruments)
    if unknown:
        raise audio.OutputError(f"the model has no stem {sorted(unknown)[0]!r} (its stems: "
                                f"{', '.join(separator.instruments)})")
    if not overwrite:
        for target in outputs.values():
            if Path(target).exists():
                raise audio.OutputExistsError(f"{target} exists (use --overwrite to replace it)")
    decoder = audio.Decoder(path, offset=offset, duration=duration, on_warning=on_warning)
    writers: dict = {}
    decoding = encoding = None
    try:
        rate = int(sample_rate or decoder.rate)
        total = round((decoder.expected or 0) * rate / decoder.rate)
        for name, target in outputs.items():
            writers[name] = audio.StemWriter(target, rate, 2, codec=codec, bitrate=bitrate, pcm=pcm,
                                             overwrite=overwrite)
        decoding = _Decoding(decoder.blocks(), queue_blocks, cancel)
        encoding = _Encoding(writers, queue_blocks, cancel)
        done = 0
        for block in separator.stream(decoding, decoder.rate, output_rate=rate):
            encoding.put({name: block[name] for name in writers})
            done += next(iter(block.values())).shape[0]
            if progress is not None:
                progress(done, max(total, done))
        reports = encoding.finish()
    finally:
        for stage in (decoding, encoding):
            if stage is not None:
                stage.close()
        for w in writers.values():
            w.abort()  # a no-op for committed files
        decoder.close()
    return FileResult(str(path), {name: Path(r.path) for name, r in reports.items()}, done / rate, rate,
                      {name: r.clipped for name, r in reports.items()},
                      {name: r.peak for name, r in reports.items()})

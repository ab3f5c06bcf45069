"""A run's console: how the engine's reports reach the database while a run
works (RunLog). Reading it is ``releases.queries``' job.

Engine threads only enqueue; one writer thread stores console lines (masked)
and hands host reports to the run's recorder, in the order they happened.
What one run stores is capped by ``WALLE_LOG_MAX_LINES`` and ``WALLE_LOG_MAX_BYTES``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Max

from engine.masking import MASK, secret_fragments
from engine.plan import HostResult, Secret, Stage, Stream

from .models import DeployRun, LogLine

# Room kept inside the caps for how a run ends (error lines and the engine's
# "finish" summary): a flood of build output must not push out the lines that
# say what happened. At most a tenth of each cap.
RESERVE_LINES = 200
RESERVE_BYTES = 256 * 1024
# One stored line at most (the engine already splits output at 64 KiB).
MAX_LINE_CHARS = 64 * 1024


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Cut:
    """Queue item: the place in the console where lines started to be cut."""

    stage: str


def _size(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return ""  # unreachable


class RunLog:
    """What the engine reports through: masks secrets, stores console lines in
    order, and records each host's state as it changes.

    Engine threads only enqueue; one writer thread stores everything in order
    (batching lines), so host threads never open database connections and the
    console sees a line within a fraction of a second. Lines past the run's
    caps are counted and dropped before they are queued, so a flood costs a
    counter, not memory; host states are never dropped.
    """

    FLUSH_EVERY = 0.2

    def __init__(self, run: DeployRun, on_host: Callable[[HostResult], None]) -> None:
        self.run = run
        self.seq = LogLine.objects.filter(run=run).aggregate(last=Max("seq"))["last"] or 0
        # Host reports are stored in order with the lines, by the run's recorder.
        self._on_host = on_host
        self._secrets: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.max_lines = settings.WALLE_LOG_MAX_LINES
        self.max_bytes = settings.WALLE_LOG_MAX_BYTES
        self._reserve_lines = min(RESERVE_LINES, self.max_lines // 10)
        self._reserve_bytes = min(RESERVE_BYTES, self.max_bytes // 10)
        self.stored_lines = self.stored_bytes = 0  # accepted for storage
        self.cut_lines = self.cut_bytes = 0  # dropped at the caps
        self.report_failures = 0
        self._marker: LogLine | None = None
        self._marker_shows = (0, 0)
        self._done = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name=f"walle-log-{run.pk}", daemon=True)
        self._writer.start()

    def add_secret(self, secret: Secret) -> None:
        self._secrets = sorted(set(self._secrets) | set(secret_fragments(secret)), key=len, reverse=True)

    def _mask(self, text: str) -> str:
        for fragment in self._secrets:
            text = text.replace(fragment, MASK)
        return text

    def __call__(self, host: str, stage: Stage, stream: Stream, text: str) -> None:
        text = self._mask(str(text))  # before cutting, so no secret is cut in two and kept
        if len(text) > MAX_LINE_CHARS:
            text = f"{text[:MAX_LINE_CHARS]} … [{len(text) - MAX_LINE_CHARS:,} more characters not stored]"
        ending = stream == Stream.ERROR or stage == Stage.FINISH
        size = _size(text)
        with self._lock:
            if not self._fits(size, ending):
                if not self.cut_lines:
                    self._queue.put(_Cut(str(stage)))  # the marker goes where the gap starts
                self.cut_lines += 1
                self.cut_bytes += size
                return
            self.stored_lines += 1
            self.stored_bytes += size
        self._queue.put((host, str(stage), str(stream), text))

    def _fits(self, size: int, ending: bool) -> bool:
        """Ordinary output stops (for good) at the caps minus the reserve;
        lines that say how the run ends may use the reserve too."""
        if self.cut_lines and not ending:
            return False
        lines = self.max_lines - (0 if ending else self._reserve_lines)
        size_cap = self.max_bytes - (0 if ending else self._reserve_bytes)
        return self.stored_lines < lines and self.stored_bytes + size <= size_cap

    def note(self, stage: Stage, stream: Stream, text: str) -> None:
        """Walle's own message about the run, not tied to a host."""
        self("", stage, stream, text)

    def host_result(self, result: HostResult) -> None:
        """The engine's on_host hook."""
        result.error = self._mask(result.error)
        self._queue.put(result)

    def _cut_text(self) -> str:
        with self._lock:
            lines, size = self.cut_lines, self.cut_bytes
        return (
            f"[log limit] {lines:,} lines ({_human(size)}) of output were not stored: a run keeps at most "
            f"{self.max_lines:,} lines and {_human(self.max_bytes)}. Errors and how the run ended are still "
            "shown below."
        )

    def _drain(self) -> None:
        rows: list[LogLine] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                host, stage, stream, text = item
                self.seq += 1
                rows.append(LogLine(run=self.run, seq=self.seq, host=host, stage=stage, stream=stream, text=text))
                continue
            if isinstance(item, _Cut):
                self.seq += 1
                self._marker = LogLine(run=self.run, seq=self.seq, host="", stage=item.stage,
                                       stream=Stream.INFO, text=self._cut_text())
                self._marker_shows = (-1, -1)  # stored below; its counts are brought up to date after
                rows.append(self._marker)
                continue
            self._store(rows)  # keep lines and host states in the order they happened
            rows = []
            if isinstance(item, HostResult):
                self._report(item)
            else:  # a flush marker
                item.set()
        self._store(rows)
        self._update_marker()

    def _update_marker(self) -> None:
        """The marker says how much was cut so far; it grows while the run does."""
        if self._marker is None or self._marker_shows == (self.cut_lines, self.cut_bytes):
            return
        self._marker_shows = (self.cut_lines, self.cut_bytes)
        LogLine.objects.filter(run=self.run, seq=self._marker.seq).update(text=self._cut_text())

    def _store(self, rows: list[LogLine]) -> None:
        if not rows:
            return
        try:
            with transaction.atomic():
                LogLine.objects.bulk_create(rows)
        except IntegrityError:
            # Someone else wrote to this console meanwhile (the reaper ended a
            # run it thought dead): go on after their lines, never over them.
            last = LogLine.objects.filter(run=self.run).aggregate(last=Max("seq"))["last"] or 0
            for offset, row in enumerate(rows, start=1):
                row.seq = last + offset
            self.seq = rows[-1].seq
            LogLine.objects.bulk_create(rows)
        DeployRun.objects.filter(pk=self.run.pk).update(stage=rows[-1].stage)

    def _write_loop(self) -> None:
        try:
            while not self._done.wait(self.FLUSH_EVERY):
                self._drain()
            self._drain()
        finally:
            connection.close()

    def _report(self, result: HostResult) -> None:
        try:
            self._on_host(result)
        except Exception:  # one failed write must not stop the writer (and every later line)
            logger.exception("storing the result of host %s failed", result.name)
            close_old_connections()
            self.report_failures += 1

    @property
    def healthy(self) -> bool:
        """Every host report so far was stored and the writer still runs."""
        return self._writer.is_alive() and not self.report_failures

    def flush(self, timeout: float = 30) -> None:
        """Wait until everything reported so far is stored."""
        marker = threading.Event()
        self._queue.put(marker)
        marker.wait(timeout)

    def close(self) -> None:
        self._done.set()
        self._writer.join(timeout=30)


def append_line(run: DeployRun, stage: Stage, stream: Stream, text: str) -> LogLine:
    """Add one line after the last of ``run``'s console: Walle's own note once
    the run's writer is gone (the reaper's "interrupted")."""
    for _attempt in range(3):
        last = LogLine.objects.filter(run=run).aggregate(last=Max("seq"))["last"] or 0
        try:
            with transaction.atomic():
                return LogLine.objects.create(
                    run=run, seq=last + 1, host="", stage=str(stage), stream=str(stream), text=text
                )
        except IntegrityError:  # a late writer took that number; take the next
            continue
    raise RuntimeError(f"could not append to the console of run {run.pk}")

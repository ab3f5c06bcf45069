"""RunLog: how the engine's reports reach the database while a run works.

Engine threads only enqueue; one writer thread stores console lines (masked)
and host states in the order they happened.
"""

from __future__ import annotations

import queue
import threading

from django.db import connection

from .deploy.masking import MASK, secret_fragments
from .deploy.plan import HostResult, Secret, Stage, Stream
from .models import DeployRun, LogLine
from .recorder import record_host


class RunLog:
    """What the engine reports through: masks secrets, stores console lines in
    order, and records each host's state as it changes.

    Engine threads only enqueue; one writer thread stores everything in order
    (batching lines), so host threads never open database connections and the
    console sees a line within a fraction of a second.
    """

    FLUSH_EVERY = 0.2

    def __init__(self, run: DeployRun) -> None:
        self.run = run
        self.seq = LogLine.objects.filter(run=run).count()
        self.release_name = ""  # set once the plan is known
        self._secrets: list[str] = []
        self._queue: queue.Queue = queue.Queue()
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
        self._queue.put((host, str(stage), str(stream), self._mask(str(text))))

    def note(self, stage: Stage, stream: Stream, text: str) -> None:
        """Walle's own message about the run, not tied to a host."""
        self("", stage, stream, text)

    def host_result(self, result: HostResult) -> None:
        """The engine's on_host hook."""
        result.error = self._mask(result.error)
        self._queue.put(result)

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
            self._store(rows)  # keep lines and host states in the order they happened
            rows = []
            if isinstance(item, HostResult):
                record_host(self.run, item, self.release_name, self.run.ticket.commit)
            else:  # a flush marker
                item.set()
        self._store(rows)

    def _store(self, rows: list[LogLine]) -> None:
        if rows:
            LogLine.objects.bulk_create(rows)
            DeployRun.objects.filter(pk=self.run.pk).update(stage=rows[-1].stage)

    def _write_loop(self) -> None:
        try:
            while not self._done.wait(self.FLUSH_EVERY):
                self._drain()
            self._drain()
        finally:
            connection.close()

    def flush(self, timeout: float = 30) -> None:
        """Wait until everything reported so far is stored."""
        marker = threading.Event()
        self._queue.put(marker)
        marker.wait(timeout)

    def close(self) -> None:
        self._done.set()
        self._writer.join(timeout=30)

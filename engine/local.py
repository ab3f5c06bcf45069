"""Run processes on the deploy host: argv only, streamed output, hard timeouts."""

from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from . import runtime
from .plan import Stream

OnLine = Callable[[Stream, str], None]

# A line longer than this is handed out in pieces, so a process that never
# prints a newline cannot grow memory without bound.
MAX_LINE = 64 * 1024
TIMEOUT_STATUS = 124  # what GNU timeout(1) returns, so local and remote agree
CANCELLED_STATUS = -1  # stopped on request (another host failed); no real exit status
# Variables hooks and Walle's own git/ssh/rsync inherit from the worker.
# Everything else (database passwords, Django's SECRET_KEY, encryption keys,
# GIT_*/SSH_*/RSYNC_* settings) stays out of their reach. HOME is never
# inherited: see tool_env and the hook sandbox.
SAFE_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME")


class LineSplitter:
    """Turn a byte stream into text lines for ``on_line`` as they arrive."""

    def __init__(self, stream: Stream, on_line: OnLine) -> None:
        self.stream = stream
        self.on_line = on_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> None:
        """Add bytes; emit every complete line."""
        self._pending += self._decoder.decode(data)
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self.on_line(self.stream, line.rstrip("\r"))
        while len(self._pending) > MAX_LINE:
            self.on_line(self.stream, self._pending[:MAX_LINE])
            self._pending = self._pending[MAX_LINE:]

    def close(self) -> None:
        """Emit what is left after the stream ended without a final newline."""
        self._pending += self._decoder.decode(b"", final=True)
        if self._pending:
            self.on_line(self.stream, self._pending.rstrip("\r"))
            self._pending = ""


def safe_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for child processes plus ``extra`` (no HOME)."""
    env = {name: os.environ[name] for name in SAFE_ENV_NAMES if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra or {})
    return env


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for git, ssh and rsync that Walle itself runs.

    HOME (and XDG_CONFIG_HOME) point into Walle's private dir, which no hook
    can reach, so a planted ``~/.gitconfig``, ``~/.ssh/config`` or ``~/.popt``
    is never read.
    """
    home = runtime.home()
    env = safe_env({"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config")})
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float,
    on_line: OnLine,
    cancel: threading.Event | None = None,
    pass_fds: Sequence[int] = (),
) -> int:
    """Run ``argv`` locally, stream its output line by line, return the exit status.

    The process gets its own process group so a timeout kills the whole tree
    (``bash -c 'sleep 1000 | cat'`` included) and returns 124 like timeout(1).
    Setting ``cancel`` kills it the same way and returns CANCELLED_STATUS.
    """
    deadline = time.monotonic() + timeout
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        umask=0o022,  # what builds write is deployed; Walle's own umask is 077
    )
    try:
        reason = _pump(proc, deadline, on_line, cancel)
        if reason is None:
            try:  # output closed; the process itself may still be finishing
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _terminate(proc)
                reason = "timeout"
    finally:
        _kill_group(proc, signal.SIGKILL)  # leftovers the command left in the background
        proc.wait()
    if reason == "timeout":
        on_line(Stream.ERROR, f"timed out after {timeout:g} s; the process was killed")
        return TIMEOUT_STATUS
    if reason == "cancelled":
        on_line(Stream.INFO, "cancelled; the process was stopped")
        return CANCELLED_STATUS
    return proc.returncode


def _pump(
    proc: subprocess.Popen[bytes], deadline: float, on_line: OnLine, cancel: threading.Event | None
) -> str | None:
    """Copy output to ``on_line`` until both pipes close.

    Returns None, or "timeout"/"cancelled" after killing the process group.
    """
    assert proc.stdout is not None and proc.stderr is not None
    splitters = {
        proc.stdout: LineSplitter(Stream.STDOUT, on_line),
        proc.stderr: LineSplitter(Stream.STDERR, on_line),
    }
    exited_at: float | None = None
    try:
        with selectors.DefaultSelector() as sel:
            for pipe in splitters:
                sel.register(pipe, selectors.EVENT_READ)
            while sel.get_map():
                now = time.monotonic()
                stop = "timeout" if now > deadline else "cancelled" if cancel and cancel.is_set() else None
                if stop:
                    _terminate(proc)
                    return stop
                # A background child may keep the pipes open after the command
                # itself exited; give it a moment to flush, then stop waiting.
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > 2:
                    break
                for key, _ in sel.select(timeout=0.2):
                    data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                    if data:
                        splitters[key.fileobj].feed(data)  # type: ignore[index]
                    else:
                        sel.unregister(key.fileobj)
    finally:
        for splitter in splitters.values():
            splitter.close()
    return None


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, then SIGKILL after a 5 s grace (like --kill-after=5)."""
    _kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(proc, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone

"""The log wrapper every engine message goes through: masks secrets, never raises."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from .local import OnLine
from .plan import LogFn, Secret, Stage, Stream

MASK = "[MASKED]"
# Shorter fragments would mask ordinary words by accident.
_MIN_SECRET_LEN = 16

logger = logging.getLogger(__name__)


def secret_fragments(key: Secret) -> list[str]:
    """The strings to mask for a private key: the whole text and each base64 line."""
    text = key.value.strip()
    if not text:
        return []
    fragments = {text}
    for line in text.splitlines():
        line = line.strip()
        if len(line) >= _MIN_SECRET_LEN and not line.startswith("-----"):
            fragments.add(line)
    # Longest first, so the whole key is replaced before its pieces.
    return sorted(fragments, key=len, reverse=True)


class MaskingLog:
    """Wrap the caller's LogFn: mask secrets, serialise calls from host threads.

    A failing log callback must not turn into a failed (or half-switched) deploy,
    so its exceptions are reported to Python logging and swallowed.
    """

    def __init__(self, log: LogFn, secrets: Iterable[Secret]) -> None:
        self._log = log
        self._fragments = [f for secret in secrets for f in secret_fragments(secret)]
        self._lock = threading.Lock()

    def mask(self, text: str) -> str:
        """``text`` with every secret fragment replaced by [MASKED]."""
        for fragment in self._fragments:
            if fragment in text:
                text = text.replace(fragment, MASK)
        return text

    def __call__(self, host: str, stage: Stage, stream: Stream, text: str) -> None:
        masked = self.mask(text)
        with self._lock:
            try:
                self._log(host, stage, stream, masked)
            except Exception:  # noqa: BLE001 - see class docstring
                logger.exception("deploy log callback failed")

    def lines(self, host: str, stage: Stage) -> OnLine:
        """An ``on_line(stream, text)`` callback bound to one host and stage."""

        def on_line(stream: Stream, text: str) -> None:
            self(host, stage, stream, text)

        return on_line

"""Secrets never reach the log (security.md T17/T19)."""

from __future__ import annotations

from engine.keys import generate_ed25519
from engine.masking import MASK, MaskingLog, secret_fragments
from engine.plan import Secret, Stage, Stream


def test_whole_key_and_each_body_line_are_masked() -> None:
    private, _, _ = generate_ed25519()
    got: list[str] = []
    log = MaskingLog(lambda h, s, st, text: got.append(text), [Secret(private)])
    body = [line for line in private.splitlines() if not line.startswith("-----")]
    log("", Stage.PREPARE, Stream.STDOUT, f"key: {private}")
    log("", Stage.PREPARE, Stream.STDOUT, f"echo {body[1]} done")
    assert all(line not in text for text in got for line in body)
    assert got[1] == f"echo {MASK} done"


def test_header_lines_are_not_treated_as_secret() -> None:
    private, _, _ = generate_ed25519()
    assert not any(f.startswith("-----BEGIN") and "\n" not in f for f in secret_fragments(Secret(private)))


def test_empty_secret_masks_nothing() -> None:
    assert secret_fragments(Secret("")) == []


def test_a_failing_log_callback_does_not_break_the_run() -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("db down")

    MaskingLog(broken, [])("", Stage.PREPARE, Stream.INFO, "hello")  # no exception


def test_lines_binds_host_and_stage() -> None:
    got: list[tuple] = []
    MaskingLog(lambda *a: got.append(a), []).lines("h1", Stage.TRANSFER)(Stream.STDERR, "x")
    assert got == [("h1", Stage.TRANSFER, Stream.STDERR, "x")]

"""ssh.Connection against a real sshd: streaming, exit codes, timeouts, quoting."""

from __future__ import annotations

import threading
import time

import pytest

from engine.plan import Secret, Stream
from engine.ssh import Connection, SSHError, fetch_host_key
from tests.infra.hosts import TargetHost, authorize_key
from tests.integration.test_engine_support import PRIVATE_KEY, PUBLIC_KEY, target_of

pytestmark = pytest.mark.sshd

HOSTILE = ['"; id; "', "x$(touch /tmp/walle-ssh-pwned)", "--upload-pack=x", "a'b\"c", "`id`", "a\nb", "*", ""]


@pytest.fixture
def conn(hosts: list[TargetHost]):
    authorize_key("www", PUBLIC_KEY)
    with Connection(target_of(hosts[0], 1), "www", Secret(PRIVATE_KEY), connect_timeout=5) as connection:
        yield connection


class Lines:
    def __init__(self) -> None:
        self.items: list[tuple[float, Stream, str]] = []
        self.started = time.monotonic()

    def __call__(self, stream: Stream, text: str) -> None:
        self.items.append((time.monotonic() - self.started, stream, text))

    def texts(self, stream: Stream = Stream.STDOUT) -> list[str]:
        return [text for _, s, text in self.items if s == stream]


def test_fetch_host_key_returns_the_served_key(hosts: list[TargetHost]) -> None:
    assert fetch_host_key(hosts[0].address, hosts[0].port, 5) == hosts[0].host_key


def test_output_streams_line_by_line_while_the_command_runs(conn: Connection) -> None:
    lines = Lines()
    assert conn.run(["bash", "-c", "echo one; sleep 1.5; echo two"], timeout=30, on_line=lines) == 0
    (first, _, _), (second, _, _) = lines.items
    assert first < 1.0 and second >= 1.4


def test_exit_status_stderr_and_trailing_output_are_kept(conn: Connection) -> None:
    lines = Lines()
    script = "for i in $(seq 1 2000); do echo line$i; done; echo oops >&2; printf tail; exit 3"
    assert conn.run(["bash", "-c", script], timeout=30, on_line=lines) == 3
    out = lines.texts()
    assert len(out) == 2001 and out[0] == "line1" and out[-2:] == ["line2000", "tail"]
    assert lines.texts(Stream.STDERR) == ["oops"]


@pytest.mark.parametrize("value", HOSTILE)
def test_arguments_env_and_cwd_arrive_literally(conn: Connection, value: str) -> None:
    lines = Lines()
    argv = ["bash", "-c", 'printf "%s|%s|%s" "$1" "$WALLE_X" "$PWD"', "hook", value]
    assert conn.run(argv, cwd="/data/nginx", env={"WALLE_X": value}, timeout=30, on_line=lines) == 0
    assert "\n".join(lines.texts()) == f"{value}|{value}|/data/nginx"


def test_remote_timeout_kills_the_command(conn: Connection, hosts: list[TargetHost]) -> None:
    started = time.monotonic()
    assert conn.run(["bash", "-c", "sleep 100 | cat"], timeout=2, on_line=Lines()) == 124
    assert time.monotonic() - started < 15
    assert hosts[0].run(["pgrep", "-x", "sleep"]).returncode == 1


def test_a_background_process_does_not_hold_the_command_open(conn: Connection) -> None:
    started = time.monotonic()
    lines = Lines()
    assert conn.run(["bash", "-c", "sleep 30 & echo started"], timeout=60, on_line=lines) == 0
    assert time.monotonic() - started < 10 and lines.texts() == ["started"]


def test_losing_the_host_mid_command_raises(conn: Connection, hosts: list[TargetHost]) -> None:
    killer = threading.Timer(0.5, hosts[0].kill)
    killer.start()
    try:
        with pytest.raises(SSHError, match="lost"):
            conn.run(["sleep", "20"], timeout=60, on_line=Lines())
    finally:
        killer.join()  # the kill must be over before the next test restarts the host

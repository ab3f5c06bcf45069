"""Hooks: WALLE_* values reach hooks as data, never as code (security.md T7, T30)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from engine import hooks, local, sandbox
from engine.hooks import HookError
from engine.plan import Common, Hooks, RefKind, Secret, Stream
from engine.sandbox import Confinement

MARKER = Path("/tmp/walle-unit-hook-marker")


def common(title: str = "t", ref: str = "master", ref_kind: RefKind = RefKind.BRANCH) -> Common:
    return Common(
        project="web;id",
        environment="prod",
        ticket_id=42,
        ticket_title=title,
        ref_kind=ref_kind,
        ref=ref,
        run_user="www",
        webroot="/data/nginx/website",
        release_library="/data/releases",
        hooks=Hooks(),
        post_release_delay=0,
        max_parallel=1,
        key=Secret("k"),
        deployed_by="alice",
    )


def run_local(lines: list[str], tmp_path: Path, **kwargs) -> Path:
    """Run hook lines the way the engine does (sandboxed; as root, as the build
    user) in a fresh build dir under ``tmp_path``; return that dir."""
    build, home = tmp_path / "build", tmp_path / "home"
    build.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    sandbox.prepare_for(sandbox.DEFAULT_SANDBOX, [str(build), str(home)])
    hooks.run_local(lines, box=Confinement(str(build), str(home)), **kwargs)
    return build


class Collect:
    def __init__(self) -> None:
        self.lines: list[tuple[Stream, str]] = []

    def __call__(self, stream: Stream, text: str) -> None:
        self.lines.append((stream, text))

    def out(self) -> list[str]:
        return [text for stream, text in self.lines if stream == Stream.STDOUT]


def test_hook_env_has_every_variable() -> None:
    env = hooks.hook_env(common(), commit="c" * 40, release="20240102-030405-42", release_path="/data/releases/r")
    assert env == {
        "WALLE_PROJECT": "web;id",
        "WALLE_ENVIRONMENT": "prod",
        "WALLE_TICKET_ID": "42",
        "WALLE_TICKET_TITLE": "t",
        "WALLE_BRANCH": "master",
        "WALLE_TAG": "",
        "WALLE_COMMIT": "c" * 40,
        "WALLE_RELEASE": "20240102-030405-42",
        "WALLE_RELEASE_PATH": "/data/releases/r",
        "WALLE_WEBROOT": "/data/nginx/website",
        "WALLE_DEPLOY_USER": "alice",
    }


def test_tag_deploys_fill_walle_tag() -> None:
    env = hooks.hook_env(common(ref="v1", ref_kind=RefKind.TAG), commit="", release="r", release_path="/p")
    assert env["WALLE_TAG"] == "v1" and env["WALLE_BRANCH"] == ""


def test_hook_argv_uses_strict_bash() -> None:
    assert hooks.hook_argv("make build") == ["bash", "-e", "-o", "pipefail", "-c", "make build"]


@pytest.mark.parametrize(
    "title",
    ['"; id; "', "x$(touch /tmp/walle-unit-hook-marker)", "`touch /tmp/walle-unit-hook-marker`", "a\nb", "$HOME", "'"],
)
def test_hostile_values_are_printed_literally_by_local_hooks(title: str, tmp_path: Path) -> None:
    MARKER.unlink(missing_ok=True)
    env = hooks.hook_env(
        common(title=title, ref="x$(touch${IFS}/tmp/walle-unit-hook-marker)"), commit="", release="r", release_path="/p"
    )
    out = Collect()
    run_local(['printf "%s|%s" "$WALLE_TICKET_TITLE" "$WALLE_BRANCH"'], tmp_path, env=env, timeout=10, on_line=out
    )
    assert "\n".join(out.out()) == f"{title}|x$(touch${{IFS}}/tmp/walle-unit-hook-marker)"
    assert not MARKER.exists()


def test_hooks_run_in_order_in_cwd_and_stop_at_the_first_failure(tmp_path: Path) -> None:
    out = Collect()
    with pytest.raises(HookError, match="exit status 3: exit 3"):
        run_local(["pwd", "echo one", "", "exit 3", "echo never"], tmp_path, env={}, timeout=10, on_line=out
        )
    assert out.out() == [str(tmp_path / "build"), "one"]
    assert (Stream.INFO, "$ exit 3") in out.lines


def test_pipefail_and_errexit_are_on(tmp_path: Path) -> None:
    with pytest.raises(HookError):
        run_local(["false | true"], tmp_path, env={}, timeout=10, on_line=Collect())
    with pytest.raises(HookError):
        run_local(["false; echo still"], tmp_path, env={}, timeout=10, on_line=Collect())


def test_a_hanging_hook_is_killed_with_its_children(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(HookError, match="timed out"):
        run_local(["sleep 300 | cat; echo done"], tmp_path, env={}, timeout=1, on_line=Collect())
    assert time.monotonic() - started < 10


def test_worker_secrets_do_not_reach_local_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"WALLE_KEY_ENCRYPTION_KEY": "k1", "WALLE_SECRET_KEY": "k2", "DATABASE_URL": "postgres://u:pw@h/db"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    out = Collect()
    line = "echo " + " ".join(f'"[${{{name}:-}}]"' for name in secrets)
    run_local([line], tmp_path, env={"WALLE_X": "1"}, timeout=10, on_line=out)
    assert out.out() == ["[] [] []"]


def test_local_run_streams_lines_while_the_process_runs(tmp_path: Path) -> None:
    seen: list[float] = []
    started = time.monotonic()

    def on_line(stream: Stream, text: str) -> None:
        seen.append(time.monotonic() - started)

    status = local.run(["bash", "-c", "echo a; sleep 1.5; echo b"], timeout=10, on_line=on_line)
    assert status == 0
    assert len(seen) == 2 and seen[0] < 1.0 and seen[1] >= 1.4


def test_local_run_separates_streams_and_keeps_partial_last_line() -> None:
    out = Collect()
    assert local.run(["bash", "-c", "echo out; echo err >&2; printf tail; exit 4"], timeout=10, on_line=out) == 4
    assert sorted(out.lines) == sorted([(Stream.STDOUT, "out"), (Stream.STDERR, "err"), (Stream.STDOUT, "tail")])


def test_local_run_does_not_wait_for_background_children() -> None:
    started = time.monotonic()
    assert local.run(["bash", "-c", "sleep 60 & echo started"], timeout=30, on_line=Collect()) == 0
    assert time.monotonic() - started < 10


def test_safe_env_keeps_path_only_from_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw@db/x")
    env = local.safe_env({"A": "1"})
    assert "DATABASE_URL" not in env and env["A"] == "1" and env["PATH"] == os.environ["PATH"]


def test_local_run_can_be_cancelled_from_another_thread() -> None:
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    out = Collect()
    assert local.run(["bash", "-c", "sleep 60 | cat"], timeout=30, on_line=out, cancel=cancel) == local.CANCELLED_STATUS
    assert time.monotonic() - started < 10
    assert (Stream.INFO, "cancelled; the process was stopped") in out.lines


def test_local_run_waits_for_a_process_that_closed_its_output() -> None:
    # Closing stdout/stderr is not exiting: the real exit status must be reported.
    status = local.run(["bash", "-c", "exec >&- 2>&-; sleep 1; exit 5"], timeout=30, on_line=Collect())
    assert status == 5


class RecordingConnection:
    """Stands in for an SSH connection: records what would be sent (pure logic)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def run(self, argv, *, cwd=None, env=None, timeout, on_line, stdin=b"") -> int:
        from engine.ssh import remote_command

        self.calls.append({"command": remote_command(argv, cwd=cwd, env=env, timeout=timeout), "stdin": stdin})
        return 0


def test_target_hooks_get_secrets_on_stdin_never_in_the_remote_command() -> None:
    conn = RecordingConnection()
    secret = "tok_live_9f8e7d6c5b4a3f2e1d0c"
    hooks.run_remote(conn, ['echo "$API_TOKEN"'], cwd="/data/r", env={"WALLE_RELEASE": "r"}, timeout=5,
                     on_line=Collect(), secrets={"API_TOKEN": secret})
    (call,) = conn.calls
    assert secret not in call["command"] and "WALLE_RELEASE=r" in call["command"]
    assert call["stdin"] == f"API_TOKEN={secret}\n".encode()


def test_a_secret_with_an_unusable_name_is_refused_before_anything_runs() -> None:
    conn = RecordingConnection()
    with pytest.raises(HookError, match="bad secret name"):
        hooks.run_remote(conn, ["true"], cwd="/", env={}, timeout=5, on_line=Collect(), secrets={"A B": "x"})
    assert conn.calls == []

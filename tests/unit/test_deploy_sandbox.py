"""The deploy-host hook sandbox, with the real bubblewrap binary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from releases.deploy import hooks, sandbox
from releases.deploy.hooks import HookError
from releases.deploy.plan import Stream
from releases.deploy.sandbox import SandboxMode, SandboxSpec


@pytest.fixture
def needs_bwrap() -> None:
    if sandbox.bwrap_path() is None:
        reason = "bubblewrap (bwrap) is not installed"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)


def _run(lines, spec, cwd: Path, writable: Path) -> list[str]:
    out: list[str] = []
    hooks.run_local(lines, cwd=str(cwd), env={}, timeout=20,
                    on_line=lambda stream, text: out.append(text) if stream == Stream.STDOUT else None,
                    sandbox=spec, writable=str(writable))
    return out


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    code = tmp_path / "code"
    workspace = data / "workspaces" / "site"
    build = workspace / "builds" / "r1"
    for path in (build, code):
        path.mkdir(parents=True)
    (data / "secret_key").write_text("TOP-SECRET")
    (code / "app.py").write_text("print('walle')")
    return {"data": data, "code": code, "workspace": workspace, "build": build}


def test_hooks_cannot_read_the_data_dir_but_can_build_in_the_workspace(needs_bwrap, layout):
    spec = SandboxSpec(SandboxMode.REQUIRED, hide=(str(layout["data"]),), read_only=(str(layout["code"]),))
    out = _run([
        f'cat {layout["data"]}/secret_key 2>/dev/null || echo "secret hidden"',
        "pwd",
        "echo built > artifact.txt",
        f'echo evil >> {layout["code"]}/app.py 2>/dev/null || echo "code read-only"',
    ], spec, layout["build"], layout["workspace"])
    assert out == ["secret hidden", str(layout["build"]), "code read-only"]
    assert (layout["build"] / "artifact.txt").read_text() == "built\n"
    assert (layout["code"] / "app.py").read_text() == "print('walle')"


def test_sandboxed_hooks_get_a_private_tmp(needs_bwrap, layout, tmp_path):
    marker = Path("/tmp") / f"walle-ssh-test-{tmp_path.name}"
    marker.mkdir()
    try:
        spec = SandboxSpec(SandboxMode.REQUIRED, hide=(str(layout["data"]),))
        out = _run([f"ls -d {marker} 2>/dev/null || echo gone"], spec, layout["workspace"], layout["workspace"])
        assert out == ["gone"]
    finally:
        marker.rmdir()


def test_a_hanging_sandboxed_hook_is_killed_at_the_timeout(needs_bwrap, layout):
    spec = SandboxSpec(SandboxMode.REQUIRED, hide=(str(layout["data"]),))
    with pytest.raises(HookError, match="timed out"):
        hooks.run_local(["sleep 300 | cat"], cwd=str(layout["workspace"]), env={}, timeout=1,
                        on_line=lambda *a: None, sandbox=spec, writable=str(layout["workspace"]))


def test_a_required_sandbox_without_bubblewrap_refuses(layout, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    with pytest.raises(HookError, match="bubblewrap"):
        _run(["true"], SandboxSpec(SandboxMode.REQUIRED), layout["workspace"], layout["workspace"])


def test_auto_without_bubblewrap_runs_unsandboxed_and_off_never_wraps(layout, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    assert _run(["echo ran"], SandboxSpec(SandboxMode.AUTO), layout["workspace"], layout["workspace"]) == ["ran"]
    assert sandbox.wrap(["true"], SandboxSpec(SandboxMode.OFF), "/w", "/w") is None

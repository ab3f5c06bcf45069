"""The deploy-host hook sandbox, with the real bubblewrap binary.

As root (CI, bin/test) these run the root path: bubblewrap plus setpriv to the
unprivileged build user; as another user, bubblewrap's user namespace.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from releases.deploy import hooks, sandbox
from releases.deploy.hooks import HookError
from releases.deploy.plan import Stream
from releases.deploy.sandbox import Confinement, SandboxMode, SandboxSpec


@pytest.fixture
def needs_bwrap() -> None:
    if sandbox.bwrap_path() is None:
        reason = "bubblewrap (bwrap) is not installed"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    code = tmp_path / "code"
    workspace = data / "workspaces" / "site"
    build = workspace / "builds" / "r1"
    home = workspace / "builds" / "r1.home"
    mirror = workspace / "mirror.git"
    for path in (build, home, code, mirror):
        path.mkdir(parents=True)
    (data / "secret_key").write_text("TOP-SECRET")
    (code / "app.py").write_text("print('walle')")
    (mirror / "config").write_text("[core]\n")
    return {"data": data, "code": code, "workspace": workspace, "build": build, "home": home, "mirror": mirror}


def _spec(layout: dict[str, Path], mode: SandboxMode = SandboxMode.REQUIRED) -> SandboxSpec:
    return SandboxSpec(mode, hide=(str(layout["data"]),))


def _run(lines, spec: SandboxSpec, layout: dict[str, Path], timeout: int = 20) -> list[str]:
    out: list[str] = []
    box = Confinement(cwd=str(layout["build"]), home=str(layout["home"]))
    sandbox.prepare_for(spec, [box.cwd, box.home])
    hooks.run_local(lines, box=box, env={}, timeout=timeout,
                    on_line=lambda stream, text: out.append(text) if stream == Stream.STDOUT else None,
                    sandbox=spec)
    return out


def test_hooks_build_in_their_dir_and_cannot_read_the_data_dir_or_write_elsewhere(needs_bwrap, layout):
    out = _run([
        f'cat {layout["data"]}/secret_key 2>/dev/null || echo "secret hidden"',
        "pwd",
        "echo built > artifact.txt",
        f'echo evil >> {layout["code"]}/app.py 2>/dev/null || echo "code read-only"',
        'touch /etc/walle-planted 2>/dev/null || echo "root read-only"',
    ], _spec(layout), layout)
    assert out == ["secret hidden", str(layout["build"]), "code read-only", "root read-only"]
    assert (layout["build"] / "artifact.txt").read_text() == "built\n"
    assert (layout["code"] / "app.py").read_text() == "print('walle')"
    assert not Path("/etc/walle-planted").exists()


def test_hooks_get_a_scratch_home_and_never_the_workers_home(needs_bwrap, layout):
    real_home = Path(os.path.expanduser("~"))
    planted = real_home / ".gitconfig-walle-test"
    out = _run([
        'echo "$HOME"',
        'echo "[core] hooksPath=/tmp/x" > "$HOME/.gitconfig" && echo "home writable"',
        f'echo x > {planted} 2>/dev/null || echo "real home out of reach"',
    ], _spec(layout), layout)
    assert out == [str(layout["home"]), "home writable", "real home out of reach"]
    assert not planted.exists()


def test_the_mirror_and_the_rest_of_the_workspace_are_hidden(needs_bwrap, layout):
    out = _run([
        f'ls {layout["mirror"]}/config 2>/dev/null || echo "mirror hidden"',
        f'echo "[filter]" >> {layout["mirror"]}/config 2>/dev/null || echo "mirror not writable"',
    ], _spec(layout), layout)
    assert out == ["mirror hidden", "mirror not writable"]
    assert (layout["mirror"] / "config").read_text() == "[core]\n"


def test_hooks_keep_no_capability_and_cannot_unmount_what_hides_secrets(needs_bwrap, layout):
    out = _run([
        "grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status | awk '{print $1, $2}'",
        f'umount -l {layout["data"]} 2>/dev/null || echo "umount refused"',
        f'cat {layout["data"]}/secret_key 2>/dev/null || echo "secret hidden"',
        "id -u",
    ], _spec(layout), layout)
    caps = dict(line.split(": ") for line in out[:3])
    assert caps == {"CapPrm": "0000000000000000", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"}
    assert "umount refused" in out and "secret hidden" in out
    assert "TOP-SECRET" not in out
    if os.geteuid() == 0:
        assert out[-1] != "0"  # the build user, never root


def test_sandboxed_hooks_get_a_private_tmp(needs_bwrap, layout, tmp_path):
    marker = Path("/tmp") / f"walle-ssh-test-{tmp_path.name}"
    marker.mkdir()
    try:
        out = _run([f"ls -d {marker} 2>/dev/null || echo gone"], _spec(layout), layout)
        assert out == ["gone"]
    finally:
        marker.rmdir()


def test_a_hanging_sandboxed_hook_is_killed_at_the_timeout(needs_bwrap, layout):
    with pytest.raises(HookError, match="timed out"):
        _run(["sleep 300 | cat"], _spec(layout), layout, timeout=1)


def test_a_required_sandbox_without_bubblewrap_refuses(layout, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    with pytest.raises(HookError, match="bubblewrap"):
        _run(["true"], _spec(layout), layout)


def test_as_root_hooks_never_run_unsandboxed(layout, monkeypatch):
    monkeypatch.setattr(sandbox, "running_as_root", lambda: True)
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    for mode in SandboxMode:
        with pytest.raises(HookError, match="refusing to run build hooks as root"):
            _run(["true"], _spec(layout, mode), layout)


def test_without_root_auto_falls_back_to_plain_and_off_never_wraps(layout, monkeypatch):
    monkeypatch.setattr(sandbox, "running_as_root", lambda: False)
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    assert _run(["echo ran"], _spec(layout, SandboxMode.AUTO), layout) == ["ran"]
    box = Confinement(cwd="/w", home="/h")
    assert sandbox.wrap(["true"], SandboxSpec(SandboxMode.OFF), box) is None


def test_as_root_the_hook_command_switches_to_the_build_user(monkeypatch):
    monkeypatch.setattr(sandbox, "running_as_root", lambda: True)
    spec = SandboxSpec(build_user=sandbox.BuildUser(4242, 4343))
    argv = sandbox.bwrap_argv("/usr/bin/bwrap", ["bash", "-c", "x"], spec, Confinement("/b", "/h"))
    tail = argv[argv.index("--") + 1:]
    assert tail[0].endswith("setpriv") and "--reuid=4242" in tail and "--regid=4343" in tail
    assert "--bounding-set=-all" in tail and tail[-3:] == ["bash", "-c", "x"]
    assert argv[1:4] == ["--ro-bind", "/", "/"]


def test_as_root_a_build_user_that_is_root_is_refused(monkeypatch):
    monkeypatch.setattr(sandbox, "running_as_root", lambda: True)
    spec = SandboxSpec(build_user=sandbox.BuildUser(0, 0))
    with pytest.raises(sandbox.SandboxUnavailable, match="unprivileged build user"):
        sandbox.bwrap_argv("/usr/bin/bwrap", ["true"], spec, Confinement("/b", "/h"))

"""The deploy-host hook sandbox, with the real bubblewrap binary.

As root (CI, bin/test) these run the root path: bubblewrap plus setpriv to the
unprivileged build user; as another user, bubblewrap's user namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from engine import hooks, local, sandbox
from engine.hooks import HookError
from engine.plan import Stream
from engine.sandbox import Confinement, SandboxMode, SandboxSpec


@pytest.fixture
def needs_bwrap() -> None:
    if sandbox.bwrap_path() is None:
        reason = "bubblewrap (bwrap) is not installed"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)


# Outside /tmp and /var/tmp (private inside the sandbox anyway) and open to
# every user, so that only the sandbox's own hiding and read-only mounts can
# stop a hook, whichever user it runs as.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def layout(tmp_path: Path):
    root = ARTIFACTS / f"sandbox-{uuid.uuid4().hex[:10]}"
    data = root / "data"
    code = root / "code"
    owned = root / "owned"  # the hook's own user may write here, were it not read-only
    workspace = data / "workspaces" / "site"
    build = workspace / "builds" / "r1"
    home = workspace / "builds" / "r1.home"
    mirror = workspace / "mirror.git"
    for path in (build, home, code, mirror, owned):
        path.mkdir(parents=True)
    (data / "secret_key").write_text("TOP-SECRET")
    (code / "app.py").write_text("print('walle')")
    (mirror / "config").write_text("[core]\n")
    for path in [ARTIFACTS, *root.rglob("*"), root]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    user = sandbox.build_user_of(sandbox.DEFAULT_SANDBOX)
    if os.geteuid() == 0 and user is not None:
        os.chown(owned, user.uid, user.gid)
    yield {"data": data, "code": code, "workspace": workspace, "build": build, "home": home, "mirror": mirror,
           "owned": owned}
    shutil.rmtree(root, ignore_errors=True)


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
        f'touch {layout["owned"]}/planted 2>/dev/null || echo "root read-only"',
    ], _spec(layout), layout)
    assert out == ["secret hidden", str(layout["build"]), "code read-only", "root read-only"]
    assert not (layout["owned"] / "planted").exists()
    assert (layout["build"] / "artifact.txt").read_text() == "built\n"
    assert (layout["code"] / "app.py").read_text() == "print('walle')"


def test_hooks_get_a_scratch_home_and_never_the_workers_home(needs_bwrap, layout, monkeypatch):
    real_home = layout["owned"].parent / "worker-home"
    real_home.mkdir(mode=0o777)
    os.chmod(real_home, 0o777)
    monkeypatch.setenv("HOME", str(real_home))  # the worker's HOME, writable by anyone but for the sandbox
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


def test_hook_values_never_reach_the_launcher_outside_the_sandbox(needs_bwrap, layout, monkeypatch):
    """A variable named LD_PRELOAD (say, a project secret) must not load a
    library into bubblewrap itself, which runs outside the sandbox."""
    seen: list[dict] = []
    real_run = local.run

    def spy(argv, **kwargs):
        seen.append({"argv": list(argv), "env": dict(kwargs.get("env") or {}), "cwd": kwargs.get("cwd")})
        return real_run(argv, **kwargs)

    monkeypatch.setattr(local, "run", spy)
    env = {"LD_PRELOAD": "./evil.so", "API_TOKEN": "s3cret-value-1234567890"}
    out: list[str] = []
    box = Confinement(cwd=str(layout["build"]), home=str(layout["home"]))
    sandbox.prepare_for(_spec(layout), [box.cwd, box.home])
    hooks.run_local(['printf "%s|%s" "$API_TOKEN" "$LD_PRELOAD"'], box=box, env=env, timeout=20,
                    on_line=lambda stream, text: out.append(text) if stream == Stream.STDOUT else None,
                    sandbox=_spec(layout))
    assert out == ["s3cret-value-1234567890|./evil.so"]  # the hook itself does get them
    (launch,) = seen
    assert launch["cwd"] == "/" and "LD_PRELOAD" not in launch["env"] and "API_TOKEN" not in launch["env"]
    assert not any("s3cret-value" in word for word in launch["argv"])


def test_a_preload_library_named_by_a_hook_variable_never_runs_outside(needs_bwrap, layout, tmp_path):
    compiler = shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build the library")
    marker = tmp_path / "preloaded-outside"  # under /tmp: only a process outside the sandbox can create it
    source = tmp_path / "evil.c"
    source.write_text(
        "#include <stdio.h>\n__attribute__((constructor)) static void hit(void) {"
        f' FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
    )
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(layout["build"] / "evil.so"), str(source)], check=True)
    os.chmod(layout["build"] / "evil.so", 0o755)
    box = Confinement(cwd=str(layout["build"]), home=str(layout["home"]))
    sandbox.prepare_for(_spec(layout), [box.cwd, box.home])
    hooks.run_local(["true"], box=box, env={"LD_PRELOAD": "./evil.so"}, timeout=20,
                    on_line=lambda *a: None, sandbox=_spec(layout))
    assert not marker.exists()


def test_sockets_under_run_are_out_of_reach(needs_bwrap, layout):
    """A read-only mount does not stop connect(): the D-Bus, PostgreSQL or
    docker sockets under /run must not be there at all."""
    import socket as socket_module

    path = Path("/run") / f"walle-test-{uuid.uuid4().hex[:8]}.sock"
    server = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
    try:
        server.bind(str(path))
        os.chmod(path, 0o777)
        out = _run([f'test -S {path} && echo "socket reachable" || echo "socket hidden"'], _spec(layout), layout)
        assert out == ["socket hidden"]
    finally:
        server.close()
        path.unlink(missing_ok=True)


def test_hooks_can_still_resolve_names_and_write_tmp(needs_bwrap, layout):
    out = _run(["getent hosts localhost >/dev/null && echo resolves", "echo x > /tmp/t && cat /tmp/t"],
               _spec(layout), layout)
    assert out == ["resolves", "x"]

"""A namespace sandbox (bubblewrap) for hooks that run on the deploy host.

``pre_deploy``/``post_deploy`` run the repository's own build scripts, so
anyone who can push to a deployed branch controls them. Inside the sandbox:

* ``/`` is read-only; the only writable places are the run's build directory
  and a scratch ``HOME`` made for this run (plus a private ``/tmp``);
* Walle's data dir (database, secret key, key-encryption key, private key
  dir), every workspace (so the project's own mirror too) and the real
  ``HOME`` of the worker's user are empty directories;
* the hook runs in its own PID namespace and dies with the run;
* no capability is left: when the worker runs as root, the hook itself runs as
  an unprivileged build user (``setpriv``), so it can neither undo a mount nor
  read root-only files.

Nothing a hook writes is ever read by Walle's own git, ssh or rsync as
configuration: those get a private HOME (see ``runtime``) and ignore every
user, system and repository config.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class SandboxMode(StrEnum):
    REQUIRED = "required"  # refuse to run deploy-host hooks without bubblewrap (the default)
    AUTO = "auto"  # use bubblewrap when installed, else run unsandboxed (never as root)
    OFF = "off"  # never sandbox (refused when the worker runs as root)


@dataclass(frozen=True)
class BuildUser:
    """The unprivileged account hooks run as when the worker is root."""

    uid: int
    gid: int


@dataclass(frozen=True)
class SandboxSpec:
    mode: SandboxMode = SandboxMode.REQUIRED
    hide: tuple[str, ...] = ()  # replaced by empty directories inside the sandbox
    build_user: BuildUser | None = None  # used only when the worker runs as root
    network: bool = True  # builds usually download dependencies


# The engine's default is the safe one: sandbox required, and as root the
# hooks run as "nobody". Turning it off is a caller's explicit choice.
DEFAULT_SANDBOX = SandboxSpec()
NO_SANDBOX = SandboxSpec(mode=SandboxMode.OFF)
DEFAULT_BUILD_USER = "nobody"


class SandboxUnavailable(RuntimeError):
    pass


_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Confinement:
    """Where one hook may write: its working dir and its scratch HOME."""

    cwd: str
    home: str


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def setpriv_path() -> str | None:
    return shutil.which("setpriv")


def running_as_root() -> bool:
    return os.geteuid() == 0


# Inside the sandbox the hook's environment comes from this file (copied in by
# bubblewrap from a memfd): the launcher itself gets none of it, so a value
# named LD_PRELOAD or BASH_ENV can never reach a process outside the sandbox,
# and no value is ever on a command line.
ENV_FILE = "/tmp/.walle-hook-env"
_LOAD_ENV = f'set -a; . {ENV_FILE}; set +a; exec "$@"'


def wrap(argv: Sequence[str], spec: SandboxSpec, box: Confinement, env_fd: int | None = None) -> list[str] | None:
    """``argv`` wrapped to run confined to ``box``, or None to run it plainly.

    ``env_fd`` (a file of ``NAME='value'`` lines, see ``env_script``) becomes
    the hook's environment inside the sandbox.

    Raises SandboxUnavailable when the sandbox is required (or the worker is
    root) and it cannot be had.
    """
    bwrap = bwrap_path() if spec.mode != SandboxMode.OFF else None
    if bwrap is None:
        if running_as_root():
            raise SandboxUnavailable(
                "refusing to run build hooks as root without a sandbox: install bubblewrap "
                "(apt-get install bubblewrap) and keep WALLE_HOOK_SANDBOX=required, or run the worker "
                "as an unprivileged user"
            )
        if spec.mode == SandboxMode.REQUIRED:
            raise SandboxUnavailable(
                "deploy-host hooks must run sandboxed, but bubblewrap (bwrap) is not installed; "
                "install the bubblewrap package"
            )
        return None
    return bwrap_argv(bwrap, argv, spec, box, env_fd)


def env_script(env: Mapping[str, str]) -> bytes:
    """``env`` as ``NAME='value'`` shell lines (names checked, values quoted): the
    hook's environment file here, and the secrets script target hooks read from
    stdin. ValueError for a name that is not a plain variable name."""
    for name in env:
        if not _ENV_NAME_RE.fullmatch(name):
            raise ValueError(f"bad environment variable name {name!r}")
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in env.items()).encode()


def bwrap_argv(
    bwrap: str, argv: Sequence[str], spec: SandboxSpec, box: Confinement, env_fd: int | None = None
) -> list[str]:
    """The bubblewrap command line. Mount order matters: later mounts cover
    earlier ones, so the writable dirs come last and reappear inside hidden ones."""
    out = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
    # /run holds sockets (the user's D-Bus and systemd, PostgreSQL with peer
    # auth, docker.sock): a read-only mount does not stop connect(), hiding does.
    out += ["--tmpfs", "/run", *_resolver_binds()]
    hidden = _hidden(spec)
    for path in hidden:
        out += ["--tmpfs", path]
    # bubblewrap makes missing mount points 0700; the build user must be able
    # to walk down to its two dirs through the empty stand-ins.
    for path in _parents_inside([*hidden, "/tmp"], (box.cwd, box.home)):
        out += ["--perms", "0755", "--dir", path]
    for path in (box.cwd, box.home):
        out += ["--bind", path, path]
    out += ["--chdir", box.cwd, "--setenv", "HOME", box.home, "--setenv", "TMPDIR", "/tmp"]
    out += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent"]
    if not spec.network:
        out += ["--unshare-net"]
    command = list(argv)
    if env_fd is not None:
        out += ["--perms", "0644", "--file", str(env_fd), ENV_FILE]
        command = ["bash", "-c", _LOAD_ENV, "walle-hook", *command]
    if running_as_root():
        return out + ["--"] + _drop_root(spec) + command
    # Unprivileged bwrap runs the hook in a user namespace with no capabilities.
    return out + ["--cap-drop", "ALL", "--"] + command


def _resolver_binds() -> list[str]:
    """/etc/resolv.conf often links into /run (systemd-resolved): keep DNS working."""
    target = os.path.realpath("/etc/resolv.conf")
    if target.startswith("/run/") and os.path.exists(target):
        directory = os.path.dirname(target)
        return ["--ro-bind", directory, directory]
    return []


def _hidden(spec: SandboxSpec) -> list[str]:
    """Every hidden path that exists, parents before children."""
    paths = {os.path.realpath(p) for p in spec.hide}
    # ssh finds ~/.ssh through the passwd entry, git and rsync through $HOME.
    for home in (os.path.expanduser("~"), pwd.getpwuid(os.getuid()).pw_dir):
        if home not in ("/", ""):
            paths.add(os.path.realpath(home))
    paths.add("/var/tmp")
    return sorted(p for p in paths if os.path.isdir(p) and p != "/")


def _parents_inside(covered: Sequence[str], targets: Sequence[str]) -> list[str]:
    """Ancestors of ``targets`` that lie strictly inside a ``covered`` dir, top down."""
    found: list[str] = []
    for target in targets:
        parts = os.path.normpath(target).split("/")[1:-1]
        for depth in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:depth])
            inside = any(path.startswith(c.rstrip("/") + "/") for c in covered)
            if inside and path not in found:
                found.append(path)
    return found


def _drop_root(spec: SandboxSpec) -> list[str]:
    """As root, bubblewrap keeps every capability; the hook must not. setpriv
    switches to the build user, clears groups, empties the bounding set."""
    user = build_user_of(spec)
    setpriv = setpriv_path()
    if user is None or user.uid == 0 or setpriv is None:
        raise SandboxUnavailable(
            "the worker runs as root, so build hooks must run as an unprivileged build user "
            "(WALLE_BUILD_USER, default nobody) through setpriv (util-linux)"
        )
    return [
        setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
    ]  # fmt: skip


def build_user_of(spec: SandboxSpec) -> BuildUser | None:
    """The spec's build user, else the system's "nobody" (None if it has none)."""
    if spec.build_user is not None:
        return spec.build_user
    try:
        entry = pwd.getpwnam(DEFAULT_BUILD_USER)
    except KeyError:
        return None
    return BuildUser(entry.pw_uid, entry.pw_gid)


def prepare_for(spec: SandboxSpec, paths: Sequence[str]) -> None:
    """Hand the writable dirs to the build user when hooks run as that user."""
    user = build_user_of(spec)
    if spec.mode == SandboxMode.OFF or user is None or not running_as_root() or bwrap_path() is None:
        return
    for path in paths:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)
        for parent, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.chown(os.path.join(parent, name), user.uid, user.gid, follow_symlinks=False)

"""A namespace sandbox (bubblewrap) for hooks that run on the deploy host.

Hooks are commands a Maintainer typed; they run as Walle's own Unix user. The
sandbox keeps them from reading what that user can read but hooks must not:
Walle's data dir (secret key, key-encryption key, SQLite database) and the
private temporary directories where deploy keys briefly live. Walle's own code
is mounted read-only so a hook cannot plant code that Walle would run later.
Everything else (compilers, caches under $HOME, the network) stays available,
so builds work as before; the project's workspace is the one writable place
inside hidden paths.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class SandboxMode(StrEnum):
    AUTO = "auto"  # use bubblewrap when installed, else run unsandboxed (with a warning)
    REQUIRED = "required"  # refuse to run deploy-host hooks without bubblewrap
    OFF = "off"


@dataclass(frozen=True)
class SandboxSpec:
    mode: SandboxMode = SandboxMode.AUTO
    hide: tuple[str, ...] = ()  # replaced by empty directories inside the sandbox
    read_only: tuple[str, ...] = ()  # visible but not writable


# The engine's default: callers opt in (releases.tasks passes the configured spec),
# so a plan built by hand never changes what a hook can see behind its back.
NO_SANDBOX = SandboxSpec(mode=SandboxMode.OFF)


class SandboxUnavailable(RuntimeError):
    pass


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def wrap(argv: Sequence[str], spec: SandboxSpec, writable: str, cwd: str) -> list[str] | None:
    """``argv`` wrapped in bubblewrap to run in ``cwd`` with only ``writable``
    (which holds ``cwd``) re-exposed, or None when it is not to be sandboxed.

    Raises SandboxUnavailable when the sandbox is required and bubblewrap is
    missing.
    """
    if spec.mode == SandboxMode.OFF:
        return None
    bwrap = bwrap_path()
    if bwrap is None:
        if spec.mode == SandboxMode.REQUIRED:
            raise SandboxUnavailable("deploy-host hooks must run sandboxed, but bubblewrap (bwrap) is not installed")
        return None
    # Mount order matters: later mounts cover earlier ones, and the writable
    # workspace is mounted last so it reappears inside a hidden data dir.
    out = [bwrap, "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in spec.read_only:
        out += ["--ro-bind", path, path]
    for path in (*spec.hide, tempfile.gettempdir()):
        out += ["--tmpfs", path]
    out += ["--bind", writable, writable, "--chdir", cwd]
    # Own pid namespace: when the hook is killed (timeout), everything it started dies too.
    out += ["--unshare-pid", "--die-with-parent", "--"]
    return out + list(argv)

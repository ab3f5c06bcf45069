"""Where Walle's own git, ssh and rsync keep what nobody else may touch.

Every process Walle itself runs (git fetch, the export, ssh, rsync) gets a
private, empty ``HOME`` and writes temporary key files into a private key dir.
Both live under one 0700 root that the host application points into its data
dir (``configure``), so build hooks, which never see the data dir, cannot plant
``~/.gitconfig``, ``~/.ssh/config`` or ``~/.popt`` for Walle to read, and
decrypted keys never sit in a shared temp dir.

Without ``configure`` (the engine's own unit tests) a per-user 0700 dir in the
system temp dir is used, and refused if someone else made it.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading

_lock = threading.Lock()
_root: str | None = None


class UnsafeDirectory(RuntimeError):
    """A private dir exists but is not ours alone."""


def configure(root: str) -> None:
    """Use ``root`` (created 0700 if missing) for private homes and key files."""
    global _root
    with _lock:
        _root = _private_dir(os.path.abspath(root))


def root() -> str:
    """The private root, made on first use."""
    global _root
    with _lock:
        if _root is None:
            _root = _private_dir(os.path.join(tempfile.gettempdir(), f"walle-private-{os.getuid()}"))
        return _root


def home() -> str:
    """An empty HOME for Walle's own git/ssh/rsync (never a hook's)."""
    return _private_dir(os.path.join(root(), "home"))


def key_root() -> str:
    """Where temporary key dirs are made (one per step, removed after it)."""
    return _private_dir(os.path.join(root(), "keys"))


def _private_dir(path: str) -> str:
    """``path`` as a directory only this user can enter; create it if missing."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UnsafeDirectory(f"{path} must be a directory owned by uid {os.getuid()}")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path

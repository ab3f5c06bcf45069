"""Keep Walle's data dir private: the directory 0700, every file in it 0600.

The data dir holds the database (with live session keys), Django's secret key
and the key-encryption key. A 0755 dir with a 0644 SQLite file let any local
user read a session key and open the admin as the superuser, so this runs every
time settings load (web, worker, manage.py) and a system check reports what it
could not fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def secure(data_dir: Path) -> None:
    """Create ``data_dir`` if needed and tighten it and its entries we own."""
    data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(data_dir, PRIVATE_DIR_MODE)
    with os.scandir(data_dir) as entries:
        for entry in entries:
            if entry.is_symlink():
                continue
            _tighten(Path(entry.path), PRIVATE_DIR_MODE if entry.is_dir() else PRIVATE_FILE_MODE)


def problems(data_dir: Path) -> list[str]:
    """What is still readable or writable by others (for the system check)."""
    found = []
    if _mode(data_dir) & 0o077:
        found.append(f"{data_dir} is mode {_mode(data_dir):o}, not 700")
    with os.scandir(data_dir) as entries:
        for entry in entries:
            path = Path(entry.path)
            if not entry.is_symlink() and _mode(path) & 0o077:
                found.append(f"{path} is mode {_mode(path):o}, readable or writable by others")
    return found


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _tighten(path: Path, mode: int) -> None:
    info = path.lstat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(info.st_mode) & mode)


def precreate_private_file(path: Path) -> None:
    """SQLite creates its files with the process umask (0644) and gives the
    -wal and -shm files the database's mode: make the database 0600 first."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        pass

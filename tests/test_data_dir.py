"""Walle's data dir (database, session keys, secret key, key-encryption key) is
private: 0700, every file in it 0600, fixed at start and checked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from django.conf import settings
from django.core import checks
from django.db import connection

from walleproj import datadir
from walleproj.checks import data_dir_is_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_running_data_dir_and_its_database_are_private(db) -> None:
    assert _mode(settings.DATA_DIR) == 0o700
    for name in ("secret_key", "key_encryption_key"):
        if (settings.DATA_DIR / name).exists():
            assert _mode(settings.DATA_DIR / name) == 0o600
    if connection.vendor == "sqlite":
        # The configured database (the test run uses another file in the same dir).
        assert _mode(settings.DATA_DIR / "walle.sqlite3") == 0o600


def test_secure_tightens_a_world_readable_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "walle.sqlite3"
    db.write_text("x")
    os.chmod(db, 0o644)
    (data / "walle.sqlite3-wal").write_text("x")
    os.chmod(data / "walle.sqlite3-wal", 0o666)
    (data / "workspaces").mkdir(mode=0o755)
    assert len(datadir.problems(data)) == 4
    datadir.secure(data)
    assert _mode(data) == 0o700 and _mode(db) == 0o600 and _mode(data / "walle.sqlite3-wal") == 0o600
    assert _mode(data / "workspaces") == 0o700
    assert datadir.problems(data) == []


def test_a_new_sqlite_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "walle.sqlite3"
    old = os.umask(0o022)
    try:
        datadir.precreate_private_file(path)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_the_system_check_reports_what_others_can_read(settings, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    settings.DATA_DIR = data
    errors = data_dir_is_private()
    assert [e.id for e in errors] == ["walle.E001"] and str(data) in errors[0].msg
    assert all(isinstance(e, checks.Error) for e in errors)

"""Walle's own git, ssh and rsync read no configuration Walle did not write."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine import git, local, runtime


@pytest.fixture
def planted_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worker's HOME with a .gitconfig, an XDG git config and a .popt a hook once wrote."""
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".gitconfig").write_text("[user]\n\tname = PLANTED-GLOBAL\n[core]\n\thooksPath = /tmp/planted\n")
    (home / ".config" / "git" / "config").write_text("[user]\n\temail = planted-xdg@example.invalid\n")
    (home / ".popt").write_text("rsync alias --dry-run -n\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    return home


def test_git_sees_only_the_config_walle_passes(planted_home: Path) -> None:
    out = subprocess.run(
        ["git", "config", "--list", "--show-origin"], capture_output=True, text=True,
        env=git.git_env(None), cwd="/", check=True,
    ).stdout
    assert "PLANTED" not in out and "planted-xdg" not in out and "/tmp/planted" not in out
    origins = {line.split("\t", 1)[0] for line in out.splitlines()}
    assert origins == {"command line:"}
    assert "core.hookspath=/dev/null" in out.lower()


def test_git_ignores_replace_objects_and_grafts() -> None:
    env = git.git_env(None)
    assert env["GIT_NO_REPLACE_OBJECTS"] == "1" and env["GIT_GRAFT_FILE"] == "/dev/null"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null" and env["GIT_CONFIG_NOSYSTEM"] == "1"


def test_tools_get_walles_private_home_not_the_workers(planted_home: Path) -> None:
    env = local.tool_env()
    assert env["HOME"] == runtime.home() and not env["HOME"].startswith(str(planted_home))
    assert not os.path.exists(os.path.join(env["HOME"], ".popt"))
    assert os.stat(runtime.root()).st_mode & 0o777 == 0o700


def test_hooks_inherit_no_home_from_the_worker(planted_home: Path) -> None:
    assert "HOME" not in local.safe_env()

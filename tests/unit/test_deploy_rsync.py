"""rsync argv: pinned-key ssh, excludes from a file, link-dest, one word per value."""

from __future__ import annotations

import shlex
from pathlib import Path

from releases.deploy import rsync
from releases.deploy.plan import Target
from releases.deploy.ssh import KeyFiles

FILES = KeyFiles("/tmp/walle-ssh-x", "/tmp/walle-ssh-x/id", "/tmp/walle-ssh-x/known_hosts")


def argv(**changes: object) -> list[str]:
    values: dict = {
        "source_dir": "/ws/builds/20240102-030405-7", "target": Target(1, "127.0.0.14", 2214, "k"), "user": "www",
        "release_path": "/data/releases/20240102-030405-7", "files": FILES, "exclude_file": "/tmp/walle-ssh-x/excludes",
    }
    values.update(changes)
    return rsync.build_argv(**values)


def test_argv_shape() -> None:
    result = argv(link_dest="/data/releases/20240101-000000-6")
    assert result[:4] == ["rsync", "-a", "--delete", "-s"]
    assert "--exclude=.git" in result
    assert "--exclude-from=/tmp/walle-ssh-x/excludes" in result
    assert "--link-dest=/data/releases/20240101-000000-6" in result
    assert result[-3:] == ["--", "/ws/builds/20240102-030405-7/", "www@127.0.0.14:/data/releases/20240102-030405-7/"]


def test_no_link_dest_without_a_current_release() -> None:
    assert not any(word.startswith("--link-dest") for word in argv())


def test_remote_shell_pins_the_target_key_and_port() -> None:
    result = argv()
    ssh_words = shlex.split(result[result.index("-e") + 1])
    assert ssh_words[:3] == ["ssh", "-p", "2214"]
    assert "StrictHostKeyChecking=yes" in ssh_words
    assert "UserKnownHostsFile=/tmp/walle-ssh-x/known_hosts" in ssh_words
    assert ssh_words[ssh_words.index("-i") + 1] == "/tmp/walle-ssh-x/id"


def test_excludes_go_to_a_file_never_to_argv(tmp_path: Path) -> None:
    hostile = ["x; touch /tmp/pwned", "--checkpoint-action=exec=sh", "../../etc/shadow", "  node_modules  ", ""]
    path = rsync.write_excludes(str(tmp_path), hostile)
    assert Path(path).read_text().splitlines() == [
        "x; touch /tmp/pwned", "--checkpoint-action=exec=sh", "../../etc/shadow", "node_modules",
    ]
    words = argv(exclude_file=path)
    assert not any("touch" in w or "checkpoint" in w for w in words)

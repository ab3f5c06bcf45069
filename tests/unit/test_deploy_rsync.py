"""rsync argv: pinned-key ssh, excludes from a file, link-dest, one word per value."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from engine import rsync, stamps
from engine.plan import Target
from engine.ssh import KeyFiles

FILES = KeyFiles("/tmp/walle-ssh-x", "/tmp/walle-ssh-x/id", "/tmp/walle-ssh-x/known_hosts")


def argv(**changes: object) -> list[str]:
    values: dict = {
        "source_dir": "/ws/builds/20240102-030405-7",
        "target": Target(1, "127.0.0.14", 2214, "k"),
        "user": "www",
        "release_path": "/data/releases/20240102-030405-7",
        "files": FILES,
        "exclude_file": "/tmp/walle-ssh-x/excludes",
    }
    values.update(changes)
    return rsync.build_argv(**values)


def test_argv_shape() -> None:
    result = argv(link_dest="/data/releases/20240101-000000-6")
    assert result[:6] == ["rsync", "-a", "--no-owner", "--no-group", "--delete", "-s"]
    assert "--compress" in result
    # No --checksum: neither end reads every file of a release at every deploy.
    assert "--checksum" not in result and "-c" not in result
    assert "--exclude=.git" in result
    assert "--exclude-from=/tmp/walle-ssh-x/excludes" in result
    assert "--link-dest=/data/releases/20240101-000000-6" in result
    assert result[-3:] == ["--", "/ws/builds/20240102-030405-7/", "www@127.0.0.14:/data/releases/20240102-030405-7/"]


def test_compression_can_be_turned_off_for_a_fast_lan() -> None:
    assert not any(word == "--compress" or word.startswith("-z") for word in argv(compress=False))


def test_no_link_dest_without_a_current_release() -> None:
    assert not any(word.startswith("--link-dest") for word in argv())


def test_remote_shell_pins_the_target_key_and_port() -> None:
    result = argv()
    ssh_words = shlex.split(result[result.index("-e") + 1])
    assert ssh_words[:5] == ["ssh", "-F", "/dev/null", "-p", "2214"]
    assert "StrictHostKeyChecking=yes" in ssh_words
    assert "UserKnownHostsFile=/tmp/walle-ssh-x/known_hosts" in ssh_words
    assert ssh_words[ssh_words.index("-i") + 1] == "/tmp/walle-ssh-x/id"


def test_excludes_go_to_a_file_never_to_argv(tmp_path: Path) -> None:
    hostile = ["x; touch /tmp/pwned", "--checkpoint-action=exec=sh", "../../etc/shadow", "  node_modules  ", ""]
    path = rsync.write_excludes(str(tmp_path), hostile)
    assert Path(path).read_text().splitlines() == [
        "x; touch /tmp/pwned",
        "--checkpoint-action=exec=sh",
        "../../etc/shadow",
        "node_modules",
    ]
    words = argv(exclude_file=path)
    assert not any("touch" in w or "checkpoint" in w for w in words)


def local_copy(source: Path, dest: Path, link_dest: Path, tmp_path: Path) -> None:
    """Run build_argv's options with a local destination instead of ssh."""
    words = argv(source_dir=str(source), link_dest=str(link_dest), exclude_file=rsync.write_excludes(str(tmp_path), []))
    at = words.index("-e")
    options = [w for w in words[:at] if w != "-s"]
    subprocess.run([*options, "--", f"{source}/", f"{dest}/"], check=True, capture_output=True)


def test_link_dest_never_reuses_old_content_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    # A build (or git archive) gives every file one fixed time: two builds in
    # one second produce a changed file with equal size and mtime. The pipeline
    # stamps such files from their content before the copy, as here.
    old, new, dest = tmp_path / "old", tmp_path / "new", tmp_path / "dest"
    for directory, text in ((old, "v1\n"), (new, "v2\n")):
        directory.mkdir()
        (directory / "index.html").write_text(text)
        (directory / "same.txt").write_text("same\n")
        for path in directory.iterdir():
            os.utime(path, (1_700_000_000, 1_700_000_000))
        stamps.stamp_changed(str(directory), {})
    local_copy(new, dest, old, tmp_path)
    assert (dest / "index.html").read_text() == "v2\n"
    assert (dest / "same.txt").stat().st_ino == (old / "same.txt").stat().st_ino  # unchanged: hard-linked


def test_an_ipv6_target_is_bracketed_in_the_destination() -> None:
    result = argv(target=Target(1, "fd00::1", 22, "k"))
    assert result[-1] == "www@[fd00::1]:/data/releases/20240102-030405-7/"

"""Deploy key generation."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import paramiko
import pytest

from engine.keys import authorized_keys_line, generate_ed25519
from engine.ssh import fingerprint


def test_generated_key_is_openssh_ed25519_with_matching_public_line(tmp_path: Path) -> None:
    private, public_line, fp = generate_ed25519("walle-web")
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(private))
    assert public_line == f"ssh-ed25519 {key.get_base64()} walle-web"
    assert fp == fingerprint(public_line)
    key_file = tmp_path / "id"
    key_file.write_text(private)
    key_file.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == public_line.split()[:2]


def test_each_call_makes_a_new_key() -> None:
    assert generate_ed25519()[0] != generate_ed25519()[0]


def test_authorized_keys_line_replaces_the_comment() -> None:
    _, public_line, _ = generate_ed25519("old")
    assert authorized_keys_line(public_line, "walle@prod").split() == [*public_line.split()[:2], "walle@prod"]


@pytest.mark.parametrize("comment", ["a b", 'command="id"', "x\nssh-rsa AAAA"])
def test_comments_cannot_smuggle_options_or_lines(comment: str) -> None:
    _, public_line, _ = generate_ed25519()
    with pytest.raises(ValueError):
        authorized_keys_line(public_line, comment)

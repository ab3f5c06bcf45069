"""Deploy key generation: an ed25519 key pair in OpenSSH formats."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .ssh import fingerprint, parse_key_line

_COMMENT_RE = re.compile(r"^[A-Za-z0-9._@+=:-]{0,100}$")


def generate_ed25519(comment: str = "walle") -> tuple[str, str, str]:
    """Return (private key as OpenSSH text, public key line, SHA256 fingerprint).

    The private key is unencrypted: it is stored encrypted at rest by the
    caller and only ever decrypted inside the worker.
    """
    key = Ed25519PrivateKey.generate()
    private_text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public_line = authorized_keys_line(public.decode(), comment)
    return private_text, public_line, fingerprint(public_line)


def authorized_keys_line(public_line: str, comment: str) -> str:
    """``type base64 comment``, ready to paste into ~/.ssh/authorized_keys.

    The comment is restricted to a safe charset so the line stays one line and
    cannot smuggle authorized_keys options.
    """
    key_type, body = parse_key_line(public_line)
    if not _COMMENT_RE.fullmatch(comment):
        raise ValueError("key comment may only contain letters, digits and . _ @ + = : -")
    return f"{key_type} {body} {comment}".rstrip()

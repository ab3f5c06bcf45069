"""Pins that matter for security, checked so a downgrade cannot slip in."""

from importlib.metadata import version


def _tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def test_gitpython_has_the_fixes_for_repository_url_command_execution():
    # CVE-2022-24439 (fixed 3.1.30) and its bypass CVE-2023-40267 (fixed 3.1.32).
    assert _tuple(version("GitPython")) >= (3, 1, 32)


def test_paramiko_is_past_the_terrapin_era():
    # CVE-2023-48795 (Terrapin) mitigations landed in paramiko 3.4.0.
    assert _tuple(version("paramiko")) >= (3, 4, 0)

"""Form-level validation of what a Maintainer types in.

The rules themselves live in the engine (``releases.deploy.validate`` and
``releases.deploy.git``), which checks every plan again before it runs; here they
are only turned into Django ValidationErrors so bad input gets a clear error at
the form and is never saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from releases.deploy import git, validate


def _wrap(check: Callable[[], object]) -> None:
    try:
        check()
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def validate_abs_path(value: str) -> None:
    """An absolute, normalised path made of plain characters, and not ``/``."""
    _wrap(lambda: validate.check_abs_path("path", value))
    if value == "/":
        raise ValidationError(_("The filesystem root cannot be used here."))


def validate_webroot(value: str) -> None:
    _wrap(lambda: validate.check_webroot(value))


def validate_layout(webroot: str, release_library: str) -> None:
    _wrap(lambda: validate.check_layout(webroot, release_library))


def validate_run_user(value: str) -> None:
    _wrap(lambda: validate.check_user(value))


def validate_repo_url(value: str) -> None:
    """Only ssh://, https:// and scp-like user@host:path (blocks ext::, file:, options)."""
    _wrap(lambda: git.validate_repo_url(value))


def validate_exclude_line(value: str) -> None:
    if validate.has_control_chars(value):
        raise ValidationError(_("Exclude patterns cannot contain control characters."))


def validate_host_address(address: str) -> None:
    _wrap(lambda: validate.check_address(address))


@dataclass(frozen=True)
class HostAddress:
    address: str
    port: int


def parse_host_line(line: str) -> HostAddress:
    """Parse ``ip``, ``ip:port``, ``host`` or ``host:port`` (port 22 by default)."""
    address, sep, port_text = line.strip().partition(":")
    if sep and not port_text.isdigit():
        raise ValidationError(_("Malformed port in %(v)r: use ip or ip:port.") % {"v": line.strip()})
    port = int(port_text) if sep else 22
    if not 1 <= port <= 65535:
        raise ValidationError(_("Port out of range in %(v)r.") % {"v": line.strip()})
    try:
        validate.check_address(address)
    except ValueError:
        raise ValidationError(_("Malformed host %(v)r: use ip or ip:port.") % {"v": line.strip()}) from None
    return HostAddress(address, port)


def parse_host_lines(text: str) -> list[HostAddress]:
    """Parse a pasted host list; every malformed line is reported at once."""
    hosts: list[HostAddress] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        try:
            hosts.append(parse_host_line(line))
        except ValidationError as exc:
            errors.append(_("line %(n)d: %(e)s") % {"n": number, "e": " ".join(exc.messages)})
    if errors:
        raise ValidationError(errors)
    return list(dict.fromkeys(hosts))

"""Validation of the paths, hosts and URLs a Maintainer types in.

Values that pass here still only ever reach a shell as single quoted argv
elements; these checks exist so that bad input gets a clear error at the form
instead of a confusing failure in the middle of a deploy.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# Characters a remote path may contain; no whitespace, quotes, $, ;, `, etc.
_SAFE_PATH_RE = re.compile(r"^/[A-Za-z0-9._/@+-]*$")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_SCP_URL_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!/?-)[A-Za-z0-9._/~+-]+$")
_URL_RE = re.compile(r"^(ssh|https)://([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+(:\d{1,5})?/[A-Za-z0-9._/~+-]+$")


def validate_abs_path(value: str) -> None:
    """An absolute, normalised path made of plain characters, and not ``/``."""
    if not _SAFE_PATH_RE.match(value or ""):
        raise ValidationError(
            _("Use an absolute path of letters, digits and . _ - / @ + only (got %(v)r).")
            % {"v": value}
        )
    if posixpath.normpath(value) != value.rstrip("/") or "/../" in f"{value}/" or value.endswith("/.."):
        raise ValidationError(_("Path must be normalised, without '..' or '//' (got %(v)r).") % {"v": value})
    if value.rstrip("/") in ("", "/"):
        raise ValidationError(_("The filesystem root cannot be used here."))


def validate_webroot(value: str) -> None:
    validate_abs_path(value)
    if posixpath.dirname(value.rstrip("/")) == "/":
        raise ValidationError(_("The webroot's parent cannot be '/'; use e.g. /data/nginx/website."))


def validate_run_user(value: str) -> None:
    if not _USER_RE.match(value or ""):
        raise ValidationError(_("Not a valid Unix user name: %(v)r.") % {"v": value})


def validate_repo_url(value: str) -> None:
    """Allow ssh://, https:// and scp-like user@host:path URLs only.

    Blocks ext::, file:, option-looking hosts and ProxyCommand tricks
    (CVE-2022-24439, CVE-2017-1000117).
    """
    if not (_URL_RE.match(value or "") or _SCP_URL_RE.match(value or "")):
        raise ValidationError(
            _("Use an ssh://, https:// or user@host:path repository URL (got %(v)r).") % {"v": value}
        )


def validate_exclude_line(value: str) -> None:
    if any(ord(ch) < 32 for ch in value):
        raise ValidationError(_("Exclude patterns cannot contain control characters."))
    if value.startswith("-"):
        raise ValidationError(_("Exclude pattern %(v)r cannot start with '-'.") % {"v": value})


@dataclass(frozen=True)
class HostAddress:
    address: str
    port: int


def parse_host_line(line: str) -> HostAddress:
    """Parse ``ip``, ``ip:port``, ``host``, ``host:port`` or ``[v6]:port``."""
    text = line.strip()
    address, port = text, 22
    if text.startswith("["):
        match = re.match(r"^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$", text)
        if not match:
            raise ValidationError(_("Malformed host line %(v)r.") % {"v": line})
        address, port = match.group(1), int(match.group(2) or 22)
    elif text.count(":") == 1:
        address, _sep, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValidationError(_("Malformed port in host line %(v)r.") % {"v": line})
        port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValidationError(_("Port out of range in host line %(v)r.") % {"v": line})
    validate_host_address(address, line)
    return HostAddress(address, port)


def validate_host_address(address: str, line: str | None = None) -> None:
    try:
        ipaddress.ip_address(address)
        return
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(address) or address.startswith("-"):
        raise ValidationError(_("Malformed host %(v)r: use ip, ip:port or host:port.") % {"v": line or address})


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

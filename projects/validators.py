"""Form-level validation of what a Maintainer types in.

The rules themselves live in the engine (``engine.validate`` and
``engine.git``), which checks every plan again before it runs; here they
are only turned into Django ValidationErrors so bad input gets a clear error at
the form and is never saved.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from engine import git, health, validate

from .windows import is_valid_zone


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


def validate_health_path(value: str) -> None:
    """A path the health gate may send as is (no spaces, no second request line)."""
    _wrap(lambda: health.check_path(value))


def validate_host_header(value: str) -> None:
    _wrap(lambda: health.check_host_header(value))


def validate_health_command(value: str) -> None:
    # One line: a newline would be a second command the form does not show as one.
    if validate.has_control_chars(value):
        raise ValidationError(_("The health check command must be one line without control characters."))


def validate_exclude_line(value: str) -> None:
    if validate.has_control_chars(value):
        raise ValidationError(_("Exclude patterns cannot contain control characters."))


def _strictly_inside(path: str, root: str) -> bool:
    return posixpath.normpath(path).startswith(posixpath.normpath(root).rstrip("/") + "/")


def validate_workspace(value: str) -> None:
    """A checkout workspace lies inside WALLE_WORKSPACE_ROOT. Anywhere else it
    could be Walle's code or data dir, which the hook sandbox makes writable as
    the project's own workspace."""
    validate_abs_path(value)
    root = str(settings.WALLE_WORKSPACE_ROOT)
    if not _strictly_inside(value, root):
        raise ValidationError(
            _("A workspace must lie inside %(root)s (WALLE_WORKSPACE_ROOT), e.g. %(root)s/<slug>; "
              "leave it empty for that default.") % {"root": root}
        )
    # A symlink under the root must not lead back out of it.
    if not _strictly_inside(os.path.realpath(value), os.path.realpath(root)):
        raise ValidationError(_("%(path)s leads outside %(root)s through a symbolic link.") % {"path": value, "root": root})
    for protected in (settings.DATA_DIR, settings.BASE_DIR):
        if _strictly_inside(str(protected), value) or posixpath.normpath(str(protected)) == value:
            raise ValidationError(_("A workspace must not contain Walle's own code or data directory."))


def workspace_problem(path: str) -> str:
    """Why ``path`` may not be used as a workspace (see validate_workspace), or "".
    For runs and fetches of projects saved before the rule existed."""
    try:
        validate_workspace(path)
    except ValidationError as exc:
        return " ".join(exc.messages)
    return ""


# --- Host addresses.
#
# A Host record names one machine, and "is this host used by another group?" is
# answered by comparing records. That only works if one machine has one
# spelling: the C resolver reads 168364297, 10.9.2313, 0x0a.0.0.1 and 012.0.0.1
# all as 10.x addresses (inet_aton), and ::ffff:10.0.0.1 reaches 10.0.0.1 too.
# So IPv4 spellings other than dotted decimal are refused (the error names the
# address they stand for: 012 is octal there, which nobody means), IPv6 is
# stored compressed and lower-case, and names lower-case without a final dot.

_INET_PART_RE = re.compile(r"^(0[xX][0-9A-Fa-f]*|[0-9]+)$")


@dataclass(frozen=True)
class _Address:
    canonical: str
    ipv4_alias: bool = False  # an IPv4 address written in another form


def _inet_aton(text: str) -> str | None:
    """Dotted-decimal form of ``text`` if the resolver would read it as an IPv4
    address (inet_aton rules: 1-4 parts, each decimal, octal or hex), else None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_PART_RE.fullmatch(part) for part in parts):
        return _libc_inet_aton(text)
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0") and len(part) > 1:
            if not set(part) <= set("01234567"):
                return _libc_inet_aton(text)
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (5 - len(values)):
        return _libc_inet_aton(text)
    number = last
    for index, value in enumerate(head):
        number |= value << (24 - 8 * index)
    return str(ipaddress.IPv4Address(number))


def _libc_inet_aton(text: str) -> str | None:
    # Second opinion from the platform's own parser, which is what ssh uses.
    try:
        return socket.inet_ntoa(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


def _parse_address(value: str) -> _Address:
    text = (value or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        if "%" in text:
            raise ValidationError(_("IPv6 zone ids (such as %eth0) are not supported; use a global address."), code="invalid")
        try:
            ip = ipaddress.IPv6Address(text)
        except ValueError:
            raise ValidationError(_("%(v)r is not a host name or IP address.") % {"v": value}, code="invalid") from None
        if ip.ipv4_mapped is not None:
            return _Address(str(ip.ipv4_mapped), ipv4_alias=True)
        return _Address(ip.compressed)
    name = text[:-1] if text.endswith(".") else text
    ipv4 = _inet_aton(name)
    if ipv4 is not None:
        return _Address(ipv4, ipv4_alias=(text != ipv4))
    try:
        validate.check_address(name)
    except ValueError:
        raise ValidationError(_("%(v)r is not a host name or IP address.") % {"v": value}, code="invalid") from None
    return _Address(name.lower())


def canonical_address(value: str) -> str:
    """The one spelling of ``value`` Walle stores and compares: dotted-decimal
    IPv4 (whatever form it was written in), compressed lower-case IPv6, or a
    lower-case host name. Raises ValidationError if it is none of these."""
    return _parse_address(value).canonical


def clean_host_address(value: str) -> str:
    """The canonical form of an address being entered. IPv4 addresses written
    any other way than dotted decimal are refused, naming the address they
    stand for, rather than silently stored as something the user did not type."""
    parsed = _parse_address(value)
    if parsed.ipv4_alias:
        raise ValidationError(
            _("%(v)s is another way of writing the IPv4 address %(ip)s; enter it as %(ip)s.")
            % {"v": value.strip(), "ip": parsed.canonical},
            code="alias",
        )
    return parsed.canonical


def validate_host_address(address: str) -> None:
    clean_host_address(address)


@dataclass(frozen=True)
class HostAddress:
    address: str
    port: int


_BRACKETED_RE = re.compile(r"^\[([^\]]*)\](?::(.*))?$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")


def parse_host_line(line: str) -> HostAddress:
    """Parse ``ip``, ``ip:port``, ``host``, ``host:port``, ``[ipv6]:port`` or a
    bare IPv6 address (port 22 by default); the address comes back canonical."""
    text = line.strip()
    bracketed = _BRACKETED_RE.match(text)
    if bracketed:
        address, port_text = bracketed.group(1), bracketed.group(2)
    elif text.count(":") > 1:
        address, port_text = text, None  # a bare IPv6 address has no port
    else:
        address, sep, port_text = text.partition(":")
        port_text = port_text if sep else None
    if port_text is not None and not _PORT_RE.fullmatch(port_text):
        raise ValidationError(_("Malformed port in %(v)r: use ip, ip:port or [ipv6]:port.") % {"v": text})
    port = int(port_text) if port_text is not None else 22
    if not 1 <= port <= 65535:
        raise ValidationError(_("Port out of range in %(v)r.") % {"v": text})
    if bracketed and ":" not in address:
        raise ValidationError(_("Brackets are for IPv6 addresses only in %(v)r.") % {"v": text})
    try:
        canonical = clean_host_address(address)
    except ValidationError as exc:
        if exc.code == "alias":
            raise
        raise ValidationError(_("Malformed host %(v)r: use ip, ip:port or [ipv6]:port.") % {"v": text}) from None
    return HostAddress(canonical, port)


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


# --- Project secrets (environment variables for hooks).

SECRET_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
SECRET_MAX_BYTES = 4096


def validate_secret_name(value: str) -> None:
    if not SECRET_NAME_RE.fullmatch(value or ""):
        raise ValidationError(_("Use an environment variable name: A-Z, 0-9 and _, not starting with a digit."))
    if value.startswith("WALLE_"):
        raise ValidationError(_("Names starting with WALLE_ are reserved for the variables Walle sets itself."))


def validate_secret_value(value: str) -> None:
    if "\x00" in value:
        raise ValidationError(_("A secret cannot contain NUL bytes."))
    if len(value.encode()) > SECRET_MAX_BYTES:
        raise ValidationError(_("A secret may be at most %(n)d bytes.") % {"n": SECRET_MAX_BYTES})


def validate_time_zone(value: str) -> None:
    if not is_valid_zone(value):
        raise ValidationError(_("%(zone)s is not a known IANA time zone (e.g. Asia/Shanghai, UTC).") % {"zone": value})


def validate_weekdays(value: str) -> None:
    """Digits 0 (Monday) to 6 (Sunday), each at most once, at least one."""
    if not value:
        raise ValidationError(_("Pick at least one weekday."))
    if not set(value) <= set("0123456") or len(set(value)) != len(value):
        raise ValidationError(_("Weekdays are the digits 0 (Monday) to 6 (Sunday), each at most once."))

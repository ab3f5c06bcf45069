"""The health gate: is a host that just switched serving what it should?

An HTTP check (GET a path from the deploy host to the target's address, with
the site's Host header, expecting a status and optionally a text) and/or a
command run on the host. The values are checked here before any request, so
nothing a project saves can turn into another request line or header.
"""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass

# A path with an optional query: no spaces, no control characters, no
# "scheme://" (the gate only ever asks the target itself).
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*\Z")
# A host name or IPv4 literal with an optional port, as in a Host header.
_HOST_HEADER_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?\Z")
MAX_BODY = 1024 * 1024  # bytes read to look for the expected text
USER_AGENT = "walle-health-check"


@dataclass(frozen=True)
class HealthCheck:
    """What a switched host must pass before the next batch switches.

    ``path`` empty: no HTTP check; ``command`` empty: no command. A check
    passes on the first of ``1 + retries`` attempts that passes, with
    ``interval`` seconds between attempts.
    """

    path: str = ""
    port: int = 80
    host_header: str = ""
    expected_status: int = 200
    expected_text: str = ""
    timeout: int = 5
    retries: int = 2
    interval: float = 2.0
    command: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.path or self.command)


NO_CHECK = HealthCheck()


def check_path(path: str) -> str:
    if not _PATH_RE.fullmatch(path):
        raise ValueError(f"health check path {path!r} must start with '/' and hold no spaces or control characters")
    return path


def check_host_header(value: str) -> str:
    if value and not _HOST_HEADER_RE.fullmatch(value):
        raise ValueError(f"health check Host header {value!r} must be a host name, optionally with :port")
    return value


def check(spec: HealthCheck) -> None:
    """Raise ValueError for a check that cannot be sent as configured."""
    if spec.path:
        check_path(spec.path)
    check_host_header(spec.host_header)
    if not 100 <= spec.expected_status <= 599:
        raise ValueError(f"expected status {spec.expected_status} is not an HTTP status")
    if not 0 < spec.port < 65536:
        raise ValueError(f"health check port {spec.port} is out of range")
    if spec.timeout < 1 or spec.retries < 0 or spec.interval < 0:
        raise ValueError("health check timeout must be at least 1 s, retries and interval not negative")


def probe(address: str, spec: HealthCheck) -> tuple[bool, str]:
    """One HTTP attempt against ``address``: (passed, what was seen)."""
    host_header = spec.host_header or address
    conn = http.client.HTTPConnection(address, spec.port, timeout=spec.timeout)
    try:
        conn.request("GET", spec.path, headers={"Host": host_header, "User-Agent": USER_AGENT})
        response = conn.getresponse()
        body = response.read(MAX_BODY).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET {spec.path} (Host: {host_header}) failed: {exc or type(exc).__name__}"
    finally:
        conn.close()
    seen = f"GET {spec.path} (Host: {host_header}): HTTP {response.status}"
    if response.status != spec.expected_status:
        return False, f"{seen}, expected {spec.expected_status}"
    if spec.expected_text and spec.expected_text not in body:
        return False, f"{seen}, but the page lacks the expected text {spec.expected_text!r}"
    return True, seen

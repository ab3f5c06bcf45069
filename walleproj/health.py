"""Liveness (/healthz) and readiness (/readyz) for load balancers and systemd.

/healthz only says the web process answers: it touches nothing, so a slow
database never gets the web server restarted. /readyz checks what a deploy
needs end to end and names each check in its JSON body; a failed check says
what kind of error it was, never its message (which may carry a database URL,
a host name or a path that an unauthenticated caller should not learn).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.status import Stat

logger = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A readiness check found a problem it can describe without secrets."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict:
        return {"ok": self.ok, "detail": self.detail}


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_broker() -> str:
    broker = get_broker()
    if not broker.ping():
        raise CheckFailed("broker did not answer")
    return type(broker).__name__.lower()


def live_clusters() -> list:
    """django-q2 clusters whose heartbeat is fresh (their Stat expires 3 s after
    the last one) and that are not stopping."""
    return [s for s in Stat.get_all(get_broker()) if s.status not in (Conf.STOPPED, Conf.STOPPING)]


def check_cluster() -> str:
    clusters = live_clusters()
    if not clusters:
        raise CheckFailed("no django-q2 cluster has reported in the last 3 seconds; is `manage.py qcluster` running?")
    return f"{len(clusters)} live"


def check_data_dir() -> str:
    # A real write, not os.access: a full disk or a read-only remount passes access().
    with tempfile.NamedTemporaryFile(dir=settings.DATA_DIR, prefix=".readyz-") as probe:
        probe.write(b"ok")
        probe.flush()
        os.fsync(probe.fileno())
    return "writable"


def check_key_encryption_key() -> str:
    keys = list(settings.WALLE_KEY_ENCRYPTION_KEYS)
    path = settings.WALLE_KEY_ENCRYPTION_KEY_FILE
    if path is not None:
        # Settings read the file at start; a later chmod, unmount or restore
        # without the key must show here before the next worker start fails.
        try:
            on_disk = path.read_text().strip()
        except OSError as exc:
            raise CheckFailed(f"key file unreadable ({type(exc).__name__})") from None
        if on_disk != keys[0]:
            raise CheckFailed("key file changed since start; restart web and worker")
    try:
        fernets = [Fernet(key.encode()) for key in keys]
    except (ValueError, TypeError):
        raise CheckFailed("not a valid Fernet key") from None
    # A round trip with the newest key proves it can encrypt what Walle stores.
    if fernets[0].decrypt(fernets[0].encrypt(b"readyz")) != b"readyz":
        raise CheckFailed("key does not round-trip")
    return f"{len(keys)} key(s)"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "cluster": check_cluster,
    "data_dir": check_data_dir,
    "key_encryption_key": check_key_encryption_key,
}


def run_check(name: str, check: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, check())
    except CheckFailed as exc:
        return CheckResult(name, False, str(exc))
    except Exception as exc:  # any failure is "not ready"; the log keeps the details
        logger.warning("readiness check %s failed", name, exc_info=True)
        return CheckResult(name, False, f"error: {type(exc).__name__}")


def readiness() -> list[CheckResult]:
    return [run_check(name, check) for name, check in CHECKS.items()]


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = readiness()
    ok = all(r.ok for r in results)
    body = {"status": "ok" if ok else "fail", "checks": {r.name: r.as_json() for r in results}}
    return JsonResponse(body, status=200 if ok else 503)

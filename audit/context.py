"""Who is acting, and from where: the current request, kept for the recorder.

The middleware puts each request in a context variable, so a receiver deep in
a model save can name its actor without every caller passing it. DRF sets the
authenticated user on the underlying request too (``Request.user``'s setter),
so token API calls have their actor by the time anything is saved. Outside a
request (the worker, a management command) there is no actor.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

from walleproj.metrics import client_address

from .models import Origin

_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


@dataclass(frozen=True)
class Source:
    user: object | None
    origin: Origin
    address: str


def current_source() -> Source:
    """The acting user (None when anonymous or outside a request), the origin,
    and the client address (REMOTE_ADDR, or per WALLE_PROXY_COUNT the address
    the outermost proxy saw: the same rule as /metrics and login throttling)."""
    request = _request.get()
    if request is None:
        return Source(None, Origin.WORKER, "")
    user = getattr(request, "user", None)
    acting = user if user is not None and user.is_authenticated else None
    return Source(acting, Origin.WEB, client_address(request))

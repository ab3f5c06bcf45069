"""DRF adapters over the permission policy in :mod:`accounts.permissions`.

Deliberately not DjangoObjectPermissions/DjangoModelPermissions: those demand
model-wide permissions for writes (so per-project grants would get 403) and
ignore GET. Here lists are filtered by ``visible()`` in each view's
``get_queryset`` (an invisible object is a 404), and this class only asks
``can()`` for the one action a view declares.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .api_auth import ApiTokenAuthentication
from .permissions import Action, can, denial_reason


def check_object(request: Request, action: Action, obj: Any) -> None:
    """403 with the policy's reason unless ``request.user`` may do ``action``."""
    if not can(request.user, action, obj):
        raise exceptions.PermissionDenied(denial_reason(request.user, action, obj))


class WallePermission(BasePermission):
    """Authenticated users; per object, the action named in ``view.object_actions``.

    ``object_actions`` maps a viewset action name ("log", "check"...) to the
    policy Action it needs; anything unlisted needs only VIEW, which the
    visible() queryset already guarantees. Workflow endpoints stay at VIEW
    here on purpose: the workflow function calls ``require()`` itself, with
    rules (own ticket, rollback tickets) that only it knows.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        action = getattr(view, "object_actions", {}).get(getattr(view, "action", None), Action.VIEW)
        check_object(request, action, obj)
        return True


class PolicyErrorsMixin:
    """Keep the reason of a domain PermissionDenied (DRF would replace it with
    its generic text) so the client learns e.g. why self-approval is refused."""

    def handle_exception(self, exc: Exception):
        if isinstance(exc, DjangoPermissionDenied):
            exc = exceptions.PermissionDenied(str(exc) or None)
        return super().handle_exception(exc)  # type: ignore[misc]


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the Bearer token scheme in the OpenAPI schema (drf-spectacular
    registers extensions when the class is defined)."""

    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (walle_...)."}

"""DRF authentication by personal API token: ``Authorization: Bearer walle_…``.

Tokens are never accepted from the query string (they would land in logs).
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions

from .models import ApiToken

LAST_USED_PRECISION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."))
        token = ApiToken.lookup(parts[1].decode(errors="replace"))
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        now = timezone.now()
        # Kept to the minute: a write on every request would make the clients
        # polling with one token queue behind each other's row lock. The
        # condition is repeated in the update for requests racing each other.
        if token.last_used_at is None or token.last_used_at < now - LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=token.pk).exclude(last_used_at__gte=now - LAST_USED_PRECISION).update(
                last_used_at=now
            )
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Bearer"

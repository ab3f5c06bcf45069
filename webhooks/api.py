"""The endpoint GitHub, GitLab and Gitea deliver to: one URL per project.

No user authenticates here; the per-project secret does (HMAC signature or
GitLab token, compared in constant time). The answer comes at once; the git
work happens on the worker.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from walleproj.metrics import client_address

from . import receiving, vendors
from .models import ProjectWebhook, WebhookDelivery

# Push payloads are small (GitHub and GitLab list at most 20 commits); a
# larger body is refused before it is read.
MAX_BODY = 1024 * 1024


class WebhookThrottle(SimpleRateThrottle):
    """Per URL and client address, so a flood from one place does not lock
    the git server out of a project's URL."""

    scope = "webhook"
    rate = "60/min"

    def get_cache_key(self, request, view) -> str:
        # Walle's reading of the client address (WALLE_PROXY_COUNT), not DRF's,
        # which would take a client-written X-Forwarded-For as is.
        ident = f"{view.kwargs.get('hook_id', '')}:{client_address(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


Answer = inline_serializer("WebhookAnswer", fields={
    "outcome": serializers.ChoiceField(choices=WebhookDelivery.Outcome.choices),
    "delivery": serializers.IntegerField(allow_null=True),
    "detail": serializers.CharField(),
})
Problem = inline_serializer("WebhookProblem", fields={"detail": serializers.CharField()})


def _problem(message: str, code: int) -> Response:
    return Response({"detail": message}, status=code)


def _declared_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return MAX_BODY + 1  # unreadable: treated as too large, nothing is read


class WebhookReceiveView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [WebhookThrottle]

    @extend_schema(
        summary="Receive a GitHub, GitLab or Gitea push delivery",
        description="Signed with the webhook's secret (X-Hub-Signature-256, X-Gitea-Signature) or carrying it "
                    "(X-Gitlab-Token). 202: queued for the worker; 200: recorded and ignored, or a replay.",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={202: Answer, 200: Answer, 403: Problem, 404: Problem, 413: Problem, 429: Problem},
        auth=[],
    )
    def post(self, request: Request, hook_id: str) -> Response:
        hook = (
            ProjectWebhook.objects.select_related("project").filter(hook_id=hook_id, enabled=True)
            .exclude(secret_encrypted="").first()
        )
        if hook is None:
            return _problem(_("No such webhook, or it is disabled."), status.HTTP_404_NOT_FOUND)
        if _declared_length(request) > MAX_BODY:
            return _problem(_("The body is larger than 1 MiB."), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        vendor = vendors.detect(request.headers)
        body = request.body
        if vendor is None or not vendors.verify(vendor, request.headers, body, hook.secret()):
            receiving.reject(hook, vendor, client_address(request))
            return _problem(_("Wrong or missing signature or token."), status.HTTP_403_FORBIDDEN)
        received = receiving.receive(hook, vendor, request.headers, body)
        code = status.HTTP_202_ACCEPTED if received.outcome == WebhookDelivery.Outcome.QUEUED else status.HTTP_200_OK
        delivery = received.delivery.pk if received.delivery else None
        return Response({"outcome": received.outcome, "delivery": delivery, "detail": received.detail}, status=code)

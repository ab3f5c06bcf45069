"""Channels and deliveries over the API: thin adapters over
``notifications.channels``, ``notifications.sending`` and the policy.
Secrets are write-only: a response says whether one is set, never what it is."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.drf import PolicyErrorsMixin, WallePermission
from accounts.permissions import (
    Action,
    can_configure_channel,
    is_platform_admin,
    require,
    visible,
    visible_channels,
    visible_deliveries,
    visible_projects,
)
from projects.models import Environment

from . import channels, sending
from .models import SUBSCRIBABLE, Channel, Delivery, ProjectNotificationSettings


class ChannelSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=[(e.value, e.label) for e in SUBSCRIBABLE]),
                                   required=False)
    url = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=2000,
                                help_text="Webhook URL; write-only (it carries the robot's key).")
    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500,
                                   help_text="Signing secret; write-only.")
    has_secret = serializers.BooleanField(read_only=True)

    class Meta:
        model = Channel
        fields = ["id", "name", "kind", "project", "environment", "enabled", "events", "recipients", "url",
                  "secret", "url_hint", "has_secret", "created_at", "updated_at"]
        read_only_fields = ["url_hint", "created_at", "updated_at"]

    def get_fields(self) -> dict[str, serializers.Field]:
        # Choices from the policy: a project one may not configure is "invalid", like one that does not exist.
        fields = super().get_fields()
        request = self.context.get("request")
        user = request.user if request is not None else AnonymousUser()
        fields["project"].queryset = visible_projects(user, Action.CONFIGURE)
        if not is_platform_admin(user):
            fields["environment"].queryset = Environment.objects.none()
        return fields

    def _save(self, channel: Channel, data: dict[str, Any]) -> Channel:
        url, secret = data.pop("url", ""), data.pop("secret", "")
        for name, value in data.items():
            setattr(channel, name, value)
        try:
            return channels.save_channel(self.context["request"].user, channel, url=url, secret=secret)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None

    def create(self, validated_data: dict[str, Any]) -> Channel:
        return self._save(Channel(), validated_data)

    def update(self, instance: Channel, validated_data: dict[str, Any]) -> Channel:
        return self._save(instance, validated_data)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = ["id", "channel", "channel_name", "kind", "ticket", "event", "status", "attempts", "http_status",
                  "last_error", "created_at", "finished_at"]


class ChannelPermission(BasePermission):
    """Reading: whoever sees the channel (the queryset); anything else: the policy."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: Any, obj: Channel) -> bool:
        return request.method in SAFE_METHODS or can_configure_channel(request.user, obj)


class ChannelViewSet(PolicyErrorsMixin, viewsets.ModelViewSet):
    """Notification channels of projects (and environment defaults) you can see."""

    serializer_class = ChannelSerializer
    permission_classes = [ChannelPermission]

    def get_queryset(self) -> QuerySet[Channel]:
        queryset = Channel.objects.select_related("project", "environment").order_by("name", "pk")
        return visible_channels(self.request.user, queryset)

    def perform_destroy(self, instance: Channel) -> None:
        channels.delete_channel(self.request.user, instance)

    @extend_schema(request=None, responses=DeliverySerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test message now (one attempt) and return its delivery."""
        delivery = sending.send_test(request.user, self.get_object())
        return Response(DeliverySerializer(delivery).data)


@extend_schema(parameters=[
    OpenApiParameter("ticket", int, description="Only deliveries about this ticket."),
    OpenApiParameter("channel", int, description="Only deliveries to this channel."),
])
class DeliveryViewSet(PolicyErrorsMixin, viewsets.ReadOnlyModelViewSet):
    """Each notification sent (or tried) and its outcome."""

    serializer_class = DeliverySerializer

    def get_queryset(self) -> QuerySet[Delivery]:
        queryset = Delivery.objects.order_by("-created_at", "-pk")
        for name in ("ticket", "channel"):
            value = self.request.query_params.get(name)
            if value is not None:
                if not value.isdigit():
                    raise ValidationError({name: _("Give a numeric id.")})
                queryset = queryset.filter(**{f"{name}_id": int(value)})
        return visible_deliveries(self.request.user, queryset)


class ProjectSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProjectNotificationSettings
        fields = ["id", "project", "use_environment_defaults"]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        request = self.context.get("request")
        user = request.user if request is not None else AnonymousUser()
        fields["project"].queryset = visible_projects(user, Action.CONFIGURE)
        return fields


class ProjectSettingsViewSet(PolicyErrorsMixin, viewsets.ModelViewSet):
    """Whether a project's tickets also go to its environment's default channels
    (no entry: they do)."""

    serializer_class = ProjectSettingsSerializer
    permission_classes = [WallePermission]
    object_actions = {"update": Action.CONFIGURE, "partial_update": Action.CONFIGURE, "destroy": Action.CONFIGURE}

    def get_queryset(self) -> QuerySet[ProjectNotificationSettings]:
        queryset = ProjectNotificationSettings.objects.select_related("project").order_by("project__name", "pk")
        return visible(self.request.user, queryset, Action.VIEW_DETAILS)

    def perform_create(self, serializer: ProjectSettingsSerializer) -> None:
        require(self.request.user, Action.CONFIGURE, serializer.validated_data["project"])
        serializer.save()

    def perform_update(self, serializer: ProjectSettingsSerializer) -> None:
        # Moving the entry to another project needs CONFIGURE there too (also the field's choices).
        project = serializer.validated_data.get("project", serializer.instance.project)
        require(self.request.user, Action.CONFIGURE, project)
        serializer.save()

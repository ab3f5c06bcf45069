"""Channels (with a "Send test message" button), the project switch for
environment defaults, and the delivery history: thin adapters over
``notifications.channels``, ``notifications.sending`` and the policy."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms.models import BaseInlineFormSet
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from accounts import permissions
from accounts.admin import ScopedAdminMixin

from . import channels, sending
from .forms import ChannelForm
from .models import Channel, Delivery, ProjectNotificationSettings

RECENT_DELIVERIES = 20


class RecentDeliveries(BaseInlineFormSet):
    """Only the newest deliveries: a busy channel has thousands."""

    def get_queryset(self):
        return super().get_queryset()[:RECENT_DELIVERIES]


class DeliveryInline(admin.TabularInline):
    model = Delivery
    formset = RecentDeliveries
    fields = ["created_at", "event", "ticket", "status", "attempts", "http_status", "last_error"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-created_at", "-id"]
    verbose_name_plural = _("Recent deliveries (the newest 20; all under Notification deliveries)")

    def get_queryset(self, request):
        # An environment default's deliveries cover every project there: show
        # only those about tickets this user may see the details of.
        queryset = super().get_queryset(request).select_related("ticket")
        return permissions.visible_deliveries(request.user, queryset)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active  # the channel page itself is already checked

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "where", "enabled", "url_hint", "has_secret"]
    list_filter = ["kind", "enabled", "environment"]
    search_fields = ["name"]
    readonly_fields = ["url_hint", "secret_state"]
    inlines = [DeliveryInline]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "events"]}),
        (_("Where"), {"fields": ["project", "environment"]}),
        (_("Destination"), {"fields": ["url", "url_hint", "secret", "secret_state", "recipients"]}),
    ]

    @admin.display(description=_("where"))
    def where(self, obj) -> str:
        return obj.scope

    @admin.display(description=_("stored secret"))
    def secret_state(self, obj) -> str:
        return _("set (never shown)") if obj and obj.has_secret else _("not set")

    @admin.display(boolean=True, description=_("secret"))
    def has_secret(self, obj) -> bool:
        return obj.has_secret

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("project__environment", "environment")
        return permissions.visible_channels(request.user, queryset)

    def get_form(self, request, obj=None, change=False, **kwargs):
        return super().get_form(request, obj, change, **kwargs).for_user(request.user)

    def has_module_permission(self, request) -> bool:
        return request.user.is_active

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None:
            return request.user.is_active
        return permissions.visible_channels(request.user, Channel.objects.filter(pk=obj.pk)).exists()

    def has_add_permission(self, request) -> bool:
        return permissions.is_maintainer_somewhere(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return permissions.is_maintainer_somewhere(request.user)
        return permissions.can_configure_channel(request.user, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is None:
            return permissions.is_platform_admin(request.user)  # bulk delete: one check for all
        return permissions.can_configure_channel(request.user, obj)

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        channels.save_channel(request.user, obj, url=data.get("url", ""), secret=data.get("secret", ""))

    def delete_model(self, request, obj) -> None:
        channels.delete_channel(request.user, obj)

    def get_urls(self):
        test = self.admin_site.admin_view(require_POST(self.send_test_view))
        return [path("<int:pk>/test/", test, name="notifications_channel_test"), *super().get_urls()]

    def send_test_view(self, request, pk: int):
        channel = get_object_or_404(self.get_queryset(request), pk=pk)
        try:
            delivery = sending.send_test(request.user, channel)
        except PermissionDenied as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:notifications_channel_change", channel.pk)
        if delivery.status == Delivery.Status.SENT:
            status = f" (HTTP {delivery.http_status})" if delivery.http_status else ""
            self.message_user(request, _("Test message sent to %(name)s%(status)s.")
                              % {"name": channel.name, "status": status})
        else:
            self.message_user(request, _("Test message to %(name)s failed: %(error)s")
                              % {"name": channel.name, "error": delivery.last_error}, messages.ERROR)
        return redirect("admin:notifications_channel_change", channel.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        channel = self.get_object(request, object_id)
        extra = {"can_test": bool(channel) and permissions.can_configure_channel(request.user, channel)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


@admin.register(ProjectNotificationSettings)
class ProjectNotificationSettingsAdmin(ScopedAdminMixin, admin.ModelAdmin):
    list_display = ["project", "use_environment_defaults"]
    delete_action = permissions.Action.CONFIGURE

    def get_readonly_fields(self, request, obj=None):
        return ["project"] if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project":
            kwargs["queryset"] = permissions.visible_projects(request.user, permissions.Action.CONFIGURE)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        permissions.require(request.user, permissions.Action.CONFIGURE, obj.project)
        super().save_model(request, obj, form, change)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The delivery history: read-only for everyone."""

    list_display = ["created_at", "event", "channel_name", "kind", "ticket", "status", "attempts", "http_status",
                    "last_error"]
    list_filter = ["status", "event", "kind"]
    list_select_related = ["ticket"]
    search_fields = ["channel_name", "ticket__title", "last_error"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return permissions.visible_deliveries(request.user, super().get_queryset(request))

    def has_module_permission(self, request) -> bool:
        return request.user.is_active

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None:
            return request.user.is_active
        return permissions.visible_deliveries(request.user, Delivery.objects.filter(pk=obj.pk)).exists()

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

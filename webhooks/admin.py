from __future__ import annotations

from django.contrib import admin
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts import permissions
from accounts.admin import ScopedAdminMixin

from . import config
from .models import ProjectWebhook, WebhookDelivery

Action = permissions.Action


@admin.register(ProjectWebhook)
class ProjectWebhookAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """A webhook is project configuration: Maintainers (CONFIGURE) see and change it."""

    view_action = detail_action = change_action = delete_action = Action.CONFIGURE
    list_display = ["project", "enabled", "branch", "tag_pattern", "deploy_at_once", "acts_as", "rejected_count"]
    list_select_related = ["project", "acts_as"]
    fields = ["project", "enabled", "branch", "tag_pattern", "deploy_at_once",
              "acts_as", "rejected_count", "last_rejected_at", "deliveries"]

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None:  # the list: only for those who configure some project
            return permissions.can_anywhere(request.user, Action.CONFIGURE)
        return super().has_view_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        fixed = ["acts_as", "rejected_count", "last_rejected_at", "deliveries"]
        # The URL and secret belong to one project; another project gets its own webhook.
        return fixed if obj is None else ["project", *fixed]

    @admin.display(description=gettext_lazy("deliveries"))
    def deliveries(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        url = reverse("admin:webhooks_webhookdelivery_changelist") + f"?project__id__exact={obj.project_id}"
        return format_html('<a href="{}" id="webhook-deliveries">{}</a>', url, _("Deliveries of this project"))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project":
            projects = permissions.visible_projects(request.user, Action.CONFIGURE)
            kwargs["queryset"] = projects.filter(webhook__isnull=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        obj._shown_once = config.save_settings(request.user, obj)

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_page(request, obj, getattr(obj, "_shown_once", ""), _("Webhook created"))

    def get_urls(self):
        regenerate = self.admin_site.admin_view(require_POST(self.regenerate_view))
        return [
            path("<int:pk>/regenerate/", regenerate, name="webhooks_projectwebhook_regenerate"),
        ] + super().get_urls()

    def regenerate_view(self, request, pk: int):
        hook = get_object_or_404(self.get_queryset(request), pk=pk)
        return self._secret_page(request, hook, config.regenerate_secret(request.user, hook), _("New secret"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        hook = self.get_object(request, object_id)
        extra = {"webhook_url": request.build_absolute_uri(hook.path())} if hook else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _secret_page(self, request, hook: ProjectWebhook, secret: str, title: str):
        """The only page that ever shows the secret; not cached, not redirected to."""
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": hook, "title": title,
            "secret": secret, "webhook_url": request.build_absolute_uri(hook.path()),
        }
        response = TemplateResponse(request, "admin/webhooks/projectwebhook/secret.html", context)
        add_never_cache_headers(response)
        return response


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """What each delivery came to; a record, so nobody adds, changes or deletes one."""

    view_action = detail_action = Action.VIEW_DETAILS
    list_display = ["received_at", "project", "vendor", "event", "ref", "short_commit", "pusher", "outcome",
                    "ticket", "replays"]
    list_filter = ["outcome", "vendor", ("project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["project", "ticket"]
    search_fields = ["delivery_id", "ref", "commit", "pusher"]

    @admin.display(description=gettext_lazy("commit"))
    def short_commit(self, obj) -> str:
        return obj.commit[:8] or obj.claimed_commit[:8]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "body_sha256"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

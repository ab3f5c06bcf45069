"""Audit entries in the admin: view-only for everyone, superusers included."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from accounts import permissions

from .changes import as_text
from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_name", "origin", "source_address", "kind", "action", "project_name",
                    "object_repr", "changes_text"]
    list_filter = ["kind", "origin"]
    search_fields = ["actor_name", "object_repr", "project_name"]
    date_hierarchy = "created_at"
    actions = None  # no "delete selected"
    fields = ["created_at", "actor_name", "origin", "source_address", "kind", "action", "project_name",
              "object_type", "object_id", "object_repr", "changes_text", "note"]
    readonly_fields = fields

    @admin.display(description=_("changes"))
    def changes_text(self, obj: AuditEntry) -> str:
        return as_text(obj.readable_changes)

    def get_queryset(self, request):
        return permissions.visible_audit_entries(request.user, super().get_queryset(request))

    def has_module_permission(self, request) -> bool:
        return request.user.is_active

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

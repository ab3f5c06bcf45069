"""The admin site: open to every active user; each ModelAdmin asks the policy."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class WalleAdminSite(admin.AdminSite):
    site_header = "Walle"
    site_title = "Walle admin"
    index_title = "Configuration"

    def has_permission(self, request) -> bool:
        # Not only is_staff: Maintainers configure their projects here, and
        # every ModelAdmin filters by accounts.permissions.
        return request.user.is_active and request.user.is_authenticated


class WalleAdminConfig(AdminConfig):
    default_site = "walleproj.admin.WalleAdminSite"

"""The admin site: open to every active user; each ModelAdmin asks the policy."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _


class WalleAdminSite(admin.AdminSite):
    site_header = "Walle"
    site_title = _("Walle admin")
    index_title = _("Configuration")

    def has_permission(self, request) -> bool:
        # Not only is_staff: Maintainers configure their projects here, and
        # every ModelAdmin filters by accounts.permissions.
        return request.user.is_active and request.user.is_authenticated


class WalleAdminConfig(AdminConfig):
    default_site = "walleproj.admin.WalleAdminSite"

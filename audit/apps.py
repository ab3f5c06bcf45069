from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from . import receivers

        # Resolved here, not at import: the tracked models of apps installed
        # later (or not at all) are looked up once every app is loaded.
        receivers.connect_all()

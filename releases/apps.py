from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReleasesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "releases"
    verbose_name = _("Releases")

    def ready(self) -> None:
        from django.conf import settings

        from engine import runtime
        from walleproj import checks  # noqa: F401 - registers the system checks

        # Walle's own git/ssh/rsync get their HOME and key files in here:
        # inside the data dir, which no build hook can see.
        runtime.configure(str(settings.DATA_DIR / "private"))

"""First run: create the first platform admin and the platform deploy key.

No default credentials: the password comes from WALLE_ADMIN_PASSWORD or is
generated and printed once. Running it again changes nothing.
"""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from projects.keys import default_key
from releases.schedules import ensure_schedules
from walleproj.checks import hook_sandbox_available


class Command(BaseCommand):
    help = "Create the first admin (once) and the platform deploy key; print how to log in."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default=os.environ.get("WALLE_ADMIN_USER", "admin"))
        parser.add_argument("--email", default=os.environ.get("WALLE_ADMIN_EMAIL", "admin@localhost"))

    def handle(self, *args, username: str, email: str, **options) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin already exists; no account created.")
        else:
            password = os.environ.get("WALLE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            User.objects.create_superuser(username, email, password)
            self.stdout.write(self.style.SUCCESS(f"Created admin '{username}'."))
            if "WALLE_ADMIN_PASSWORD" not in os.environ:
                self.stdout.write(f"  password: {password}   (shown once; change it after logging in)")
        ensure_schedules()
        key = default_key()
        self.stdout.write("Deploy keys are per group: each group's key is shown on its page in the admin (Groups).")
        self.stdout.write("Install a group's key only on that group's target hosts and repositories.")
        self.stdout.write("The platform key, used only by projects a platform admin explicitly gives it to:")
        self.stdout.write(f"  {key.authorized_keys_line()}")
        # The same words as `manage.py check`: what happens to build hooks here.
        for problem in hook_sandbox_available():
            self.stdout.write(self.style.WARNING(f"{problem.msg} ({problem.hint})"))

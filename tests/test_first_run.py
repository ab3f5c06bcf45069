"""First run: no default credentials, secrets generated privately."""

from __future__ import annotations

import io
import re
import stat

from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from projects.models import DeployKey
from walleproj.settings import file_secret


def _init() -> str:
    out = io.StringIO()
    call_command("walle_init", stdout=out)
    return out.getvalue()


def test_first_admin_gets_a_random_password_shown_once(db, monkeypatch):
    monkeypatch.delenv("WALLE_ADMIN_PASSWORD", raising=False)
    first = _init()
    password = re.search(r"password: (\S+)", first).group(1)
    assert len(password) >= 12
    assert authenticate(username="admin", password=password) is not None
    for guess in ("admin", "Walle123", "spug.dev", "password"):
        assert authenticate(username="admin", password=guess) is None
    second = _init()
    assert "password" not in second
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_the_admin_password_can_come_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("WALLE_ADMIN_PASSWORD", "from-the-environment-1")
    output = _init()
    assert "from-the-environment-1" not in output
    assert authenticate(username="admin", password="from-the-environment-1") is not None


def test_the_deploy_key_line_is_printed_and_stored_encrypted(db):
    output = _init()
    key = DeployKey.objects.get(is_default=True)
    assert key.public_key in output
    assert "PRIVATE KEY" not in output and "PRIVATE KEY" not in key.private_key_encrypted
    assert key.private_key().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_generated_secrets_are_private_files_kept_across_runs(tmp_path):
    path = tmp_path / "secret_key"
    value = file_secret(path, lambda: "s3cret-value")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert file_secret(path, lambda: "another") == value


def test_first_run_warns_loudly_when_hooks_cannot_be_sandboxed_as_root(db, monkeypatch):
    from engine import sandbox

    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    monkeypatch.setattr(sandbox, "running_as_root", lambda: True)
    out = io.StringIO()
    call_command("walle_init", stdout=out)
    assert "bubblewrap (bwrap) is not installed" in out.getvalue()
    assert "Walle refuses to run them at all" in out.getvalue()


def test_first_run_says_nothing_about_the_sandbox_when_it_works(db, monkeypatch):
    from engine import sandbox

    monkeypatch.setattr(sandbox, "bwrap_path", lambda: "/usr/bin/bwrap")
    out = io.StringIO()
    call_command("walle_init", stdout=out)
    assert "bubblewrap" not in out.getvalue()

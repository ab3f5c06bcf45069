"""Deploy windows and freezes are edited on the environment's admin page, by
platform admins only; bad input is refused with a clear error and saves nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from projects.models import DeployFreeze, DeployWindow, Environment


def post(client, user, env: Environment, time_zone: str = "Asia/Shanghai", window: dict | None = None,
         freeze: dict | None = None):
    data = {
        "name": env.name, "slug": env.slug, "order": env.order, "deploy_needs_approval": "on",
        "rollback_needs_approval": "", "allow_self_approval": "", "approvals_required": "1", "time_zone": time_zone,
    }
    for prefix, row in (("deploy_windows", window), ("deploy_freezes", freeze)):
        data.update({f"{prefix}-TOTAL_FORMS": "1" if row else "0", f"{prefix}-INITIAL_FORMS": "0"})
        data.update({f"{prefix}-0-{name}": value for name, value in (row or {}).items()})
    client.force_login(user)
    return client.post(reverse("admin:projects_environment_change", args=[env.pk]), data)


MON_THU = {"weekdays": ["0", "1", "2", "3"], "start": "10:00", "end": "17:00"}
HOLIDAY = {"start": "2026-12-24", "end": "2026-12-26", "reason": "Christmas"}


def test_a_platform_admin_sets_the_zone_a_window_and_a_freeze(client, world):
    env = world.project.environment
    response = post(client, world.users["admin"], env, window=MON_THU, freeze=HOLIDAY)
    assert response.status_code == 302
    env.refresh_from_db()
    assert env.time_zone == "Asia/Shanghai"
    assert str(DeployWindow.objects.get(environment=env)) == "Mon-Thu 10:00-17:00"
    assert DeployFreeze.objects.get(environment=env).reason == "Christmas"


@pytest.mark.parametrize("persona", ["owner", "maintainer"])
def test_owners_and_maintainers_cannot_add_windows_or_freezes(client, world, persona):
    env = world.project.environment
    post(client, world.users[persona], env, window=MON_THU, freeze=HOLIDAY)
    env.refresh_from_db()
    assert env.time_zone == "UTC"
    assert not DeployWindow.objects.exists() and not DeployFreeze.objects.exists()


@pytest.mark.parametrize(("zone", "window", "freeze", "error"), [
    ("Asia/Atlantis", MON_THU, None, "is not a known IANA time zone"),
    ("UTC", {**MON_THU, "end": "10:00"}, None, "must close at another time than it opens"),
    ("UTC", {**MON_THU, "weekdays": []}, None, "This field is required."),
    ("UTC", None, {**HOLIDAY, "end": "2026-12-01"}, "The last day cannot come before the first day."),
])
def test_bad_input_is_refused_with_a_clear_error_and_saves_nothing(client, world, zone, window, freeze, error):
    env = world.project.environment
    response = post(client, world.users["admin"], env, time_zone=zone, window=window, freeze=freeze)
    assert response.status_code == 200 and error in response.content.decode()
    env.refresh_from_db()
    assert env.time_zone == "UTC"
    assert not DeployWindow.objects.exists() and not DeployFreeze.objects.exists()

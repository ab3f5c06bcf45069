"""The dashboard's "Live now" table: one row per project and live commit,
cell for cell as the template loop over model instances showed it (this test
passed unchanged on that version too)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.urls import reverse
from django.utils import timezone

from releases.models import DeployRun, Release, Ticket

from . import helpers


def live_cells(body: str) -> list[list[tuple[str, str]]]:
    """Each row of the live table's body as (opening tag, inner HTML) per cell."""
    module = body[body.index('id="live"'):]
    tbody = module[module.index("<tbody>"):module.index("</tbody>")]
    return [re.findall(r"(<td[^>]*>)(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", tbody, re.S)]


def release(ticket: Ticket, host, run: DeployRun | None, switched_at: datetime | None) -> Release:
    return Release.objects.create(project=ticket.project, host=host, name=f"r{ticket.pk}-{host.pk}",
                                  commit=ticket.commit, ticket=ticket, run=run, is_live=True, switched_at=switched_at)


def test_the_live_table_shows_each_project_and_commit_escaped_and_in_local_time(client, world):
    dev, maintainer = world.users["developer"], world.users["maintainer"]
    first, second, third = (helpers.make_host(f"10.0.9.{n}") for n in (1, 2, 3))
    shop = helpers.make_project(world.team, env="staging", hosts=[first, second, third], name="shop <eu>", slug="shop-eu")
    fixed = helpers.make_ticket(shop, dev, Ticket.Status.SUCCEEDED, title="Fix <b>\"bold\"</b> & 'co'", commit="1" * 40)
    fixed_run = DeployRun.objects.create(ticket=fixed, number=1, status=DeployRun.Status.SUCCEEDED, triggered_by=maintainer)
    # Two hosts on one commit: one row, shown by the first host's release.
    release(fixed, first, fixed_run, datetime(2025, 3, 1, 20, 30, tzinfo=UTC))
    release(fixed, second, fixed_run, datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
    older = helpers.make_ticket(shop, dev, Ticket.Status.SUCCEEDED, title="older", commit="2" * 40)
    release(older, third, None, None)  # no run, never switched: its author, no time
    site = helpers.make_ticket(world.project, world.users["owner"], Ticket.Status.SUCCEEDED, title="site", commit="3" * 40)
    site_run = DeployRun.objects.create(ticket=site, number=1, status=DeployRun.Status.SUCCEEDED, triggered_by=None)
    release(site, world.project.hosts.get(), site_run, datetime(2025, 6, 30, 23, 59, tzinfo=UTC))
    client.force_login(maintainer)

    with timezone.override(ZoneInfo("Asia/Shanghai")):
        body = client.get(reverse("dashboard")).content.decode()

    def link(ticket: Ticket, text: str) -> str:
        return f'<a href="{reverse("ticket_detail", args=[ticket.pk])}">#{ticket.pk} {text}</a>'

    sha, hide = '<td class="sha">', '<td class="hide-sm">'
    assert live_cells(body) == [
        [("<td>", "shop &lt;eu&gt;"), ("<td>", "staging"), (sha, "11111111"),
         ("<td>", link(fixed, "Fix &lt;b&gt;&quot;bold&quot;&lt;/b&gt; &amp; &#x27;co&#x27;")),
         (hide, "maintainer"), (hide, "2025-03-02 04:30"), ("<td>", "2")],
        [("<td>", "shop &lt;eu&gt;"), ("<td>", "staging"), (sha, "22222222"), ("<td>", link(older, "older")),
         (hide, "developer"), (hide, ""), ("<td>", "1")],
        [("<td>", "website"), ("<td>", "production"), (sha, "33333333"), ("<td>", link(site, "site")),
         (hide, "owner"), (hide, "2025-07-01 07:59"), ("<td>", "1")],
    ]
    assert "<b>" not in body

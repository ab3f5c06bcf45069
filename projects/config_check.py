"""The config check (检测): test a project's setup and pin host keys on first sight."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from django.utils import timezone
from django.utils.translation import gettext

from accounts.permissions import Action, require
from engine.checks import CheckReport, CheckResult, check_project
from engine.plan import Secret, Target
from engine.ssh import fingerprint
from engine.text import N_
from walleproj.i18n import translate

from .keys import key_for
from .models import Host, Project


def run_check(actor, project: Project) -> CheckReport:
    """Run every check; pin the keys of hosts (and the git server) seen for the
    first time, recording who pinned them and when. A changed key is never
    re-pinned here: a Maintainer must unpin it explicitly first."""
    require(actor, Action.CONFIGURE, project)
    hosts = list(project.hosts.filter(enabled=True))
    report = check_project(
        repo_url=project.repo_url, repo_host_key=project.repo_host_key,
        key=Secret(key_for(project).private_key()), workspace=project.effective_workspace,
        run_user=project.run_user, webroot=project.webroot,
        release_library=project.effective_release_library,
        targets=[Target(id=h.pk, address=h.address, port=h.port, host_key=h.host_key) for h in hosts],
        max_parallel=project.max_parallel,
    )
    report = only_pins_after_login(report, {h.pk: h.endpoint for h in hosts})
    now = timezone.now()
    for host_id, key_line in report.pinned.items():
        Host.objects.filter(pk=host_id, host_key="").update(
            host_key=key_line, host_key_fingerprint=fingerprint(key_line),
            host_key_pinned_by=actor, host_key_pinned_at=now,
        )
    if report.repo_host_key and not project.repo_host_key:
        Project.objects.filter(pk=project.pk, repo_host_key="").update(repo_host_key=report.repo_host_key)
    return report


def only_pins_after_login(report: CheckReport, endpoints: dict[int, str]) -> CheckReport:
    """Keep only the pins a successful login (or git read) stands behind.

    A key fetched from a machine Walle could not log in to might not be the
    machine the project means (a wrong or re-pointed address, someone in
    between); "the first successful check pins" is the documented rule. The
    engine reports every fetched key, so the rule is applied here.
    """
    logged_in = {r.host for r in report.results if r.name == "login" and r.ok}
    keep = {hid: key for hid, key in report.pinned.items() if endpoints.get(hid) in logged_in}
    dropped = {endpoints.get(hid) for hid in report.pinned if hid not in keep}
    repo_ok = any(r.name == "repository" and r.ok for r in report.results)
    results = [_not_pinned(r) if _is_dropped_pin(r, dropped, repo_ok) else r for r in report.results]
    return replace(report, results=results, pinned=keep, repo_host_key=report.repo_host_key if repo_ok else "")


def _is_dropped_pin(result: CheckResult, dropped: set, repo_ok: bool) -> bool:
    if result.name == "host key" and result.warning:
        return result.host in dropped
    return result.name == "repository host key" and result.warning and not repo_ok


def _not_pinned(result: CheckResult) -> CheckResult:
    seen = re.search(r"SHA256:\S+", result.message)
    return replace(
        result, message=N_("key {fingerprint} was not pinned: login did not succeed",
                           fingerprint=seen.group(0) if seen else ""),
        fix=N_("fix the login, then run the check again; it pins the key then"),
    )


@dataclass(frozen=True)
class CheckRow:
    """One result as the page shows it, in the reader's language."""

    result: CheckResult
    name: str
    message: str
    fix: str


def check_rows(report: CheckReport) -> list[CheckRow]:
    """The report's results translated for display; the engine marks its texts
    with N_ and cannot translate them itself (it never imports Django)."""
    # gettext("") would return the catalogue's header, so an empty text stays empty.
    return [CheckRow(r, gettext(r.name) if r.name else "", translate(r.message), translate(r.fix))
            for r in report.results]

"""The config check against real hosts: each problem is reported with a fix."""

from __future__ import annotations

import dataclasses

import pytest

from engine.checks import CheckReport, check_project
from engine.plan import Secret, Target
from engine.ssh import fingerprint
from tests.infra.hosts import GitServer, TargetHost
from tests.integration.test_engine_support import LIBRARY, PRIVATE_KEY, WEBROOT, Engine

pytestmark = pytest.mark.sshd


@pytest.fixture
def engine(hosts: list[TargetHost], git_server: GitServer, tmp_path, request: pytest.FixtureRequest) -> Engine:
    engine = Engine(hosts, git_server, tmp_path, request.node.name)
    engine.commit({"index.html": "v\n"})
    return engine


def run_check(engine: Engine, targets: tuple[Target, ...] | None = None, **changes: object) -> CheckReport:
    values: dict = {
        "repo_url": engine.git.url(engine.repo),
        "repo_host_key": engine.git.host_key,
        "key": Secret(PRIVATE_KEY),
        "workspace": str(engine.workspace),
        "run_user": "www",
        "webroot": WEBROOT,
        "release_library": LIBRARY,
        "targets": engine.targets() if targets is None else targets,
        "connect_timeout": 5,
    }
    values.update(changes)
    report = check_project(**values)
    assert PRIVATE_KEY.splitlines()[1] not in repr(report)
    return report


def failures(report: CheckReport) -> dict[tuple[str, str], str]:
    return {(r.host, r.name): r.message for r in report.results if not r.ok}


def test_a_healthy_project_passes_every_check(engine: Engine) -> None:
    report = run_check(engine)
    assert report.ok, failures(report)
    assert report.pinned == {} and report.repo_host_key == ""
    names = {(r.host, r.name) for r in report.results}
    for host in engine.hosts:
        for check in ("host key", "login", "rsync", "release library", "webroot parent", "webroot", "disk space"):
            assert (host.name, check) in names
    assert {("", "workspace"), ("", "repository"), ("", "tools")} <= names


def test_unpinned_keys_are_fetched_verified_and_returned_for_pinning(engine: Engine) -> None:
    targets = tuple(dataclasses.replace(t, host_key="") for t in engine.targets())
    report = run_check(engine, targets, repo_host_key="")
    assert report.ok, failures(report)
    assert report.pinned == {t.id: host.host_key for t, host in zip(targets, engine.hosts, strict=True)}
    assert report.repo_host_key == engine.git.host_key
    pinned_lines = [r for r in report.results if r.name == "host key" and r.warning]
    assert len(pinned_lines) == 3 and fingerprint(engine.hosts[0].host_key) in pinned_lines[0].message


def test_wrong_pinned_key_is_reported(engine: Engine) -> None:
    targets = list(engine.targets())
    targets[0] = dataclasses.replace(targets[0], host_key=engine.hosts[1].host_key)
    report = run_check(engine, tuple(targets))
    problems = failures(report)
    assert list(problems) == [("127.0.0.11", "host key")]
    assert "host key of 127.0.0.11 changed" in problems[("127.0.0.11", "host key")]
    assert report.pinned == {}


def test_real_directory_webroot_is_reported_with_a_fix(engine: Engine) -> None:
    engine.hosts[0].data_path(WEBROOT).mkdir()
    report = run_check(engine)
    assert list(failures(report)) == [("127.0.0.11", "webroot")]
    result = next(r for r in report.results if not r.ok)
    assert "real directory" in result.message and "mv " in result.fix


def test_missing_webroot_parent_is_reported(engine: Engine) -> None:
    report = run_check(engine, webroot="/data/missing/website")
    assert sorted(failures(report)) == sorted((h.name, "webroot parent") for h in engine.hosts)
    assert all("mkdir -p /data/missing" in r.fix for r in report.results if not r.ok)


def test_unwritable_release_library_is_reported(engine: Engine) -> None:
    report = run_check(engine, release_library="/data/not-allowed/releases")
    assert sorted(failures(report)) == sorted((h.name, "release library") for h in engine.hosts)


def test_wrong_run_user_cannot_log_in(engine: Engine) -> None:
    report = run_check(engine, run_user="nobody")
    assert {name for _, name in failures(report)} == {"login"}
    assert all("authorized_keys" in r.fix for r in report.results if not r.ok)


def test_unreachable_host_and_repository_are_reported(engine: Engine) -> None:
    down = Target(9, "127.0.0.15", 22, engine.hosts[0].host_key)
    report = run_check(engine, (down,), repo_url="ssh://git@127.0.0.10/srv/git/no-such-repo.git")
    problems = failures(report)
    assert ("127.0.0.15", "reachable") in problems and ("", "repository") in problems


def test_wrong_repository_host_key_is_reported(engine: Engine) -> None:
    report = run_check(engine, repo_host_key=engine.hosts[0].host_key)
    problems = failures(report)
    assert list(problems) == [("", "repository")]
    assert "Host key verification failed" in problems[("", "repository")]


def test_bad_settings_stop_the_check_before_any_host(engine: Engine) -> None:
    report = run_check(engine, webroot="/website")
    assert list(failures(report)) == [("", "settings")]
    assert len(report.results) == 1

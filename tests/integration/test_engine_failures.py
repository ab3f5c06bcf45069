"""Failures on real hosts: all or nothing before the switch, honest reports after it."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from engine import pipeline
from engine.plan import Hooks, HostState, Stage, Stream
from tests.infra.hosts import GitServer, TargetHost
from tests.integration.test_engine_support import (
    PRIVATE_KEY,
    WEBROOT,
    Engine,
    current_release,
    release_dir,
    releases_on,
)

pytestmark = pytest.mark.sshd

# The hook fails only on a host where the test put this file (each host has its own /data).
FAIL_HERE = "/data/nginx/fail-here"
FAIL_IF_MARKED = f"test ! -e {FAIL_HERE}"
POST_RELEASE_MARK = "touch /data/nginx/post-release-ran"


@pytest.fixture
def engine(hosts: list[TargetHost], git_server: GitServer, tmp_path, request: pytest.FixtureRequest) -> Engine:
    return Engine(hosts, git_server, tmp_path, request.node.name)


def mark(host: TargetHost) -> None:
    host.data_path(FAIL_HERE).write_text("")


def deploy_v1(engine: Engine) -> str:
    engine.commit({"index.html": "v1\n"}, "v1")
    first = engine.deploy()
    assert first.ok, first.error
    engine.commit({"index.html": "v2\n"}, "v2")
    engine.lines.clear()  # tests look only at the run under test
    return first.release_name


def assert_all_on(engine: Engine, release: str, text: str = "v1\n") -> None:
    for host in engine.hosts:
        assert current_release(host) == release, host.name
        assert host.http_get("/") == text


def test_pre_release_failure_on_one_host_changes_no_webroot(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    mark(engine.hosts[1])
    outcome = engine.deploy(hooks=Hooks(pre_release=(FAIL_IF_MARKED,), post_release=(POST_RELEASE_MARK,)))
    assert not outcome.ok
    assert outcome.error.startswith("nothing was switched: 127.0.0.12: pre_release: hook failed")
    assert_all_on(engine, v1)
    assert all(releases_on(host) == [v1] for host in engine.hosts), "new release dirs must be removed"
    states = {h.name: h.state for h in outcome.hosts}
    assert states == {"127.0.0.11": HostState.CLEANED, "127.0.0.12": HostState.FAILED, "127.0.0.13": HostState.CLEANED}
    assert all(h.release == v1 and h.previous_release == v1 for h in outcome.hosts)
    assert not any(host.data_path("/data/nginx/post-release-ran").exists() for host in engine.hosts)
    assert not engine.texts(stage=Stage.SWITCH)


def test_host_killed_mid_transfer_fails_cleanly(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    victim = engine.hosts[1]
    killed = threading.Event()
    killer = threading.Timer(0.3, victim.kill)

    def kill_when_transfer_starts(line: tuple) -> None:
        host, stage, stream, _ = line
        if host == victim.name and stage == Stage.TRANSFER and not killed.is_set():
            killed.set()
            killer.start()  # while rsync is running

    engine.on_log = kill_when_transfer_starts
    started = time.monotonic()
    outcome = engine.deploy(
        hooks=Hooks(post_deploy=("head -c 300M /dev/urandom > big.bin",), post_release=(POST_RELEASE_MARK,))
    )
    assert time.monotonic() - started < 120
    assert killed.is_set() and not outcome.ok
    killer.join()  # the kill must be over before the victim is started again
    assert "127.0.0.12" in outcome.error and "nothing was switched" in outcome.error
    by_name = {h.name: h for h in outcome.hosts}
    assert by_name["127.0.0.12"].state == HostState.FAILED
    assert "remove it by hand" in by_name["127.0.0.12"].error
    for host in (engine.hosts[0], engine.hosts[2]):
        assert by_name[host.name].state == HostState.CLEANED
        assert current_release(host) == v1 and releases_on(host) == [v1]
        assert host.http_get("/") == "v1\n"
    victim.start()
    assert current_release(victim) == v1 and victim.http_get("/") == "v1\n"
    assert not any(host.data_path("/data/nginx/post-release-ran").exists() for host in engine.hosts)
    assert any("rsync" in text for text in engine.texts(host=victim.name, stage=Stage.TRANSFER, stream=Stream.ERROR))


def test_failure_during_the_switch_is_reported_per_host(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    # On the marked host pre_release makes the webroot's directory read-only,
    # so the ln/mv switch itself fails there while the other hosts switch.
    mark(engine.hosts[2])
    lock = f"if [ -e {FAIL_HERE} ]; then chmod a-w /data/nginx; fi"
    outcome = engine.deploy(hooks=Hooks(pre_release=(lock,)))
    assert not outcome.ok
    by_name = {h.name: h for h in outcome.hosts}
    for host in engine.hosts[:2]:
        assert by_name[host.name].state == HostState.DONE
        assert by_name[host.name].release == outcome.release_name == current_release(host)
        assert host.http_get("/") == "v2\n"
    failed = by_name["127.0.0.13"]
    assert failed.state == HostState.FAILED and failed.release == v1 == current_release(engine.hosts[2])
    assert engine.hosts[2].http_get("/") == "v1\n"
    assert "Switched: 127.0.0.11, 127.0.0.12" in outcome.error
    assert (
        not engine.hosts[2]
        .data_path("/data/nginx/.website.walle-tmp-" + outcome.release_name.rsplit("-", 1)[1])
        .exists()
    )


def test_rolling_switch_stops_at_the_first_failing_host(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    mark(engine.hosts[1])
    outcome = engine.deploy(post_release_delay=1, hooks=Hooks(post_release=(FAIL_IF_MARKED,)))
    assert not outcome.ok
    states = [(h.state, h.release) for h in outcome.hosts]
    assert states == [
        (HostState.DONE, outcome.release_name),
        (HostState.SWITCHED, outcome.release_name),  # switched, post_release failed
        (HostState.PREPARED, v1),  # never switched
    ]
    assert "not switched" in outcome.hosts[2].error
    assert current_release(engine.hosts[2]) == v1
    assert "127.0.0.12: post_release" in outcome.error


def test_rollback_refuses_when_the_release_is_missing_on_one_host(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    v2 = engine.deploy()
    assert v2.ok
    shutil.rmtree(release_dir(engine.hosts[2], v1))
    outcome = engine.rollback(
        {host: v1 for host in engine.hosts},
        hooks=Hooks(pre_release=(POST_RELEASE_MARK,), post_release=(POST_RELEASE_MARK,)),
    )
    assert not outcome.ok
    assert outcome.error.startswith("rollback refused, nothing was changed: 127.0.0.13:")
    assert f"release {v1} is missing on 127.0.0.13" in outcome.error
    assert_all_on(engine, v2.release_name, "v2\n")
    assert not any(host.data_path("/data/nginx/post-release-ran").exists() for host in engine.hosts)


def test_rollback_refuses_when_a_host_is_down(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    v2 = engine.deploy()
    engine.hosts[0].kill()
    outcome = engine.rollback({host: v1 for host in engine.hosts})
    assert not outcome.ok and "127.0.0.11" in outcome.error
    for host in engine.hosts[1:]:
        assert current_release(host) == v2.release_name


def test_changed_host_key_is_refused_and_nothing_changes(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    plan = engine.plan()  # pinned to the current keys
    engine.hosts[1].rotate_host_key()
    outcome = engine.deploy_plan(plan)
    assert not outcome.ok
    assert "host key of 127.0.0.12 changed (expected SHA256:" in outcome.error
    assert "if this is expected, a Maintainer must re-pin it" in outcome.error
    assert_all_on(engine, v1)
    assert all(releases_on(host) == [v1] for host in engine.hosts)


def test_unpinned_host_is_refused_before_anything_runs(engine: Engine) -> None:
    engine.commit({"index.html": "v1\n"})
    targets = list(engine.targets())
    targets[2] = type(targets[2])(targets[2].id, targets[2].address, targets[2].port, "")
    outcome = engine.deploy(targets=tuple(targets))
    assert not outcome.ok and "127.0.0.13 has no pinned host key; run the config check to pin it" in outcome.error
    assert all(releases_on(host) == [] for host in engine.hosts)


def test_private_key_is_masked_even_when_a_hook_prints_it(engine: Engine) -> None:
    engine.commit({"index.html": "v\n"})
    body = [line for line in PRIVATE_KEY.splitlines() if not line.startswith("-----")]
    lines: list[tuple] = []
    plan = engine.plan(
        ticket_title=body[1],
        hooks=Hooks(pre_deploy=('echo "$WALLE_TICKET_TITLE"',), pre_release=('echo "$WALLE_TICKET_TITLE"; exit 1',)),
    )
    outcome = pipeline.deploy(plan, lambda *a: lines.append(a))
    assert not outcome.ok
    assert ("", Stage.PRE_DEPLOY, Stream.STDOUT, "[MASKED]") in lines
    assert all(line not in repr(lines) + repr(outcome) for line in body)
    assert current_release(engine.hosts[0]) == ""


def test_unreachable_host_fails_the_deploy_before_any_switch(engine: Engine) -> None:
    engine.commit({"index.html": "v1\n"})
    engine.hosts[2].kill()
    outcome = engine.deploy()
    assert not outcome.ok and "cannot connect to 127.0.0.13" in outcome.error
    for host in engine.hosts[:2]:
        assert current_release(host) == "" and releases_on(host) == []
        assert not os.path.lexists(host.data_path(WEBROOT))  # no webroot created either


def test_a_full_disk_on_a_target_is_said_in_plain_words(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    victim = engine.hosts[1]
    victim.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", "/data/releases"], check=True)
    try:
        engine.commit({"big.bin": "x" * 2_000_000}, "too big for the disk")
        outcome = engine.deploy()
    finally:
        victim.run(["umount", "-l", "/data/releases"], check=True)
    assert not outcome.ok
    failed = {h.name: h for h in outcome.hosts}[victim.name]
    assert failed.state == HostState.FAILED
    assert f"no space left on {victim.name}" in failed.error
    assert all(current_release(host) == v1 for host in engine.hosts)

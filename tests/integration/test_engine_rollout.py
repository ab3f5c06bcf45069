"""Rollouts on real hosts: batches, the health gate against each host's nginx,
switching back exactly the hosts a run switched, promotes and retries."""

from __future__ import annotations

import os

import pytest

from engine import pipeline
from engine.health import HealthCheck
from engine.pipeline import RunCallbacks
from engine.plan import Hooks, HostState, Stage, Stream
from engine.rollout import Rollout, Strategy
from tests.infra.hosts import GitServer, TargetHost
from tests.integration.test_engine_support import LIBRARY, WEBROOT, Engine, current_release, releases_on

pytestmark = pytest.mark.sshd

# pre_release breaks the page only on a host where the test put this file.
BREAK_HERE = "/data/nginx/break-here"
BREAK_IF_MARKED = f"if [ -e {BREAK_HERE} ]; then echo broken > index.html; fi"
FAIL_IF_MARKED = f"test ! -e {BREAK_HERE}"
CANARY_THEN_ONE_BY_ONE = Rollout(Strategy.CANARY, canary=1, batch_size=1)


@pytest.fixture
def engine(hosts: list[TargetHost], git_server: GitServer, tmp_path, request: pytest.FixtureRequest) -> Engine:
    return Engine(hosts, git_server, tmp_path, request.node.name)


def page_check(engine: Engine, text: str, **changes: object) -> HealthCheck:
    """The gate against each host's own nginx (every test host listens on one port)."""
    ports = {host.http_port for host in engine.hosts}
    assert len(ports) == 1, f"the test hosts serve HTTP on different ports: {ports}"
    values: dict = dict(path="/", port=ports.pop(), host_header="www.example.test", expected_text=text,
                        timeout=5, retries=1, interval=0.2)
    return HealthCheck(**(values | changes))


def deploy_v1(engine: Engine) -> str:
    engine.commit({"index.html": "v1\n"}, "v1")
    first = engine.deploy()
    assert first.ok, first.error
    engine.commit({"index.html": "v2\n"}, "v2")
    engine.lines.clear()
    return first.release_name


def mark(host: TargetHost) -> None:
    host.data_path(BREAK_HERE).write_text("")


def switch_lines(engine: Engine) -> list[str]:
    return engine.texts(host="", stage=Stage.SWITCH)


def test_a_canary_rollout_switches_batch_by_batch_after_each_gate(engine: Engine) -> None:
    deploy_v1(engine)
    outcome = engine.deploy(rollout=Rollout(Strategy.CANARY, canary=1, batch_size=2),
                            health=page_check(engine, "v2"))
    assert outcome.ok, outcome.error
    assert all(host.http_get("/") == "v2\n" for host in engine.hosts)
    texts = switch_lines(engine)
    assert texts.index("batch 1/2: switching 127.0.0.11") < texts.index("batch 1/2 done: 127.0.0.11")
    assert texts.index("batch 1/2 done: 127.0.0.11") < texts.index("batch 2/2: switching 127.0.0.12, 127.0.0.13")
    # The gate ran against each host's nginx with the site's Host header.
    for host in engine.hosts:
        assert "GET / (Host: www.example.test): HTTP 200" in engine.texts(host=host.name, stage=Stage.HEALTH_CHECK)
        assert "health check passed" in engine.texts(host=host.name, stage=Stage.HEALTH_CHECK)
    # The canary was checked before the second batch switched.
    order = [(h, t) for h, s, _, t in engine.lines if s in (Stage.HEALTH_CHECK, Stage.SWITCH)]
    assert order.index(("127.0.0.11", "health check passed")) < order.index(
        ("", "batch 2/2: switching 127.0.0.12, 127.0.0.13"))
    assert not any(p.name.endswith(".walle-prepared") for p in engine.hosts[0].data_path(LIBRARY).iterdir())


def test_a_release_lacking_the_expected_text_on_one_host_switches_back_exactly_the_switched_hosts(
    engine: Engine,
) -> None:
    v1 = deploy_v1(engine)
    mark(engine.hosts[1])  # the second batch's page lacks "v2" there
    outcome = engine.deploy(rollout=CANARY_THEN_ONE_BY_ONE, health=page_check(engine, "v2"),
                            hooks=Hooks(pre_release=(BREAK_IF_MARKED,)))
    assert not outcome.ok
    assert outcome.failed_batch == "2/3"
    assert outcome.error.startswith("batch 2/3: health check failed on 127.0.0.12: GET / (Host: www.example.test): "
                                    "HTTP 200, but the page lacks the expected text 'v2'")
    by_name = {h.name: h for h in outcome.hosts}
    # The canary and the failing host were switched, and both went back to v1.
    for host in engine.hosts[:2]:
        assert by_name[host.name].state == HostState.REVERTED
        assert by_name[host.name].release == v1 == current_release(host)
        assert host.http_get("/") == "v1\n"
    # The third host was never switched: still v1, its new release prepared, untouched.
    third = by_name["127.0.0.13"]
    assert third.state == HostState.PREPARED and "not switched" in third.error
    assert current_release(engine.hosts[2]) == v1
    assert "health_check: GET / (Host: www.example.test): HTTP 200, but the page lacks" in by_name["127.0.0.12"].error
    errors = engine.texts(host="127.0.0.12", stage=Stage.HEALTH_CHECK, stream=Stream.ERROR)
    assert errors and "lacks the expected text" in errors[0]
    assert "switching back 127.0.0.11, 127.0.0.12 because health check failed on 127.0.0.12" in " ".join(
        switch_lines(engine))


def test_a_failed_gate_on_a_first_deploy_removes_the_new_webroot_link(engine: Engine) -> None:
    engine.commit({"index.html": "v1\n"})
    outcome = engine.deploy(health=page_check(engine, "not on the page"))
    assert not outcome.ok and outcome.failed_batch == "1/1"
    assert [h.state for h in outcome.hosts] == [HostState.REVERTED] * 3
    assert not any(os.path.lexists(host.data_path(WEBROOT)) for host in engine.hosts)


def test_a_command_gate_runs_on_the_host_as_the_run_user_with_its_output_logged(engine: Engine) -> None:
    deploy_v1(engine)
    mark(engine.hosts[2])
    command = 'echo "checking as $(id -un) in $PWD"; grep -q v2 index.html'
    outcome = engine.deploy(health=HealthCheck(command=command, retries=0),
                            hooks=Hooks(pre_release=(BREAK_IF_MARKED,)))
    assert not outcome.ok and outcome.failed_batch == "1/1"
    assert f"checking as www in {WEBROOT}" in engine.texts(host="127.0.0.11", stage=Stage.HEALTH_CHECK)
    assert "the check command failed" in outcome.error and "127.0.0.13" in outcome.error
    assert all(host.http_get("/") == "v1\n" for host in engine.hosts)


def test_a_rollout_waits_for_the_promote_and_goes_on_only_after_it(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    asked: list[tuple[int, int, str]] = []

    def promote(number: int, total: int) -> str:
        # While the run waits, the canary serves the new release and the others the old one.
        asked.append((number, total, engine.hosts[1].http_get("/")))
        assert engine.hosts[0].http_get("/") == "v2\n"
        return ""

    plan = engine.plan(rollout=Rollout(Strategy.CANARY, promote=True), health=page_check(engine, "v2"))
    outcome = pipeline.deploy(plan, engine.log, RunCallbacks(await_promote=promote))
    assert outcome.ok, outcome.error
    assert asked == [(2, 2, "v1\n")]
    assert "waiting for a promote before batch 2/2 (127.0.0.12, 127.0.0.13)" in switch_lines(engine)
    assert all(host.http_get("/") == "v2\n" for host in engine.hosts)
    assert all(current_release(host) != v1 for host in engine.hosts)


def test_no_promote_in_time_switches_the_canary_back(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    plan = engine.plan(rollout=Rollout(Strategy.CANARY, promote=True))
    outcome = pipeline.deploy(plan, engine.log, RunCallbacks(await_promote=lambda n, t: "no promote within 1 s"))
    assert not outcome.ok and outcome.failed_batch == "2/2"
    assert outcome.error == "batch 2/2: no promote within 1 s"
    assert [h.state for h in outcome.hosts] == [HostState.REVERTED, HostState.PREPARED, HostState.PREPARED]
    assert all(current_release(host) == v1 for host in engine.hosts)
    # No promote in time is a failure, and the console says so.
    assert engine.texts(host="", stage=Stage.FINISH, stream=Stream.ERROR) == ["failed: batch 2/2: no promote within 1 s"]


def test_a_cancel_instead_of_a_promote_switches_the_canary_back_and_reads_as_a_stop(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    plan = engine.plan(rollout=Rollout(Strategy.CANARY, promote=True))
    stop = RunCallbacks(await_promote=lambda n, t: pipeline.Cancelled("cancelled by alice"))
    outcome = pipeline.deploy(plan, engine.log, stop)
    # The run did not succeed, and its error still says where and by whom it was stopped.
    assert not outcome.ok and outcome.error == "batch 2/2: cancelled by alice"
    assert [h.state for h in outcome.hosts] == [HostState.REVERTED, HostState.PREPARED, HostState.PREPARED]
    assert all(current_release(host) == v1 for host in engine.hosts)
    # A person's choice, not a failure: no error line of Walle's own, and the last word is a stop.
    assert engine.texts(host="", stream=Stream.ERROR) == []
    assert "cancelled by alice" in switch_lines(engine)
    assert engine.texts(host="", stage=Stage.FINISH) == ["stopped before batch 2/2: cancelled by alice"]


def test_a_retry_reuses_complete_copies_and_repeats_only_the_failed_hosts_steps(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    mark(engine.hosts[1])
    # The marked host fails last, so the others finish preparing (a failure stops hosts still at work).
    late_failure = f"if [ -e {BREAK_HERE} ]; then sleep 3; exit 1; fi"
    first_plan = engine.plan(keep_prepared=True, hooks=Hooks(pre_release=(late_failure,)))
    failed = engine.deploy_plan(first_plan)
    assert not failed.ok and "nothing was switched" in failed.error
    name = first_plan.release_name
    # The prepared hosts kept their release for the retry; the failed host's was removed.
    assert [name in releases_on(host) for host in engine.hosts] == [True, False, True]
    assert all(current_release(host) == v1 for host in engine.hosts)
    # A cut copy (no marker) on the third host must not be trusted.
    engine.hosts[2].data_path(f"{LIBRARY}/.{name}.walle-prepared").unlink()
    engine.hosts[1].data_path(BREAK_HERE).unlink()
    engine.lines.clear()
    retry = engine.deploy_plan(first_plan.__class__(**{**vars(first_plan), "reuse_prepared": True}))
    assert retry.ok, retry.error
    assert retry.release_name == name
    assert all(current_release(host) == name and host.http_get("/") == "v2\n" for host in engine.hosts)
    prepare = {h.name: " ".join(engine.texts(host=h.name, stage=Stage.PREPARE)) for h in engine.hosts}
    assert "reusing" in prepare["127.0.0.11"] and "an earlier run prepared it completely" in prepare["127.0.0.11"]
    assert "copying it afresh" in prepare["127.0.0.13"]
    assert not engine.texts(host="127.0.0.11", stage=Stage.TRANSFER)  # not copied again
    assert engine.texts(host="127.0.0.12", stage=Stage.TRANSFER) and engine.texts(host="127.0.0.13",
                                                                                    stage=Stage.TRANSFER)


def test_a_retry_after_a_failed_switch_completes_the_remaining_hosts(engine: Engine) -> None:
    v1 = deploy_v1(engine)
    mark(engine.hosts[1])
    plan = engine.plan(keep_prepared=True, post_release_delay=1, hooks=Hooks(post_release=(FAIL_IF_MARKED,)))
    failed = engine.deploy_plan(plan)
    assert [h.state for h in failed.hosts] == [HostState.DONE, HostState.SWITCHED, HostState.PREPARED]
    engine.hosts[1].data_path(BREAK_HERE).unlink()
    engine.lines.clear()
    done = frozenset(h.target_id for h in failed.hosts if h.state == HostState.DONE)
    retry = engine.deploy_plan(plan.__class__(**{**vars(plan), "reuse_prepared": True, "done_targets": done}))
    assert retry.ok, retry.error
    assert all(current_release(host) == plan.release_name for host in engine.hosts)
    assert "finished by an earlier run" in " ".join(engine.texts(host="127.0.0.11", stage=Stage.PREPARE))
    assert not engine.texts(host="127.0.0.11", stage=Stage.POST_RELEASE)  # its steps are not repeated
    assert engine.texts(host="127.0.0.12", stage=Stage.POST_RELEASE)
    assert not any(engine.texts(host=h.name, stage=Stage.TRANSFER) for h in engine.hosts)
    assert current_release(engine.hosts[0]) != v1

"""Hooks on real hosts: order, working directories, WALLE_* values, timeouts, rolling switch."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.plan import Hooks, HostState, Stage, Stream
from tests.infra.hosts import GitServer, TargetHost
from tests.integration.test_engine_support import LIBRARY, WEBROOT, Engine, current_release, releases_on

pytestmark = pytest.mark.sshd

TITLE = '"; id; " $(touch /tmp/walle-engine-title) `id` \'x'
BRANCH = "x$(touch${IFS}/tmp/walle-engine-branch)"
MARKERS = [Path("/tmp/walle-engine-title"), Path("/tmp/walle-engine-branch")]


@pytest.fixture
def engine(hosts: list[TargetHost], git_server: GitServer, tmp_path, request: pytest.FixtureRequest) -> Engine:
    return Engine(hosts, git_server, tmp_path, request.node.name)


def test_hooks_run_in_order_where_documented_with_literal_values(engine: Engine, tmp_path: Path) -> None:
    for marker in MARKERS:
        marker.unlink(missing_ok=True)
    sha = engine.commit({"index.html": "h\n"}, "hostile branch", branch=BRANCH)
    # Deploy-host hooks may write only their build dir, so they record their
    # order there; the file then travels to every target with the release.
    hooks = Hooks(
        pre_deploy=('echo "pre_deploy $PWD $(cat index.html)" >> local-order', 'echo "title=$WALLE_TICKET_TITLE"'),
        post_deploy=('echo "post_deploy $PWD $(cat index.html)" >> local-order',),
        pre_release=('echo "pre_release $PWD $(cat index.html)" >> /data/nginx/hooks.log', "env | grep ^WALLE_ | sort"),
        post_release=('echo "post_release $PWD $(pwd -P)" >> /data/nginx/hooks.log', 'echo "branch=$WALLE_BRANCH"'),
    )
    plan = engine.plan(ticket_title=TITLE, ref=BRANCH, hooks=hooks)
    outcome = engine.deploy_plan(plan)
    assert outcome.ok, outcome.error
    release = f"{LIBRARY}/{plan.release_name}"
    build = f"{plan.workspace}/builds/{plan.release_name}"
    for host in engine.hosts:
        order = host.data_path(f"{release}/local-order").read_text().splitlines()
        assert order == [f"pre_deploy {build} h", f"post_deploy {build} h"]
        assert host.data_path("/data/nginx/hooks.log").read_text().splitlines() == [
            f"pre_release {release} h",
            f"post_release {WEBROOT} {release}",
        ]
        env_lines = engine.texts(host=host.name, stage=Stage.PRE_RELEASE, stream=Stream.STDOUT)
        assert env_lines == sorted(
            [
                "WALLE_BRANCH=" + BRANCH,
                f"WALLE_COMMIT={sha}",
                "WALLE_DEPLOY_USER=alice",
                "WALLE_ENVIRONMENT=production",
                "WALLE_PROJECT=website",
                f"WALLE_RELEASE={plan.release_name}",
                f"WALLE_RELEASE_PATH={release}",
                "WALLE_TAG=",
                f"WALLE_TICKET_ID={plan.ticket_id}",
                f"WALLE_TICKET_TITLE={TITLE}",
                f"WALLE_WEBROOT={WEBROOT}",
            ]
        )
        assert engine.texts(host=host.name, stage=Stage.POST_RELEASE, stream=Stream.STDOUT) == [f"branch={BRANCH}"]
    assert engine.texts(host="", stage=Stage.PRE_DEPLOY, stream=Stream.STDOUT) == [f"title={TITLE}"]
    assert not any("uid=" in text for text in engine.texts())
    assert not any(marker.exists() for marker in MARKERS)
    # Build dir removed after the run; the mirror stays for the next one.
    assert not Path(build).exists() and Path(plan.workspace, "mirror.git").is_dir()


def test_every_host_is_prepared_before_any_host_switches(engine: Engine) -> None:
    engine.commit({"index.html": "v\n"})
    outcome = engine.deploy(hooks=Hooks(pre_release=("sleep 0.5",)))
    assert outcome.ok, outcome.error
    stages = [stage for host, stage, _, _ in engine.lines if host]
    last_pre_release = max(i for i, stage in enumerate(stages) if stage == Stage.PRE_RELEASE)
    first_switch = min(i for i, stage in enumerate(stages) if stage == Stage.SWITCH)
    assert last_pre_release < first_switch


def test_post_release_delay_switches_hosts_one_after_another(engine: Engine) -> None:
    engine.commit({"index.html": "v\n"})
    outcome = engine.deploy(
        post_release_delay=2, hooks=Hooks(post_release=("date +%s.%N > /data/nginx/post_release_at",))
    )
    assert outcome.ok, outcome.error
    times = [float(host.data_path("/data/nginx/post_release_at").read_text()) for host in engine.hosts]
    assert times == sorted(times)
    assert all(later - earlier >= 1.9 for earlier, later in zip(times, times[1:], strict=False))
    # Host 2 switched only after host 1's post_release had run.
    events = [(host, stage) for host, stage, _, _ in engine.lines if host]
    first_host, second_host = engine.hosts[0].name, engine.hosts[1].name
    assert events.index((first_host, Stage.POST_RELEASE)) < events.index((second_host, Stage.SWITCH))


def test_a_hanging_hook_is_killed_at_the_timeout_and_nothing_switches(engine: Engine) -> None:
    engine.commit({"index.html": "v1\n"})
    first = engine.deploy()
    started = time.monotonic()
    outcome = engine.deploy(command_timeout=3, hooks=Hooks(pre_release=("sleep 100 | cat",)))
    assert time.monotonic() - started < 60
    assert not outcome.ok and "timed out" in outcome.error
    for host in engine.hosts:
        assert current_release(host) == first.release_name
        assert releases_on(host) == [first.release_name]
        assert host.run(["pgrep", "-x", "sleep"]).returncode == 1, "the hook's sleep survived the timeout"


def test_failed_post_deploy_stops_before_any_host(engine: Engine) -> None:
    engine.commit({"index.html": "v\n"})
    outcome = engine.deploy(hooks=Hooks(post_deploy=("echo building", "exit 7")))
    assert not outcome.ok and "exit status 7" in outcome.error and "no host was touched" in outcome.error
    assert all(h.state == HostState.PENDING for h in outcome.hosts)
    assert all(releases_on(host) == [] for host in engine.hosts)

"""The rollout planner: hosts in, batches out, for each strategy (pure)."""

from __future__ import annotations

import pytest

from engine import health, rollout
from engine.health import HealthCheck
from engine.rollout import Rollout, Strategy

HOSTS = [f"h{n}" for n in range(1, 8)]


def test_all_at_once_is_one_batch() -> None:
    assert rollout.batches(HOSTS, Rollout()) == [HOSTS]


def test_one_by_one_is_a_batch_per_host() -> None:
    assert rollout.batches(HOSTS[:3], Rollout(Strategy.ONE_BY_ONE)) == [["h1"], ["h2"], ["h3"]]


def test_a_canary_then_the_rest_together_by_default() -> None:
    assert rollout.batches(HOSTS, Rollout(Strategy.CANARY)) == [["h1"], HOSTS[1:]]


def test_a_canary_then_batches_of_k_hosts() -> None:
    planned = rollout.batches(HOSTS, Rollout(Strategy.CANARY, canary=2, batch_size=2))
    assert planned == [["h1", "h2"], ["h3", "h4"], ["h5", "h6"], ["h7"]]


def test_a_canary_then_batches_of_a_percentage_of_all_hosts_rounded_up() -> None:
    # 30 % of 7 hosts is 2.1: batches of 3.
    planned = rollout.batches(HOSTS, Rollout(Strategy.CANARY, batch_percent=30))
    assert planned == [["h1"], ["h2", "h3", "h4"], ["h5", "h6", "h7"]]


def test_a_batch_size_wins_over_a_percentage() -> None:
    planned = rollout.batches(HOSTS[:4], Rollout(Strategy.CANARY, batch_size=1, batch_percent=100))
    assert planned == [["h1"], ["h2"], ["h3"], ["h4"]]


def test_a_canary_as_large_as_the_hosts_is_one_batch_and_no_host_is_lost() -> None:
    assert rollout.batches(HOSTS[:2], Rollout(Strategy.CANARY, canary=5)) == [["h1", "h2"]]
    assert rollout.batches([], Rollout(Strategy.CANARY)) == []
    for spec in (Rollout(Strategy.CANARY, canary=3, batch_percent=1), Rollout(Strategy.ONE_BY_ONE), Rollout()):
        planned = rollout.batches(HOSTS, spec)
        assert [h for batch in planned for h in batch] == HOSTS and all(planned)


@pytest.mark.parametrize("spec", [Rollout(Strategy.CANARY, canary=0), Rollout(batch_size=-1),
                                  Rollout(batch_percent=101)])
def test_sizes_that_make_no_batches_are_refused(spec: Rollout) -> None:
    with pytest.raises(ValueError):
        rollout.check(spec)


@pytest.mark.parametrize("path", ["/", "/healthz", "/status?full=1", "/a/b.html"])
def test_plain_health_paths_are_accepted(path: str) -> None:
    assert health.check_path(path) == path


@pytest.mark.parametrize("path", ["healthz", "/a b", "/x\r\nHost: evil", "http://evil/", "/\x00"])
def test_health_paths_that_could_change_the_request_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        health.check_path(path)


@pytest.mark.parametrize("value", ["www.example.com", "example.com:8080", "10.0.0.1"])
def test_plain_host_headers_are_accepted(value: str) -> None:
    assert health.check_host_header(value) == value


@pytest.mark.parametrize("value", ["a b", "x\r\nX-Evil: 1", "-x", "user@host", "h/ost"])
def test_host_headers_that_could_add_a_header_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        health.check_host_header(value)


@pytest.mark.parametrize("spec", [HealthCheck(path="/", expected_status=99), HealthCheck(path="/", timeout=0),
                                  HealthCheck(path="/", retries=-1), HealthCheck(path="/", port=0)])
def test_unusable_health_checks_are_refused(spec: HealthCheck) -> None:
    with pytest.raises(ValueError):
        health.check(spec)


def test_no_path_and_no_command_means_no_gate() -> None:
    assert not HealthCheck().enabled
    assert HealthCheck(command="test -e index.html").enabled and HealthCheck(path="/").enabled

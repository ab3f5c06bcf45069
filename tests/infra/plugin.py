"""Pytest fixtures for real deploy targets and a real git server (see hosts.py).

Register with `pytest_plugins = ["tests.infra.plugin"]`. Fixtures:

* target_hosts (session): TargetHost on 127.0.0.11, .12, .13 (ssh port 22)
* extra_host (session): TargetHost on 127.0.0.14, ssh port 2214 (started on first use)
* git_server (session): GitServer on 127.0.0.10
* hosts (function): target_hosts, each reset to a clean /data and verified running

If the machine cannot run them (not root, tools missing, no namespaces) the
fixtures skip, except under CI (env CI non-empty) where they fail: a skipped
integration test must not turn a CI run green.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import pytest

from tests.infra import environment
from tests.infra.hosts import STATE_ROOT, GitServer, Machine, TargetHost, start_all

TARGET_ADDRESSES = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
EXTRA_HOST_ADDRESS, EXTRA_HOST_PORT = "127.0.0.14", 2214
GIT_SERVER_ADDRESS = "127.0.0.10"
INFRA_FIXTURES = frozenset({"target_hosts", "extra_host", "git_server", "hosts"})
# How long to wait for another pytest session that is using the hosts.
LOCK_TIMEOUT = float(os.environ.get("WALLE_INFRA_LOCK_TIMEOUT", "900"))

M = TypeVar("M", bound=Machine)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sshd: uses real sshd/nginx/git hosts from tests.infra (root + namespaces)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tag every test using the hosts, so `-m "not sshd"` deselects them all.
    for item in items:
        if INFRA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sshd)


def unavailable(reason: str) -> NoReturn:
    """Skip locally, fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"real-host test infrastructure unavailable (CI is set, so failing): {reason}",
                    pytrace=False)
    pytest.skip(f"real-host test infrastructure unavailable: {reason}")


@pytest.fixture(scope="session")
def walle_infra() -> Iterator[None]:
    """Prerequisites, the cross-session lock, leftover cleanup, users and dirs."""
    problem = environment.prerequisites_problem()
    if problem:
        unavailable(problem)
    try:
        lock = environment.acquire_session_lock(LOCK_TIMEOUT)
    except TimeoutError as exc:
        unavailable(str(exc))
    try:
        environment.kill_leftovers(STATE_ROOT)
        environment.stop_default_nginx()
        environment.prepare_machine(STATE_ROOT)
        yield
    finally:
        environment.release_session_lock(lock)


@contextmanager
def _running(machines: Sequence[M]) -> Iterator[list[M]]:
    """Start machines (after checking their ssh ports are free); stop them on exit."""
    problems = [problem for machine in machines
                if (problem := environment.port_problem(machine.address, machine.port))]
    if problems:
        unavailable(f"{'; '.join(problems)}; {environment.SETUP_HINT}")
    try:
        start_all(machines)
        yield list(machines)
    finally:
        for machine in machines:
            machine.stop()


@pytest.fixture(scope="session")
def target_hosts(walle_infra: None) -> Iterator[list[TargetHost]]:
    with _running([TargetHost(address) for address in TARGET_ADDRESSES]) as machines:
        yield machines


@pytest.fixture(scope="session")
def extra_host(walle_infra: None) -> Iterator[TargetHost]:
    with _running([TargetHost(EXTRA_HOST_ADDRESS, EXTRA_HOST_PORT)]) as (host,):
        yield host


@pytest.fixture(scope="session")
def git_server(walle_infra: None) -> Iterator[GitServer]:
    with _running([GitServer(GIT_SERVER_ADDRESS)]) as (server,):
        yield server


@pytest.fixture
def hosts(target_hosts: list[TargetHost]) -> list[TargetHost]:
    """The three targets with an empty /data (nginx/, releases/), running their current key."""
    for host in target_hosts:
        host.reset()
        host.ensure_running()
    return target_hosts

"""deploy()/rollback() refuse bad plans before touching anything, and never raise."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine import pipeline
from engine.keys import generate_ed25519
from engine.plan import DeployPlan, Hooks, HostState, RollbackPlan, Secret, Target
from tests.unit.plans import sample_plan

PRIVATE, PUBLIC, _ = generate_ed25519()
# 192.0.2.0/24 is TEST-NET: nothing answers there, so touching it would hang or fail.
TARGET = Target(1, "192.0.2.1", 22, PUBLIC)


def make_plan(tmp_path: Path, **changes: object) -> DeployPlan:
    # Unreachable git server and target, a real key, and a pre_deploy that
    # leaves a mark if the engine ever got as far as running it.
    values: dict[str, object] = dict(
        hooks=Hooks(pre_deploy=(f"touch {tmp_path}/hook-ran",)),
        key=Secret(PRIVATE),
        repo_url="ssh://git@192.0.2.1/srv/git/app.git",
        repo_host_key=PUBLIC,
        workspace=str(tmp_path / "ws"),
        targets=(TARGET,),
    )
    values.update(changes)
    return sample_plan(**values)


@pytest.mark.parametrize(
    "changes",
    [
        {"webroot": "/data/nginx/web site"},
        {"webroot": "/website"},
        {"release_library": "/"},
        {"release_library": "/data/../etc"},
        {"release_name": "../../etc"},
        {"targets": (Target(1, "192.0.2.1", 22, ""),)},
        {"repo_url": "ext::sh -c touch% /tmp/pwned"},
        {"ref": "--upload-pack=touch /tmp/x"},
        {"commit": "HEAD~1"},
        {"run_user": "root;id"},
    ],
)
def test_bad_plans_are_refused_before_anything_runs(tmp_path: Path, changes: dict) -> None:
    lines: list[tuple] = []
    outcome = pipeline.deploy(make_plan(tmp_path, **changes), lambda *a: lines.append(a))
    assert not outcome.ok and outcome.error.startswith("refused: ")
    assert not (tmp_path / "ws").exists() and not (tmp_path / "hook-ran").exists()
    assert [h.state for h in outcome.hosts] == [HostState.PENDING] * len(outcome.hosts)
    assert lines and PRIVATE not in repr(lines)


def test_unpinned_target_refusal_names_the_host(tmp_path: Path) -> None:
    outcome = pipeline.deploy(make_plan(tmp_path, targets=(Target(3, "192.0.2.9", 22, ""),)), lambda *a: None)
    assert "192.0.2.9 has no pinned host key; run the config check" in outcome.error


def test_rollback_refuses_bad_release_names(tmp_path: Path) -> None:
    base = make_plan(tmp_path)
    common = {
        f.name: getattr(base, f.name) for f in dataclasses.fields(RollbackPlan) if f.name not in ("commit", "releases")
    }
    outcome = pipeline.rollback(RollbackPlan(**common, releases=((TARGET, "current"),)), lambda *a: None)
    assert not outcome.ok and "release name" in outcome.error


def test_unreachable_git_server_fails_cleanly_without_touching_hosts(tmp_path: Path) -> None:
    lines: list[tuple] = []
    plan = make_plan(tmp_path, repo_url="ssh://git@127.0.0.1:1/srv/git/app.git", connect_timeout=2)
    outcome = pipeline.deploy(plan, lambda *a: lines.append(a))
    assert not outcome.ok and "no host was touched" in outcome.error
    assert not (tmp_path / "hook-ran").exists()
    assert not (tmp_path / "ws" / "builds" / "20240102-030405-7").exists()
    assert PRIVATE not in repr(lines) and PRIVATE not in repr(outcome)

"""A plain DeployPlan for unit tests; each test overrides what it is about."""

from __future__ import annotations

import dataclasses

from engine.plan import DeployPlan, Hooks, RefKind, Secret, Target

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def sample_plan(**changes: object) -> DeployPlan:
    plan = DeployPlan(
        project="website",
        environment="prod",
        ticket_id=7,
        ticket_title="t",
        ref_kind=RefKind.BRANCH,
        ref="master",
        run_user="www",
        webroot="/data/nginx/website",
        release_library="/data/releases",
        hooks=Hooks(),
        post_release_delay=0,
        max_parallel=2,
        key=Secret("-----BEGIN x-----"),
        repo_url="ssh://git@127.0.0.10/srv/git/app.git",
        repo_host_key=KEY,
        workspace="/var/walle/ws/1",
        release_name="20240102-030405-7",
        targets=(Target(1, "127.0.0.11", 22, KEY),),
    )
    return dataclasses.replace(plan, **changes)

"""The environments a fresh Walle starts with (also used to restore them in tests)."""

from __future__ import annotations

from .models import Environment

# name, slug, order, deploys need approval, rollbacks need approval, self-approval
DEFAULTS = [
    ("test", "test", 10, False, False, True),
    ("staging", "staging", 20, True, False, True),
    ("production", "production", 30, True, False, False),
]


def ensure_defaults() -> None:
    for name, slug, order, deploy, rollback, self_ok in DEFAULTS:
        Environment.objects.get_or_create(
            slug=slug,
            defaults=dict(
                name=name, order=order, deploy_needs_approval=deploy,
                rollback_needs_approval=rollback, allow_self_approval=self_ok,
            ),
        )

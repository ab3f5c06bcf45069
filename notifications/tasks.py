"""The worker's entry point for notifications (django-q2)."""

from __future__ import annotations

from . import sending


def deliver(delivery_id: int) -> str:
    """django-q2 task: send one delivery (bounded attempts, each with a timeout).
    The worker closes stale database connections before each task itself."""
    return sending.deliver(delivery_id)

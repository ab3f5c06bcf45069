"""The worker's entry point for notifications (django-q2)."""

from __future__ import annotations

from django.db import close_old_connections

from . import sending


def deliver(delivery_id: int) -> str:
    """django-q2 task: send one delivery (bounded attempts, each with a timeout)."""
    try:
        return sending.deliver(delivery_id)
    finally:
        close_old_connections()

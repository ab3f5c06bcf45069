"""Small display helpers for the Walle pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def short(sha: str) -> str:
    """The first 8 characters of a commit SHA (what people quote)."""
    return (sha or "")[:8]


@register.inclusion_tag("releases/_status.html")
def status_chip(ticket) -> dict:
    return {"status": ticket.status, "label": ticket.get_status_display()}

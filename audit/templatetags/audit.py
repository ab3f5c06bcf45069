from __future__ import annotations

from django import template

from audit.changes import SECRET, shown

register = template.Library()


@register.filter
def change_rows(changes: dict) -> list[tuple[str, object, object, bool]]:
    """(field, before, after, is_secret) for the page; a secret has no values."""
    return [
        (field, None, None, True) if value == SECRET else (field, value[0], value[1], False)
        for field, value in changes.items()
    ]


register.filter("shown", shown)

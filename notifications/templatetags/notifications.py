"""The ticket page's deliveries, fetched here so releases' views need not know
about notifications."""

from __future__ import annotations

from django import template

from accounts.permissions import Action, visible

from ..models import Delivery

register = template.Library()


@register.simple_tag(takes_context=True)
def ticket_deliveries(context, ticket) -> list[Delivery]:
    """Deliveries about ``ticket``, if the viewer may see its details."""
    request = context.get("request")
    if request is None:
        return []
    queryset = Delivery.objects.filter(ticket=ticket).order_by("created_at", "id")
    return list(visible(request.user, queryset, Action.VIEW_DETAILS))

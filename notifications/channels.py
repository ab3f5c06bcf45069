"""Creating, changing and deleting channels: the admin and the API both call
these, so the policy and the rules about secrets are in one place."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from accounts.permissions import can_configure_channel

from .models import SIGNED_KINDS, URL_KINDS, Channel, Kind

DENIED = _lazy("Project channels are configured by the project's Maintainers; environment defaults by platform admins.")


def _stored(channel: Channel) -> Channel | None:
    return Channel.objects.filter(pk=channel.pk).first() if channel.pk else None


@transaction.atomic
def save_channel(actor, channel: Channel, *, url: str = "", secret: str = "") -> Channel:
    """Validate and save ``channel``; a non-empty ``url`` or ``secret`` replaces
    the stored one (empty keeps it). The actor must configure the channel both
    as stored and as it will be (no moving a channel into someone else's project)."""
    stored = _stored(channel)
    if (stored is not None and not can_configure_channel(actor, stored)) or not can_configure_channel(actor, channel):
        raise PermissionDenied(str(DENIED))
    if url:
        try:
            channel.set_url(url)
        except ValidationError as exc:
            raise ValidationError({"url": exc.messages}) from None
    if secret:
        channel.set_secret(secret)
    channel.full_clean()
    _check_complete(channel)
    channel.save()
    return channel


def _check_complete(channel: Channel) -> None:
    if channel.kind in URL_KINDS and not channel.url_encrypted:
        raise ValidationError({"url": _("This kind of channel needs its webhook URL.")})
    if channel.kind in SIGNED_KINDS and not channel.secret_encrypted:
        raise ValidationError({"secret": _("This kind of channel needs its signing secret.")})
    if channel.kind == Kind.EMAIL and channel.url_encrypted:
        # A URL kept from another kind would sit there unused, still a secret.
        channel.url_encrypted, channel.url_hint, channel.secret_encrypted = "", "", ""


def delete_channel(actor, channel: Channel) -> None:
    if not can_configure_channel(actor, channel):
        raise PermissionDenied(str(DENIED))
    channel.delete()

"""The channel form: secrets are write-only (never rendered back, empty keeps
the stored value), events are checkboxes, scope choices come from the policy."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts import permissions
from projects.models import Environment

from .models import SIGNED_KINDS, SUBSCRIBABLE, URL_KINDS, Channel, all_events, validate_webhook_url


class ChannelForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        label=_("Events"), choices=[(e.value, e.label) for e in SUBSCRIBABLE],
        widget=forms.CheckboxSelectMultiple, initial=all_events,
        error_messages={"required": _("Choose at least one event.")},
    )
    url = forms.CharField(
        label=_("Webhook URL"), required=False, max_length=2000, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Robots and webhooks. Stored encrypted and never shown again (it carries the robot's key); "
                    "leave empty to keep the stored one."),
    )
    secret = forms.CharField(
        label=_("Signing secret"), required=False, max_length=500, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("DingTalk, Feishu and JSON webhooks. Stored encrypted and never shown again; "
                    "leave empty to keep the stored one."),
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "project", "environment", "enabled", "events", "recipients"]

    user = None

    @classmethod
    def for_user(cls, user) -> type[ChannelForm]:
        return type(cls.__name__, (cls,), {"user": user})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "project" in self.fields:
            self.fields["project"].queryset = permissions.visible_projects(self.user, permissions.Action.CONFIGURE)
        if "environment" in self.fields and not permissions.is_platform_admin(self.user):
            self.fields["environment"].queryset = Environment.objects.none()
            self.fields["environment"].help_text = _("Environment defaults are set by platform admins.")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if url:
            validate_webhook_url(url)
        return url

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("kind")
        if kind in URL_KINDS and not data.get("url") and not self.instance.url_encrypted:
            self.add_error("url", ValidationError(_("This kind of channel needs its webhook URL.")))
        if kind in SIGNED_KINDS and not data.get("secret") and not self.instance.secret_encrypted:
            self.add_error("secret", ValidationError(_("This kind of channel needs its signing secret.")))
        return data

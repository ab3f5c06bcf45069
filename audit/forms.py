"""The audit filters, parsed by one form for the page, the CSV and the API."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.permissions import Action, visible_projects

from .models import Kind
from .queries import AuditFilter

FILTER_NAMES = ("project", "actor", "kind", "since", "until")


class AuditFilterForm(forms.Form):
    project = forms.ModelChoiceField(queryset=None, required=False, label=_("Project"))
    actor = forms.CharField(required=False, max_length=150, label=_("Actor"), help_text=_("user name, any case"))
    kind = forms.ChoiceField(choices=[("", "---------"), *Kind.choices], required=False, label=_("Kind"))
    since = forms.DateTimeField(
        required=False, label=_("From"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        required=False, label=_("Until"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, user, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only projects whose entries the user may read are offered.
        self.fields["project"].queryset = visible_projects(user, Action.CONFIGURE).select_related("environment")

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", _("Must not be before the start."))
        return data

    def wanted(self) -> AuditFilter:
        """The filters of a valid form."""
        data = self.cleaned_data
        return AuditFilter(
            project_id=data["project"].pk if data.get("project") else None, actor=data.get("actor", ""),
            kind=data.get("kind", ""), since=data.get("since"), until=data.get("until"),
        )

"""Forms of the ticket pages. They parse and validate input; the workflow acts."""

from __future__ import annotations

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.permissions import Action, visible_projects
from projects.models import Environment, Host, Project

from . import repository
from .models import Release, Ticket


class NewTicketForm(forms.Form):
    """The POST half of the new-ticket page. ``clean`` resolves the ref and
    commit against the real repository, so nothing hostile or made-up reaches
    the workflow (the ref ends up in git command lines on the worker)."""

    project = forms.ModelChoiceField(queryset=Project.objects.none(), widget=forms.HiddenInput)
    ref = forms.CharField(max_length=255, widget=forms.HiddenInput)
    commit = forms.CharField(max_length=40, required=False, widget=forms.HiddenInput)
    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    hosts = forms.ModelMultipleChoiceField(
        label=_("Hosts"), queryset=Host.objects.none(), widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, user, *args, project: Project | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resolved: repository.ResolvedRef | None = None
        projects = visible_projects(user, Action.SUBMIT).filter(is_active=True)
        self.fields["project"].queryset = projects
        # Offer the enabled hosts of the chosen project; the workflow re-checks.
        self.fields["hosts"].queryset = (
            project.hosts.filter(enabled=True) if project else Host.objects.filter(projects__in=projects, enabled=True)
        )

    def clean(self) -> dict:
        data = super().clean()
        project, ref = data.get("project"), data.get("ref")
        if project and ref:
            try:
                self.resolved = repository.resolve(project, ref, data.get("commit", ""))
            except repository.RepositoryError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


class TicketFilterForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False, label=_("Project"))
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), required=False, label=_("Environment"))
    status = forms.ChoiceField(choices=[("", "---------"), *Ticket.Status.choices], required=False, label=_("Status"))
    author = forms.CharField(required=False, label=_("Author"), max_length=150)
    q = forms.CharField(required=False, label=_("Search"), max_length=200)

    def __init__(self, user, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = visible_projects(user)

    def filter(self, tickets):
        """Narrow an already permission-filtered queryset by the valid filters."""
        if not self.is_valid():
            return tickets
        data = self.cleaned_data
        if data["project"]:
            tickets = tickets.filter(project=data["project"])
        if data["environment"]:
            tickets = tickets.filter(project__environment=data["environment"])
        if data["status"]:
            tickets = tickets.filter(status=data["status"])
        if data["author"]:
            tickets = tickets.filter(author__username__iexact=data["author"].strip())
        if text := data["q"].strip():
            tickets = tickets.filter(Q(title__icontains=text) | Q(ref__icontains=text) | Q(commit__istartswith=text))
        return tickets


class RejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class RollbackForm(forms.Form):
    """Roll back to the release each host had before, or to one kept release."""

    release = forms.ChoiceField(label=_("Release"), required=False)

    def __init__(self, ticket: Ticket, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        kept = (
            Release.objects.filter(project=ticket.project, removed_at__isnull=True)
            .order_by("-name").values_list("name", "commit").distinct()
        )
        self.fields["release"].choices = [("", _("The release live before this ticket (per host)"))] + [
            (name, f"{name} ({commit[:8]})") for name, commit in kept
        ]


class EditTicketForm(forms.ModelForm):
    class Meta:
        model = Ticket
        fields = ["title", "description"]

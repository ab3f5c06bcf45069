"""Forms of the ticket pages. They parse and validate input; the workflow acts."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django import forms
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.permissions import Action, visible_projects
from projects.models import Environment, Host, Project, RolloutStrategy

from . import queries, repository
from .models import Release, Ticket


class NewTicketForm(forms.Form):
    """The POST half of the new-ticket page. ``clean`` resolves the ref and
    commit against the real repository, so nothing hostile or made-up reaches
    the workflow (the ref ends up in git command lines on the worker)."""

    project = forms.ModelChoiceField(queryset=Project.objects.none(), widget=forms.HiddenInput)
    ref = forms.CharField(max_length=255, widget=forms.HiddenInput)
    commit = forms.CharField(max_length=40, required=False, widget=forms.HiddenInput)
    title = forms.CharField(label=_("Title"), max_length=200, required=False,
                            help_text=_("Left empty: the ref and the short commit."))
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    hosts = forms.ModelMultipleChoiceField(
        label=_("Hosts"), queryset=Host.objects.none(), widget=forms.CheckboxSelectMultiple
    )

    rollout_strategy = forms.ChoiceField(
        label=_("Rollout"), required=False, choices=[("", _("The project's rollout"))] + RolloutStrategy.choices,
        help_text=_("A more careful rollout than the project's, for this ticket only."),
    )

    def __init__(self, user, *args, project: Project | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resolved: repository.ResolvedRef | None = None
        projects = visible_projects(user, Action.SUBMIT).filter(is_active=True)
        self.fields["project"].queryset = projects
        if project is not None:  # only what the project allows; the workflow re-checks
            self.fields["rollout_strategy"].choices = [("", _("The project's rollout (%(name)s)") % {
                "name": project.get_rollout_strategy_display()})] + [(s.value, s.label) for s in
                                                                       project.allowed_strategies()[1:]]
        # Offer the enabled hosts of the chosen project; the workflow re-checks.
        self.fields["hosts"].queryset = (
            project.hosts.filter(enabled=True) if project else Host.objects.filter(projects__in=projects, enabled=True)
        )

    def clean(self) -> dict:
        data = super().clean()
        project, ref = data.get("project"), data.get("ref")
        if project and ref:
            self.resolved = _resolve_or_error(project, ref, data.get("commit", ""))
            if not data.get("title", "").strip():
                data["title"] = Ticket.default_title(self.resolved.ref, self.resolved.commit)
        return data


def _resolve_or_error(project: Project, ref: str, commit: str) -> repository.ResolvedRef:
    """The one resolution of user input (fetching as needed) as a form error."""
    try:
        return repository.resolve_fresh(project, ref, commit)
    except repository.RepositoryError as exc:
        raise forms.ValidationError(str(exc)) from None


# The largest value a count parameter may take: a PostgreSQL integer column
# must be able to compare with it.
MAX_PARAM = 2**31 - 1


class BadParameter(ValueError):
    """A numeric request parameter that is not a plain number; the message says which."""


def parse_count(raw: str | None, name: str, *, minimum: int = 0, maximum: int = MAX_PARAM) -> int | None:
    """A whole-number request parameter, or None when it is absent or empty.

    Only the ASCII digits 0-9 pass: ``str.isdigit`` also accepts "²" (which
    ``int()`` then refuses) and "١" (which ``int()`` reads as 1).
    """
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(maximum)):
        raise BadParameter(gettext("%(name)s must be a whole number written with the digits 0-9.") % {"name": name})
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadParameter(gettext("%(name)s must be between %(minimum)s and %(maximum)s.")
                           % {"name": name, "minimum": minimum, "maximum": maximum})
    return value


class TicketFilterForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False, label=_("Project"))
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), required=False, label=_("Environment"))
    status = forms.ChoiceField(choices=[("", "---------"), *Ticket.Status.choices], required=False, label=_("Status"))
    author = forms.CharField(required=False, label=_("Author"), max_length=150)
    q = forms.CharField(required=False, label=_("Search"), max_length=200)

    def __init__(self, user, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Each choice's label names the environment: one query, not one per project.
        self.fields["project"].queryset = visible_projects(user).select_related("environment")

    def wanted(self) -> queries.TicketFilter:
        """The valid filters (none when the form is invalid), for queries.filter_tickets."""
        if not self.is_valid():
            return queries.TicketFilter()
        data = self.cleaned_data
        return queries.TicketFilter(
            project_id=data["project"].pk if data["project"] else None,
            environment=data["environment"].slug if data["environment"] else "",
            status=data["status"], author=data["author"], text=data["q"],
        )


class RejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class RollbackForm(forms.Form):
    """Roll back to the release each host had before, or to one kept release.
    The workflow refuses a release that is not kept; the choices only offer
    the kept ones."""

    release = forms.ChoiceField(label=_("Release"), required=False)

    def __init__(self, ticket: Ticket, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        names = [row["name"] for row in queries.kept_releases(ticket.project)]
        commits = dict(
            Release.objects.filter(project=ticket.project, name__in=names).values_list("name", "commit")
        )
        self.fields["release"].choices = [("", _("The release live before this ticket (per host)"))] + [
            (name, f"{name} ({commits.get(name, '')[:8]})") for name in names
        ]


class EditTicketForm(forms.Form):
    """Edit a ticket that has not run yet. A changed ref or commit is resolved
    like a new ticket's (a blank commit means the ref's tip); a rollback
    ticket keeps the ref, commit and hosts it undoes."""

    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    ref = forms.CharField(label=_("Branch or tag"), max_length=255)
    commit = forms.CharField(
        label=_("Commit"), max_length=40, required=False, help_text=_("Full SHA on the ref; empty = the ref's tip.")
    )
    hosts = forms.ModelMultipleChoiceField(
        label=_("Hosts"), queryset=Host.objects.none(), widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, ticket: Ticket, *args, **kwargs) -> None:
        kwargs.setdefault("initial", {
            "title": ticket.title, "description": ticket.description, "ref": ticket.ref,
            "commit": ticket.commit, "hosts": list(ticket.hosts.all()),
        })
        super().__init__(*args, **kwargs)
        self.ticket = ticket
        if ticket.is_rollback:
            for name in ("ref", "commit", "hosts"):
                del self.fields[name]
        else:
            self.fields["hosts"].queryset = ticket.project.hosts.filter(enabled=True)

    def clean(self) -> dict:
        data = super().clean()
        ticket = self.ticket
        if "ref" in data and "commit" not in self.errors and (data["ref"] != ticket.ref or data.get("commit", "") != ticket.commit):
            resolved = _resolve_or_error(ticket.project, data["ref"], data.get("commit", ""))
            data["ref"], data["commit"] = resolved.ref, resolved.commit
        return data

    def changes(self) -> tuple[dict, list[Host] | None]:
        """The changed fields for ``workflow.edit`` and the new hosts (None =
        unchanged), from a valid form."""
        data, ticket = self.cleaned_data, self.ticket
        fields = {
            name: data[name] for name in ("title", "description", "ref", "commit")
            if name in data and data[name] != getattr(ticket, name)
        }
        hosts = None
        if "hosts" in data and set(data["hosts"]) != set(ticket.hosts.all()):
            hosts = list(data["hosts"])
        return fields, hosts


class ZonedDateTimeField(forms.DateTimeField):
    """A datetime-local value read in the environment's time zone, not the site's.
    A wall time the clocks skip or repeat is refused with Django's own message."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, zone: str, **kwargs) -> None:
        kwargs.setdefault("input_formats", ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])
        super().__init__(**kwargs)
        self.zone = ZoneInfo(zone)

    def to_python(self, value):
        with timezone.override(self.zone):
            return super().to_python(value)


class ScheduleForm(forms.Form):
    """When to deploy a ticket, and the version of it the user saw."""

    at = forms.DateTimeField(label=_("Deploy at"))  # replaced per environment in __init__
    version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)

    def __init__(self, ticket: Ticket, *args, **kwargs) -> None:
        kwargs.setdefault("initial", {"version": ticket.version})
        super().__init__(*args, **kwargs)
        self.zone = ticket.project.environment.time_zone
        self.fields["at"] = ZonedDateTimeField(self.zone, label=_("Deploy at"))

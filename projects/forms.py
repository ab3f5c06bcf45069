from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from accounts import permissions
from accounts.models import Membership, Role, Team

from .models import Host, Project
from .validators import parse_host_lines


class ProjectAdminForm(forms.ModelForm):
    host_lines = forms.CharField(
        label="Add hosts",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "10.0.0.13\n10.0.0.14:2222"}),
        help_text="One per line, ip or ip:port (port 22 by default). Creates the host if new and links it.",
    )

    class Meta:
        model = Project
        fields = [
            "name", "slug", "team", "environment", "description", "is_active", "repo_url", "repo_mode",
            "deploy_key", "workspace", "excludes", "run_user", "webroot", "release_library", "keep_releases",
            "hosts", "max_parallel", "pre_deploy", "post_deploy", "pre_release", "post_release",
            "post_release_delay",
        ]

    def clean_host_lines(self) -> list:
        return parse_host_lines(self.cleaned_data.get("host_lines") or "")


def teams_user_maintains(user):
    if user.is_superuser:
        return Team.objects.all()
    ids = Membership.objects.filter(user=user, role__gte=Role.MAINTAINER).values("team_id")
    return Team.objects.filter(pk__in=ids)


def link_pasted_hosts(project: Project, addresses) -> list[Host]:
    """Create (or find) a Host per pasted address and link it to the project."""
    hosts = []
    for item in addresses:
        host, _created = Host.objects.get_or_create(address=item.address, port=item.port)
        hosts.append(host)
    project.hosts.add(*hosts)
    return hosts


def check_team_allowed(user, team) -> None:
    if team is not None and not teams_user_maintains(user).filter(pk=team.pk).exists():
        raise ValidationError({"team": "You can only put projects in groups you maintain."})


class GrantForm(forms.Form):
    """Give or take one action on one project from one user (guardian)."""

    username = forms.CharField(max_length=150)
    action = forms.ChoiceField(choices=[(a.value, a.value.replace("_", " ")) for a in permissions.PROJECT_ACTIONS])
    revoke = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean_username(self):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(username=self.cleaned_data["username"], is_active=True).first()
        if user is None:
            raise ValidationError("No active user with that name.")
        return user


__all__ = ["GrantForm", "ProjectAdminForm", "link_pasted_hosts", "teams_user_maintains", "check_team_allowed", "permissions"]

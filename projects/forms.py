from __future__ import annotations

from django import forms
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext_lazy as _

from accounts import permissions
from accounts.models import Team

from . import validators
from .models import DeployKey, DeployWindow, Host, Project
from .validators import parse_host_line, parse_host_lines


class ProjectAdminForm(forms.ModelForm):
    """The project form. ``user`` (who is editing) is bound per request with
    :meth:`for_user`; the choices it offers and the hosts it may link come from
    the policy (``accounts.permissions``)."""

    user = None  # set by for_user(); without it the form offers nothing

    host_lines = forms.CharField(
        label=_("Add hosts"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "10.0.0.13\n10.0.0.14:2222"}),
        help_text=_("One per line: ip, ip:port or [ipv6]:port (port 22 by default). Creates the host if new and links it."),
    )

    class Meta:
        model = Project
        fields = [
            "name", "slug", "team", "environment", "description", "is_active", "repo_url", "repo_mode",
            "deploy_key", "workspace", "excludes", "run_user", "webroot", "release_library", "keep_releases",
            "hosts", "max_parallel", "compress_transfer", "pre_deploy", "post_deploy", "pre_release", "post_release",
            "post_release_delay", "rollout_strategy", "canary_hosts", "batch_size", "batch_percent",
            "promote_required", "health_path", "health_port", "health_host_header", "health_status", "health_text",
            "health_timeout", "health_retries", "health_command",
        ]
        # The model's names are the hook names the docs use; people read these.
        labels = {
            "pre_deploy": _("Pre-deploy hook (pre_deploy)"),
            "post_deploy": _("Post-deploy hook (post_deploy)"),
            "pre_release": _("Pre-release hook (pre_release)"),
            "post_release": _("Post-release hook (post_release)"),
            "post_release_delay": _("Pause between batches (post_release_delay, seconds)"),
        }

    @classmethod
    def for_user(cls, user) -> type[ProjectAdminForm]:
        return type(cls.__name__, (cls,), {"user": user, "__module__": cls.__module__})

    @property
    def editor(self):
        return self.user if self.user is not None else AnonymousUser()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The instance as loaded, before this form's data is applied to it.
        project = self.instance if self.instance.pk else None
        if "team" in self.fields:
            self.fields["team"].queryset = team_choices(self.editor, project)
        if "deploy_key" in self.fields:
            self.fields["deploy_key"].queryset = deploy_key_choices(self.editor, project)

    def clean_host_lines(self) -> list:
        text = self.cleaned_data.get("host_lines") or ""
        addresses = parse_host_lines(text)  # every line is well-formed past here
        line_of = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() and not line.strip().startswith("#"):
                line_of.setdefault(parse_host_line(line), number)
        linked = set(self.instance.hosts.values_list("pk", flat=True)) if self.instance.pk else set()
        errors = []
        for item in addresses:
            host = Host.objects.at(item.address, item.port).first()
            if host is not None and host.pk not in linked and not permissions.can_change_host(self.editor, host):
                errors.append(ValidationError(
                    _("line %(n)d: host %(host)s is used by projects you do not configure; ask their "
                      "Maintainers or a platform admin to link it."),
                    params={"n": line_of[item], "host": host.endpoint},
                ))
        if errors:
            raise ValidationError(errors)
        return addresses

    def clean(self) -> dict:
        cleaned = super().clean()
        self._check_webroot_not_shared(cleaned)
        self._check_deploy_key(cleaned)
        return cleaned

    def _check_deploy_key(self, cleaned: dict) -> None:
        """The key must be one of the project's (destination) group's keys,
        unless a platform admin chose it: the choices already say so, and a
        move to another group must not carry the old group's key along."""
        if "team" not in cleaned:
            return  # the group field's own error is shown
        stored = self.instance if self.instance.pk else None
        key = cleaned.get("deploy_key")
        if not permissions.can_use_deploy_key(self.editor, key, cleaned["team"], stored):
            self.add_error("deploy_key", _("Pick one of this group's keys, or leave it empty for the group's own key; "
                                           "only platform admins choose another key."))
            return
        # A key a platform admin gave the project (the platform key, another
        # group's) opens servers this group may not reach: with it, only a
        # platform admin may point the project at other servers or repositories.
        foreign = key is not None and key.team_id != cleaned["team"].pk
        retargeted = {"repo_url", "hosts", "host_lines"} & set(self.changed_data)
        if foreign and retargeted and not permissions.is_platform_admin(self.editor):
            self.add_error(None, _("This project logs in with a key a platform admin chose (not its group's key), so "
                                   "only a platform admin may change its repository or hosts. Switch it to the group's "
                                   "own key first."))

    def _check_webroot_not_shared(self, cleaned: dict) -> None:
        """Two projects switching one webroot on one host would overwrite each
        other's releases: refuse it while saving, naming the host."""
        webroot = cleaned.get("webroot")
        if not webroot:
            return
        hosts = list(cleaned.get("hosts") or [])
        pasted = cleaned.get("host_lines") or []
        hosts += [h for a in pasted for h in Host.objects.at(a.address, a.port)]
        others = Project.objects.filter(webroot=webroot).exclude(pk=self.instance.pk)
        clash = Host.objects.filter(pk__in=[h.pk for h in hosts], projects__in=others).first()
        if clash is not None:
            self.add_error("webroot", _("Another project already manages %(webroot)s on %(host)s.")
                           % {"webroot": webroot, "host": clash.endpoint})


def team_choices(user, project=None) -> QuerySet[Team]:
    """The groups the project form offers (the policy's teams_for_project)."""
    return permissions.teams_for_project(user, project)


def deploy_key_choices(user, project=None) -> QuerySet[DeployKey]:
    """The keys the project form offers: all for platform admins; else the keys
    of the groups offered, and the project's current key (an unchanged project
    can always be saved). Saving checks permissions.can_use_deploy_key again."""
    if permissions.is_platform_admin(user):
        return DeployKey.objects.all()
    keys = Q(team__in=team_choices(user, project).values("pk"))
    kept = permissions.kept_deploy_key_id(user, project)
    if kept is not None:
        keys |= Q(pk=kept)
    return DeployKey.objects.filter(keys)


def link_pasted_hosts(user, project: Project, addresses) -> list[Host]:
    """Create a Host per pasted address, or reuse an existing one ``user`` may
    change, and link it to the project. The form already refused the others;
    this re-checks so a host that became shared meanwhile is not taken over."""
    linked = set(project.hosts.values_list("pk", flat=True))
    hosts = []
    for item in addresses:
        host = Host.objects.at(item.address, item.port).first()
        created = host is None
        if created:
            host = Host(address=item.address, port=item.port)
            host.full_clean()  # the canonical address, and one record per machine
            host.save()
        if not created and host.pk not in linked and not permissions.can_change_host(user, host):
            raise PermissionDenied(_("host %(host)s is used by projects you do not configure.") % {"host": host.endpoint})
        hosts.append(host)
    project.hosts.add(*hosts)
    return hosts


class GrantForm(forms.Form):
    """Give or take one action on one project from one user (guardian)."""

    username = forms.CharField(label=_("Username"), max_length=150)
    action = forms.ChoiceField(label=_("Action"), choices=[(a.value, permissions.ACTION_LABELS[a]) for a in permissions.PROJECT_ACTIONS])
    revoke = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean_username(self):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(username=self.cleaned_data["username"], is_active=True).first()
        if user is None:
            raise ValidationError(_("No active user with that name."))
        return user


class SecretForm(forms.Form):
    """Set one secret: a new name adds it, an existing name replaces its value.
    The value is write-only: the widget never renders it back."""

    name = forms.CharField(
        label=_("Name"), max_length=64, validators=[validators.validate_secret_name], help_text=_("e.g. NPM_TOKEN")
    )
    value = forms.CharField(
        label=_("Value"), strip=False, widget=forms.PasswordInput(render_value=False),
        validators=[validators.validate_secret_value], help_text=_("Write-only: it is never shown again."),
    )


class SecretDeleteForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64)


__all__ = ["GrantForm", "ProjectAdminForm", "SecretDeleteForm", "SecretForm", "link_pasted_hosts"]


class DeployWindowForm(forms.ModelForm):
    """A window's weekdays as seven boxes; stored as digits ("0123" = Mon-Thu)."""

    weekdays = forms.MultipleChoiceField(
        label=DeployWindow._meta.get_field("weekdays").verbose_name,
        choices=[(str(day), name) for day, name in WEEKDAYS.items()], widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = DeployWindow
        fields = ["weekdays", "start", "end"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["weekdays"] = list(self.instance.weekdays)

    def clean_weekdays(self) -> str:
        return "".join(sorted(self.cleaned_data["weekdays"]))

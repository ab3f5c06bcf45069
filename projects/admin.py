from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from guardian.shortcuts import get_users_with_perms

from accounts import grants, permissions
from accounts.admin import ScopedAdminMixin

from . import secrets
from .config_check import check_rows, run_check
from .forms import DeployWindowForm, GrantForm, ProjectAdminForm, SecretDeleteForm, SecretForm, link_pasted_hosts
from .keys import fill_new_key, key_for
from .models import DeployFreeze, DeployKey, DeployWindow, Environment, Host, Project


class PlatformInline(admin.TabularInline):
    """Rows of an environment: everyone may read them, platform admins edit."""

    extra = 0

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active

    def has_add_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)


class DeployWindowInline(PlatformInline):
    model = DeployWindow
    form = DeployWindowForm
    verbose_name_plural = _("deploy windows (none = deploys at any time)")


class DeployFreezeInline(PlatformInline):
    model = DeployFreeze


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "order", "deploy_needs_approval", "rollback_needs_approval", "approvals_required",
                    "allow_self_approval", "time_zone"]
    list_editable = []
    prepopulated_fields = {"slug": ["name"]}
    inlines = [DeployWindowInline, DeployFreezeInline]

    def has_module_permission(self, request) -> bool:
        return request.user.is_active

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active

    def has_add_permission(self, request) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user) and not (obj and obj.projects.exists())


@admin.register(Host)
class HostAdmin(ScopedAdminMixin, admin.ModelAdmin):
    list_display = ["address", "port", "label", "enabled", "host_key_fingerprint", "host_key_pinned_at"]
    list_filter = ["enabled"]
    search_fields = ["address", "label"]
    readonly_fields = ["host_key", "host_key_fingerprint", "host_key_pinned_by", "host_key_pinned_at"]
    actions = ["unpin_host_keys"]

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return permissions.is_maintainer_somewhere(request.user)
        return permissions.can_change_host(request.user, obj)

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None:
            return request.user.is_active
        return permissions.visible(request.user, Host.objects.filter(pk=obj.pk), permissions.Action.VIEW_DETAILS).exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user) and not (obj and obj.projects.exists())

    def get_queryset(self, request):
        return permissions.visible(request.user, Host.objects.all(), permissions.Action.VIEW_DETAILS)

    def save_model(self, request, obj, form, change) -> None:
        # The pinned key identifies the machine at the old address; a host
        # re-pointed elsewhere is a new machine, whose key the next successful
        # config check pins afresh (and records who did).
        if change and Host.objects.filter(pk=obj.pk).exclude(address=obj.address, port=obj.port).exists():
            obj.unpin()
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Forget pinned host keys (the next config check pins again)"))
    def unpin_host_keys(self, request, queryset) -> None:
        allowed = [h for h in queryset if permissions.can_change_host(request.user, h)]
        Host.objects.filter(pk__in=[h.pk for h in allowed]).update(
            host_key="", host_key_fingerprint="", host_key_pinned_by=None, host_key_pinned_at=None
        )
        self.message_user(request, ngettext("Unpinned %(count)d host.", "Unpinned %(count)d hosts.", len(allowed)) % {"count": len(allowed)})


@admin.register(Project)
class ProjectAdmin(ScopedAdminMixin, admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "slug", "team", "environment", "repo_mode", "host_count", "is_active"]
    # Filter choices come from the rows the user may see, never from all teams.
    list_filter = ["environment", ("team", admin.RelatedOnlyFieldListFilter), "is_active", "repo_mode"]
    search_fields = ["name", "slug"]
    detail_search_fields = ["repo_url", "description"]
    readonly_fields = ["repo_host_key", "created_at", "updated_at"]
    filter_horizontal = ["hosts"]
    prepopulated_fields = {"slug": ["name"]}
    # What most projects set once, first; the rarely changed parts collapsed.
    fieldsets = [
        (None, {"fields": ["name", "slug", "team", "environment", "description", "is_active"]}),
        (_("Repository"), {"fields": ["repo_url", "repo_mode"]}),
        (_("Targets"), {"fields": ["hosts", "host_lines", "webroot", "release_library", "run_user"]}),
        (_("Hooks"), {"fields": ["pre_deploy", "post_deploy", "pre_release", "post_release"]}),
        (_("Deploy host and keys"), {"fields": ["workspace", "excludes", "deploy_key", "repo_host_key"],
                                     "classes": ["collapse"]}),
        (_("Rollout and retention"), {"fields": [
            "keep_releases", "max_parallel", "post_release_delay", "compress_transfer",
            "rollout_strategy", "canary_hosts", "batch_size", "batch_percent", "promote_required",
            "health_path", "health_port", "health_host_header", "health_status", "health_text", "health_timeout",
            "health_retries", "health_command",
        ], "classes": ["collapse"]}),
        (_("History"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description=_("hosts"))
    def host_count(self, obj) -> int:
        return obj.hosts.count()

    def get_urls(self):
        check = self.admin_site.admin_view(require_POST(self.check_view))
        grants_view = self.admin_site.admin_view(self.grants_view)
        secrets_view = self.admin_site.admin_view(self.secrets_view)
        secret_delete = self.admin_site.admin_view(require_POST(self.secret_delete_view))
        return [
            path("<int:pk>/check/", check, name="projects_project_check"),
            path("<int:pk>/grants/", grants_view, name="projects_project_grants"),
            path("<int:pk>/secrets/", secrets_view, name="projects_project_secrets"),
            path("<int:pk>/secrets/delete/", secret_delete, name="projects_project_secret_delete"),
        ] + super().get_urls()

    def _configurable(self, request, pk: int) -> Project:
        project = get_object_or_404(self.get_queryset(request), pk=pk)
        if not permissions.can(request.user, permissions.Action.CONFIGURE, project):
            raise PermissionDenied(_("Only Maintainers of this project do this."))
        return project

    def grants_view(self, request, pk: int):
        """Per-user grants on this project, for people outside its group."""
        project = self._configurable(request, pk)
        form = GrantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            change = grants.revoke if data["revoke"] else grants.grant
            try:
                change(request.user, data["username"], data["action"], project)
                done = _("Revoked %(action)s from %(user)s.") if data["revoke"] else _("Granted %(action)s to %(user)s.")
                label = permissions.ACTION_LABELS[permissions.Action(data["action"])]
                self.message_user(request, done % {"action": label, "user": data["username"]})
            except PermissionDenied as exc:
                self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:projects_project_grants", pk=project.pk)
        holders = get_users_with_perms(project, with_group_users=False, with_superusers=False)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": project,
            "title": gettext("Per-user grants: %(project)s") % {"project": project}, "form": form,
            "rows": [(u, [(a, permissions.ACTION_LABELS[a]) for a in grants.granted_actions(u, project)])
                     for u in holders],
        }
        return TemplateResponse(request, "admin/projects/project/grants.html", context)

    def secrets_view(self, request, pk: int):
        """Names of the project's secrets (with VIEW_DETAILS); set one (CONFIGURE).
        A value is never rendered, not even back into the form after an error."""
        project = get_object_or_404(self.get_queryset(request), pk=pk)
        permissions.require(
            request.user, permissions.Action.CONFIGURE if request.method == "POST" else permissions.Action.VIEW_DETAILS,
            project,
        )
        form = SecretForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            created = secrets.set_secret(request.user, project, form.cleaned_data["name"], form.cleaned_data["value"])
            done = _("Secret %(name)s set.") if created else _("Secret %(name)s changed.")
            self.message_user(request, done % {"name": form.cleaned_data["name"]})
            return redirect("admin:projects_project_secrets", pk=project.pk)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": project,
            "title": gettext("Secrets: %(project)s") % {"project": project}, "form": form, "secrets": project.secrets.all(),
            "can_edit": permissions.can(request.user, permissions.Action.CONFIGURE, project),
        }
        return TemplateResponse(request, "admin/projects/project/secrets.html", context)

    def secret_delete_view(self, request, pk: int):
        project = get_object_or_404(self.get_queryset(request), pk=pk)
        form = SecretDeleteForm(request.POST)
        if form.is_valid():
            name = form.cleaned_data["name"]
            if secrets.delete_secret(request.user, project, name):
                self.message_user(request, gettext("Secret %(name)s deleted.") % {"name": name})
            else:
                self.message_user(request, gettext("There is no secret %(name)s.") % {"name": name}, messages.WARNING)
        return redirect("admin:projects_project_secrets", pk=project.pk)

    def check_view(self, request, pk: int):
        """Run the config check (检测) and show each result with how to fix it."""
        project = self._configurable(request, pk)
        report = run_check(request.user, project)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": project,
            "title": gettext("Config check: %(project)s") % {"project": project}, "report": report,
            "rows": check_rows(report), "deploy_key": key_for(project),
        }
        return TemplateResponse(request, "admin/projects/project/check.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        project = self.get_object(request, object_id)
        extra = {"can_check": bool(project) and permissions.can(request.user, permissions.Action.CONFIGURE, project)}
        if extra["can_check"]:
            extra["deploy_key"] = key_for(project)
            extra["deploy_key_is_the_groups"] = project.deploy_key_id is None
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The form's choices (team, deploy key) and the pasted-host check need the user.
        return super().get_form(request, obj, change, **kwargs).for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not permissions.can_change_project_environment(request.user, obj):
            fields.append("environment")
        return fields

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "hosts":
            kwargs["queryset"] = permissions.visible(request.user, Host.objects.all(), permissions.Action.CONFIGURE)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        # The form's choices and read-only fields already enforce these; belt and braces.
        stored = Project.objects.filter(pk=obj.pk).first() if change else None
        if not permissions.can_put_project_in_team(request.user, obj.team, stored):
            raise PermissionDenied(_("You can only put projects in groups you maintain."))
        if not permissions.can_use_deploy_key(request.user, obj.deploy_key, obj.team, stored):
            raise PermissionDenied(_("Only platform admins give a project a key that is not its group's."))
        if (
            stored is not None and stored.environment_id != obj.environment_id
            and not permissions.can_change_project_environment(request.user, stored)
        ):
            raise PermissionDenied(_("Only platform admins move an existing project to another environment."))
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        hosts = link_pasted_hosts(request.user, form.instance, form.cleaned_data.get("host_lines") or [])
        if hosts:
            self.message_user(
                request, ngettext("Linked %(count)d host: %(hosts)s", "Linked %(count)d hosts: %(hosts)s", len(hosts))
                % {"count": len(hosts), "hosts": ", ".join(h.name for h in hosts)}
            )


@admin.register(DeployKey)
class DeployKeyAdmin(admin.ModelAdmin):
    """Only the public half and the fingerprint are ever shown."""

    list_display = ["name", "team", "fingerprint", "is_default", "created_at"]
    list_filter = [("team", admin.RelatedOnlyFieldListFilter)]
    fields = ["name", "team", "is_default", "public_key", "fingerprint", "authorized_keys", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        fields = ["is_default", "public_key", "fingerprint", "authorized_keys", "created_at"]
        # Moving a key to another group would hand that group the trust of the
        # first group's hosts; make a new key instead.
        return fields if obj is None else ["team", *fields]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=permissions.visible_deploy_keys(request.user).values("pk"))

    def save_model(self, request, obj, form, change) -> None:
        # A new key is generated here; nobody ever types or sees a private key.
        if not change:
            fill_new_key(obj)
        super().save_model(request, obj, form, change)

    @admin.display(description=_("authorized_keys line"))
    def authorized_keys(self, obj) -> str:
        return obj.authorized_keys_line() if obj.pk else ""

    def has_module_permission(self, request) -> bool:
        return permissions.is_maintainer_somewhere(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return permissions.is_maintainer_somewhere(request.user)

    def has_add_permission(self, request) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        # A default key is in use by every project of its group that names no
        # key, which PROTECT cannot see; deleting it would silently swap keys.
        return permissions.is_platform_admin(request.user) and not (
            obj and (obj.is_default or obj.projects.exists())
        )

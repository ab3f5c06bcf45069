from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import lookup_spawns_duplicates
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import Q
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import permissions
from .models import ApiToken, Membership, Team, UserAccount


class ScopedAdminMixin:
    """Querysets and object permissions for project-owned models, from the policy.

    ``view_action`` decides which rows appear in lists; ``detail_action`` who may
    open one; ``change_action`` who may change it.
    """

    view_action = permissions.Action.VIEW
    detail_action = permissions.Action.VIEW_DETAILS
    change_action = permissions.Action.CONFIGURE
    delete_action = permissions.Action.MANAGE
    # Searched only in rows the user may see details of: a search answers
    # yes/no about a field, so it must not reach fields the list would hide.
    detail_search_fields: list[str] = []

    def get_queryset(self, request):
        return permissions.visible(request.user, super().get_queryset(request), self.view_action)

    def get_search_results(self, request, queryset, search_term):
        if not self.detail_search_fields:
            return super().get_search_results(request, queryset, search_term)
        details = permissions.visible(request.user, self.model._default_manager.all(), permissions.Action.VIEW_DETAILS)
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            public = Q.create([(f"{field}__icontains", bit) for field in self.search_fields], connector=Q.OR)
            detail = Q.create([(f"{field}__icontains", bit) for field in self.detail_search_fields], connector=Q.OR)
            queryset = queryset.filter(public | (detail & Q(pk__in=details.values("pk"))))
        fields = [*self.search_fields, *self.detail_search_fields]
        return queryset, any(lookup_spawns_duplicates(self.opts, field) for field in fields)

    def has_module_permission(self, request) -> bool:
        return request.user.is_active

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None:
            return request.user.is_active
        return permissions.can(request.user, self.detail_action, obj)

    def has_add_permission(self, request) -> bool:
        return permissions.is_maintainer_somewhere(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return permissions.is_maintainer_somewhere(request.user)
        return permissions.can(request.user, self.change_action, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is None:
            return permissions.is_platform_admin(request.user)
        return permissions.can(request.user, self.delete_action, obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    # A plain select: autocomplete (and raw_id) need view permission on auth.User,
    # which Owners do not have, so they could not add members.

    def _may(self, request, obj) -> bool:
        if obj is None:  # a new group: whoever may create it adds its first members with it
            return permissions.is_platform_admin(request.user)
        return permissions.can_manage_team(request.user, obj)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active

    def has_add_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "member_count", "project_count"]
    search_fields = ["name"]
    inlines = [MembershipInline]
    readonly_fields = ["deploy_key"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=permissions.visible_teams(request.user).values("pk"))

    def get_fields(self, request, obj=None):
        return ["name", "description"] if obj is None else ["name", "description", "deploy_key"]

    @admin.display(description=_("deploy key"))
    def deploy_key(self, obj) -> str:
        from projects.keys import team_key

        key = team_key(obj)  # groups made before keys were per group get theirs here
        return format_html(
            '<pre id="group-authorized-keys-line" style="white-space: pre-wrap; word-break: break-all;">{}</pre>{}',
            key.authorized_keys_line(),
            format_html(
                gettext(
                    "Fingerprint: <code>{fingerprint}</code><br>Add this line to <code>~/.ssh/authorized_keys</code> "
                    "of the run user on this group's target hosts, and as a read-only deploy key on its "
                    "repositories. Projects of this group log in with it unless a platform admin gives one "
                    "another key."
                ),
                fingerprint=key.fingerprint,
            ),
        )

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            from projects.keys import team_key

            team_key(obj)  # the group's key is made with the group

    @admin.display(description=_("members"))
    def member_count(self, obj) -> int:
        return obj.memberships.count()

    @admin.display(description=_("projects"))
    def project_count(self, obj) -> int:
        return obj.projects.count()

    def has_module_permission(self, request) -> bool:
        return request.user.is_active

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active

    def has_add_permission(self, request) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is not None and permissions.can_manage_team(request.user, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Platform admins issue and revoke tokens for anyone; a raw key is shown
    once, right after it is created, and never stored."""

    list_display = ["name", "user", "hint", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["user", "name"] if obj is None else ["user", "name", "hint", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["user", "name", "hint", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            raw = obj.assign_new_key()
            super().save_model(request, obj, form, change)
            self.message_user(
                request, gettext("Token for %(user)s: %(token)s  (copy it now; it is not shown again)")
                % {"user": obj.user, "token": raw}
            )
            return
        super().save_model(request, obj, form, change)

    def has_module_permission(self, request) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)

    def has_add_permission(self, request) -> bool:
        return permissions.is_platform_admin(request.user)

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request, queryset) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            token.revoke()


class UserMembershipInline(admin.TabularInline):
    """A person's Walle groups and roles, on their user page."""

    model = Membership
    fk_name = "user"
    extra = 0
    verbose_name = _("group membership")
    verbose_name_plural = _("groups and roles")


@admin.register(UserAccount)
class UserAccountAdmin(UserAdmin):
    """Users, managed by platform admins. No Django permission groups or
    per-model permissions: Walle decides rights from group roles (and grants)."""

    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        (_("Personal info"), {"fields": ["first_name", "last_name", "email"]}),
        (_("Status"), {"fields": ["is_active", "is_superuser"],
                       "description": _("A superuser is a platform admin: every group, every project.")}),
        (_("Important dates"), {"fields": ["last_login", "date_joined"], "classes": ["collapse"]}),
    ]
    list_display = ["username", "email", "first_name", "last_name", "is_active", "is_superuser"]
    list_filter = ["is_active", "is_superuser"]
    filter_horizontal = []
    inlines = [UserMembershipInline]

    def _admin(self, request, obj=None) -> bool:
        return permissions.is_platform_admin(request.user)

    has_module_permission = has_view_permission = has_add_permission = _admin
    has_change_permission = has_delete_permission = _admin


# Walle's groups are Teams (above) and its users sit beside them (UserAccount);
# Django's permission groups are not used, and two "Groups" would only confuse.
admin.site.unregister(Group)
admin.site.unregister(User)

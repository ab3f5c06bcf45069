"""Teams (GitLab-style groups), memberships with roles, and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Role(models.IntegerChoices):
    """Roles within a team, lowest to highest; the number orders them."""

    GUEST = 10, _("Guest")
    REPORTER = 20, _("Reporter")
    DEVELOPER = 30, _("Developer")
    MAINTAINER = 40, _("Maintainer")
    OWNER = 50, _("Owner")


class Team(models.Model):
    """A group of people and the projects they own (a GitLab group).

    Named Team in code so it never collides with ``django.contrib.auth.Group``;
    the UI calls it "group".
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams", verbose_name=_("members")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("group")
        verbose_name_plural = _("groups")

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("group"))
    role = models.PositiveSmallIntegerField(_("role"), choices=Role.choices, default=Role.GUEST)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
        ]
        ordering = ["team__name", "-role"]
        verbose_name = _("member")
        verbose_name_plural = _("members")

    def __str__(self) -> str:
        return gettext("%(user)s in %(group)s as %(role)s") % {
            "user": self.user, "group": self.team, "role": self.get_role_display(),
        }


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A personal API token. Only its hash is stored; the raw value is shown once."""

    PREFIX = "walle_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    hint = models.CharField(_("hint"), max_length=16, editable=False, help_text=_("first characters"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        """Create a token; return it with the raw key, which is never stored."""
        token = cls(user=user, name=name)
        raw = token.assign_new_key()
        token.save()
        return token, raw

    def assign_new_key(self) -> str:
        """Give this (unsaved) token a fresh key; return the raw value."""
        raw = self.PREFIX + secrets.token_urlsafe(32)
        self.key_hash = _hash_token(raw)
        self.hint = raw[: len(self.PREFIX) + 4]
        return raw

    @classmethod
    def lookup(cls, raw: str) -> ApiToken | None:
        return cls.objects.active().select_related("user").filter(key_hash=_hash_token(raw)).first()

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class UserAccount(User):
    """Django's user, kept in Walle's own admin section beside its groups, so
    there is one notion of group (Team) and it sits with the people in it."""

    class Meta:
        proxy = True
        verbose_name = _("user")
        verbose_name_plural = _("users")


class UserPreference(models.Model):
    """What a person chose for themselves; kept with the account so it follows
    them to every browser (a cookie would not)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference", verbose_name=_("user"))
    language = models.CharField(
        _("language"), max_length=10, blank=True, choices=settings.LANGUAGES,
        help_text=_("Empty: the browser's language."),
    )

    class Meta:
        verbose_name = _("preference")
        verbose_name_plural = _("preferences")

    def __str__(self) -> str:
        return f"{self.user}: {self.language or gettext('browser language')}"

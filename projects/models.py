"""Environments, target hosts, deploy keys and projects."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Team

from . import crypto, validators, windows

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]{0,63}$",
    _("Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit."),
)


class Environment(models.Model):
    """test / staging / production, with the approval rules that apply there."""

    name = models.CharField(_("name"), max_length=50, unique=True)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    deploy_needs_approval = models.BooleanField(_("deploys need approval"), default=True)
    rollback_needs_approval = models.BooleanField(_("rollbacks need approval"), default=False)
    allow_self_approval = models.BooleanField(
        _("submitter may approve own ticket"),
        default=False,
        help_text=_("Separation of duties: leave off for production."),
    )
    # Distinct people, each allowed to approve, must approve the same version
    # of a ticket before it may run (where deploys or rollbacks need approval).
    approvals_required = models.PositiveSmallIntegerField(
        _("approvals required"), default=1, validators=[MinValueValidator(1)],
        help_text=_("How many different people must approve a ticket, e.g. 2 for production."),
    )
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="UTC", validators=[validators.validate_time_zone],
        help_text=_("IANA name, e.g. Asia/Shanghai: deploy windows, freezes and schedules are read in it."),
    )

    class Meta:
        ordering = ["order", "name"]
        verbose_name = _("environment")
        verbose_name_plural = _("environments")

    def __str__(self) -> str:
        return self.name

    def calendar(self) -> windows.Calendar:
        """Its deploy windows and freezes as plain values (see projects.windows)."""
        return windows.Calendar(
            zone=self.time_zone,
            windows=tuple(w.as_window() for w in self.deploy_windows.all()),
            freezes=tuple(f.as_freeze() for f in self.deploy_freezes.all()),
        )


class DeployWindow(models.Model):
    """A weekly stretch in which the environment accepts deploys. An
    environment without windows accepts them at any time (freezes aside)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="deploy_windows", verbose_name=_("environment"))
    # The weekdays as digits, Monday = 0: "0123" = Mon-Thu.
    weekdays = models.CharField(_("weekdays"), max_length=7, validators=[validators.validate_weekdays])
    start = models.TimeField(_("opens at"))
    end = models.TimeField(_("closes at"), help_text=_("Not after the opening time: closes on the next day."))

    class Meta:
        ordering = ["environment", "start", "id"]
        verbose_name = _("deploy window")
        verbose_name_plural = _("deploy windows")

    def __str__(self) -> str:
        return windows.describe(windows.Calendar("UTC", (self.as_window(),)))

    def clean(self) -> None:
        if self.start is not None and self.start == self.end:
            raise ValidationError({"end": _("A window must close at another time than it opens.")})

    def as_window(self) -> windows.Window:
        return windows.Window(frozenset(int(d) for d in self.weekdays), self.start, self.end)


class DeployFreeze(models.Model):
    """Whole days (in the environment's time zone) without deploys, e.g. a holiday."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="deploy_freezes", verbose_name=_("environment"))
    start = models.DateField(_("first day"))
    end = models.DateField(_("last day"), help_text=_("Included."))
    reason = models.CharField(_("reason"), max_length=200)

    class Meta:
        ordering = ["environment", "start", "id"]
        verbose_name = _("deploy freeze")
        verbose_name_plural = _("deploy freezes")

    def __str__(self) -> str:
        return f"{self.start} - {self.end}: {self.reason}"

    def clean(self) -> None:
        if self.start and self.end and self.end < self.start:
            raise ValidationError({"end": _("The last day cannot come before the first day.")})

    def as_freeze(self) -> windows.Freeze:
        return windows.Freeze(self.start, self.end, self.reason)


class DeployKey(models.Model):
    """An SSH key pair Walle logs in with; the private half is encrypted at rest.

    A key belongs to a group (``team``) or, without one, to the platform. Each
    group has one default key (``is_default``), which its projects use unless
    one names a key of its own; so a group's hosts and repositories trust only
    that group's keys, and one group's Maintainers cannot reach another's.
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="deploy_keys", verbose_name=_("group"),
        help_text=_("Empty = a platform key, which only platform admins can give a project."),
    )
    public_key = models.TextField(_("public key"), editable=False)
    fingerprint = models.CharField(_("fingerprint"), max_length=100, editable=False)
    private_key_encrypted = models.TextField(_("private key (encrypted)"), editable=False)
    is_default = models.BooleanField(
        _("default key"), default=False,
        help_text=_("Its group's default key (for a key without a group: the platform key)."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("deploy key")
        verbose_name_plural = _("deploy keys")
        constraints = [
            # NULLs are distinct in a unique index, so the platform key needs its own rule.
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True, team__isnull=True),
                name="one_default_deploy_key",
            ),
            models.UniqueConstraint(
                fields=["team"], condition=models.Q(is_default=True), name="one_default_deploy_key_per_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"

    def private_key(self) -> str:
        return crypto.decrypt(self.private_key_encrypted)

    def authorized_keys_line(self) -> str:
        # The stored public key already carries its comment (walle-<name>).
        return self.public_key.strip()


class HostQuerySet(models.QuerySet):
    def at(self, address: str, port: int) -> HostQuerySet:
        """Hosts at ``address:port``, compared in canonical form, so another
        spelling of the same machine finds the same record."""
        return self.filter(address__iexact=validators.canonical_address(address), port=port)


class Host(models.Model):
    """One real machine. Projects share Host records; the SSH host key is pinned here.

    ``address`` is stored canonical (see ``validators.canonical_address``), so
    comparing records compares machines.
    """

    address = models.CharField(_("address"), max_length=253)
    port = models.PositiveIntegerField(
        _("SSH port"), default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    label = models.CharField(_("label"), max_length=100, blank=True)
    host_key = models.TextField(
        _("pinned host key"), blank=True, help_text=_("Pinned by the config check; empty = not pinned.")
    )
    host_key_fingerprint = models.CharField(_("host key fingerprint"), max_length=100, blank=True)
    host_key_pinned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("host key pinned by")
    )
    host_key_pinned_at = models.DateTimeField(_("host key pinned at"), null=True, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["address", "port"]
        verbose_name = _("host")
        verbose_name_plural = _("hosts")
        constraints = [
            models.UniqueConstraint(fields=["address", "port"], name="host_unique_address_port"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def endpoint(self) -> str:
        """``address`` or ``address:port``: how the engine names the host in logs
        (``engine.plan.Target.name``)."""
        return self.address if self.port == 22 else f"{self.address}:{self.port}"

    @property
    def name(self) -> str:
        return f"{self.endpoint} ({self.label})" if self.label else self.endpoint

    def clean(self) -> None:
        try:
            self.address = validators.clean_host_address(self.address)
        except ValidationError as exc:
            raise ValidationError({"address": exc.messages}) from None
        # A second record for a machine another group uses would pass every
        # "used by another group" check; there is one record per machine.
        if self.port and Host.objects.at(self.address, self.port).exclude(pk=self.pk).exists():
            raise ValidationError({"address": _(
                "Another host record already has this address and port; link that host to the project instead."
            )})

    def unpin(self) -> None:
        """Forget the pinned key (not saved here): the next successful config
        check pins the key of whatever machine now answers."""
        self.host_key, self.host_key_fingerprint = "", ""
        self.host_key_pinned_by, self.host_key_pinned_at = None, None


class RepoMode(models.TextChoices):
    BRANCH = "branch", _("Branch")
    TAG = "tag", _("Tag")


class RolloutStrategy(models.TextChoices):
    """How a deploy's switch spreads over the hosts (engine.rollout.Strategy),
    from the least careful to the most."""

    ALL_AT_ONCE = "all_at_once", _("All at once")
    ONE_BY_ONE = "one_by_one", _("One by one")
    CANARY = "canary", _("Canary, then batches")


STRATEGY_ORDER = [RolloutStrategy.ALL_AT_ONCE, RolloutStrategy.ONE_BY_ONE, RolloutStrategy.CANARY]


class ProjectQuerySet(models.QuerySet):
    def active(self) -> ProjectQuerySet:
        return self.filter(is_active=True)


def _paths_overlap(a: str, b: str) -> bool:
    """Same directory, or one inside the other (by path component, not prefix)."""
    a, b = posixpath.normpath(str(a)), posixpath.normpath(str(b))
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


class Project(models.Model):
    """What to deploy, where to, and how. Belongs to a team and an environment."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="projects", verbose_name=_("group"))
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="projects", verbose_name=_("environment")
    )
    name = models.CharField(_("name"), max_length=100)
    slug = models.CharField(
        _("slug"), max_length=64, unique=True, validators=[slug_validator],
        help_text=_("Used in default paths, e.g. /data/releases/SLUG."),
    )
    description = models.TextField(_("description"), blank=True)
    repo_url = models.CharField(
        _("repository URL"), max_length=500, validators=[validators.validate_repo_url]
    )
    repo_mode = models.CharField(_("mode"), max_length=10, choices=RepoMode.choices, default=RepoMode.BRANCH)
    repo_host_key = models.TextField(
        _("pinned git server host key"), blank=True, help_text=_("Pinned by the config check.")
    )
    deploy_key = models.ForeignKey(
        DeployKey, null=True, blank=True, on_delete=models.PROTECT, related_name="projects",
        help_text=_("Leave empty to use the group's deploy key."),
     verbose_name=_("deploy key"),
)
    # Deploy host
    workspace = models.CharField(
        _("checkout workspace"), max_length=500, blank=True, validators=[validators.validate_workspace],
        help_text=_("On the deploy host, inside WALLE_WORKSPACE_ROOT; empty = WALLE_WORKSPACE_ROOT/SLUG."),
    )
    excludes = models.TextField(_("excludes"), blank=True, help_text=_("One rsync pattern per line; .git is always excluded."))
    # Targets
    run_user = models.CharField(_("run user"), max_length=32, default="www", validators=[validators.validate_run_user])
    webroot = models.CharField(
        _("webroot"), max_length=500, validators=[validators.validate_webroot],
        help_text=_("A symlink Walle manages; do not create it, only its parent."),
    )
    release_library = models.CharField(
        _("release library"), max_length=500, blank=True, validators=[validators.validate_abs_path],
        help_text=_("Empty = /data/releases/SLUG. Each release is a YYYYmmdd-HHMMSS-TICKET dir inside."),
    )
    keep_releases = models.PositiveSmallIntegerField(
        _("releases to keep"), default=10, validators=[MinValueValidator(2), MaxValueValidator(100)]
    )
    hosts = models.ManyToManyField(Host, blank=True, related_name="projects", verbose_name=_("hosts"))
    pre_deploy = models.TextField(_("pre_deploy"), blank=True, help_text=_("Deploy host, in the workspace, before checkout. One command a line."))
    post_deploy = models.TextField(_("post_deploy"), blank=True, help_text=_("Deploy host, in the build dir, after checkout. One command a line."))
    pre_release = models.TextField(_("pre_release"), blank=True, help_text=_("Each target, in the new release dir, before the switch."))
    post_release = models.TextField(_("post_release"), blank=True, help_text=_("Each target, in the webroot, after the switch."))
    post_release_delay = models.PositiveIntegerField(
        _("post_release delay (s)"), default=0, validators=[MaxValueValidator(3600)],
        help_text=_("The pause between batches of a rollout (with the one-by-one rollout: between hosts)."),
    )
    max_parallel = models.PositiveSmallIntegerField(
        _("max hosts in parallel"), default=10, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    compress_transfer = models.BooleanField(
        _("compress transfers"), default=True,
        help_text=_("Compress the copy to the hosts (zstd where both ends support it, else zlib). "
                    "Turn off on a fast LAN, where compressing costs more than it saves."),
    )
    # Rollout (docs/rollouts.md): how the switch spreads over the hosts, and
    # the health gate each batch must pass before the next one switches.
    rollout_strategy = models.CharField(
        _("rollout"), max_length=12, choices=RolloutStrategy.choices, default=RolloutStrategy.ALL_AT_ONCE,
        help_text=_("A ticket may pick a more careful rollout than this, never a less careful one."),
    )
    canary_hosts = models.PositiveSmallIntegerField(
        _("canary hosts"), default=1, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("Canary rollout: hosts in the first batch."),
    )
    batch_size = models.PositiveSmallIntegerField(
        _("batch size"), default=0, validators=[MaxValueValidator(100)],
        help_text=_("Canary rollout: hosts per later batch; 0 = use the percentage."),
    )
    batch_percent = models.PositiveSmallIntegerField(
        _("batch percentage"), default=0, validators=[MaxValueValidator(100)],
        help_text=_("Canary rollout: each later batch is this share of all hosts (rounded up); "
                    "0 with a batch size of 0 = all the rest at once."),
    )
    promote_required = models.BooleanField(
        _("wait for a promote"), default=False,
        help_text=_("Each batch after the first waits until someone who may deploy the ticket presses Promote."),
    )
    health_path = models.CharField(
        _("health check path"), max_length=500, blank=True, validators=[validators.validate_health_path],
        help_text=_("GET this path on each switched host (from the deploy host); empty = no HTTP check."),
    )
    health_port = models.PositiveIntegerField(
        _("health check port"), default=80, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    health_host_header = models.CharField(
        _("health check Host header"), max_length=255, blank=True, validators=[validators.validate_host_header],
        help_text=_("The site's name, e.g. www.example.com; empty = the host's address."),
    )
    health_status = models.PositiveSmallIntegerField(
        _("expected status"), default=200, validators=[MinValueValidator(100), MaxValueValidator(599)]
    )
    health_text = models.CharField(
        _("expected text"), max_length=200, blank=True, help_text=_("The page must contain this text; empty = any."),
    )
    health_timeout = models.PositiveSmallIntegerField(
        _("health check timeout (s)"), default=5, validators=[MinValueValidator(1), MaxValueValidator(120)]
    )
    health_retries = models.PositiveSmallIntegerField(
        _("health check retries"), default=2, validators=[MaxValueValidator(20)],
        help_text=_("Further attempts, 2 s apart, before the check counts as failed."),
    )
    health_command = models.CharField(
        _("health check command"), max_length=500, blank=True, validators=[validators.validate_health_command],
        help_text=_("Run on each switched host as the run user, in the webroot; exit 0 = healthy. Empty = none."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("project")
        verbose_name_plural = _("projects")
        constraints = [
            models.UniqueConstraint(fields=["team", "name", "environment"], name="project_unique_name_env"),
        ]
        # Object permissions a Maintainer may grant one user on one project
        # (guardian); see accounts.permissions.Action.
        permissions = [
            ("walle_view", "See the project and its tickets"),
            ("walle_view_details", "See config, hosts, commits and logs"),
            ("walle_submit", "Open tickets; edit or cancel own"),
            ("walle_deploy_own", "Deploy own approved tickets"),
            ("walle_approve", "Approve or reject tickets"),
            ("walle_deploy_any", "Deploy any approved ticket"),
            ("walle_rollback", "Roll back"),
            ("walle_configure", "Configure the project, run the check, release a lock"),
            ("walle_manage", "Manage members; delete the project"),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.environment}]"

    def clean(self) -> None:
        for line in _lines(self.excludes):
            validators.validate_exclude_line(line)
        # Each path's own error is reported on its field by the field validators;
        # the rules below compare paths, and repeating a field's error under
        # another field would only show it twice.
        if self._valid(validators.validate_webroot, self.webroot) and self._valid(
            validators.validate_abs_path, self.effective_release_library
        ):
            try:
                validators.validate_layout(self.webroot, self.effective_release_library)
            except ValidationError as exc:
                raise ValidationError({"release_library": exc.messages}) from None
        self._check_paths_are_not_shared()

    @staticmethod
    def _valid(check: Callable[[str], None], value: str) -> bool:
        try:
            check(value)
        except ValidationError:
            return False
        return True

    def _check_paths_are_not_shared(self) -> None:
        """No two projects may share, or nest, a release library or a workspace:
        keeping N releases in one would delete the other's releases, and two
        checkouts in one workspace overwrite each other."""
        if not self.slug:
            return  # the slug's own error is reported; the defaults depend on it
        errors = {}
        others = Project.objects.exclude(pk=self.pk) if self.pk else Project.objects.all()
        others = others.only("slug", "workspace", "release_library")
        checks = [
            ("release_library", self.effective_release_library, "effective_release_library", _("release library"),
             validators.validate_abs_path),
            ("workspace", self.effective_workspace, "effective_workspace", _("checkout workspace"),
             validators.validate_workspace),
        ]
        for field, mine, attr, label, check in checks:
            if not self._valid(check, mine):
                continue  # the field's own error says what is wrong
            if any(_paths_overlap(mine, getattr(other, attr)) for other in others):
                errors[field] = _(
                    "%(path)s is, contains or lies inside another project's %(label)s; "
                    "give each project a directory of its own."
                ) % {"path": mine, "label": label}
        if errors:
            raise ValidationError(errors)

    # Effective values: what the engine uses when a field is left empty.
    @property
    def effective_workspace(self) -> str:
        return self.workspace or str(Path(settings.WALLE_WORKSPACE_ROOT) / self.slug)

    @property
    def effective_release_library(self) -> str:
        return self.release_library or posixpath.join("/data/releases", self.slug)

    def allows_strategy(self, strategy: str) -> bool:
        """A ticket may be more careful than its project, never less."""
        return STRATEGY_ORDER.index(RolloutStrategy(strategy)) >= STRATEGY_ORDER.index(
            RolloutStrategy(self.rollout_strategy))

    def allowed_strategies(self) -> list[RolloutStrategy]:
        return [s for s in STRATEGY_ORDER if self.allows_strategy(s)]

    @property
    def exclude_lines(self) -> tuple[str, ...]:
        return _lines(self.excludes)

    def hook_lines(self, name: str) -> tuple[str, ...]:
        return _lines(getattr(self, name))


class ProjectSecret(models.Model):
    """A value a project's hooks receive as an environment variable.

    Encrypted at rest like deploy keys; written, never read back: pages and the
    API show at most its name. ``projects.secrets.secret_env`` decrypts them
    for the worker.
    """

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="secrets", verbose_name=_("project"))
    name = models.CharField(
        _("name"), max_length=64, validators=[validators.validate_secret_name],
        help_text=_("The environment variable, e.g. NPM_TOKEN."),
    )
    value_encrypted = models.TextField(_("value (encrypted)"), editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("secret")
        verbose_name_plural = _("secrets")
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="project_secret_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def set_value(self, value: str) -> None:
        """Encrypt ``value`` into this (unsaved) secret."""
        validators.validate_secret_value(value)
        self.value_encrypted = crypto.encrypt(value)

    def decrypted(self) -> str:
        return crypto.decrypt(self.value_encrypted)

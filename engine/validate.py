"""Checks on plan values, done before the engine touches anything.

Values reach remote shells only through ``shlex.quote`` and local processes only as
argv, so these rules are a second line of defence: they turn nonsense (relative
paths, ``..``, ``/``) and obviously hostile input into a clear refusal early.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re

from . import health, rollout
from .plan import RELEASE_NAME_RE, Common, DeployPlan, RefKind, RollbackPlan, Target

# Path characters Walle accepts for webroots, release libraries and workspaces.
# Narrower than POSIX on purpose: no shell metacharacters, no whitespace.
_PATH_CHARS_RE = re.compile(r"^[A-Za-z0-9._/@+=,-]+$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Host names and IPv4 literals; never a leading "-" (ssh would read it as an option).
# IPv6 literals would need [brackets] in every rsync/ssh argument, so use a name.
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class PlanError(ValueError):
    """A plan value is unusable; the message says which one and why."""


def has_control_chars(text: str) -> bool:
    """True if ``text`` holds ASCII control characters (newline, NUL, ESC...)."""
    return bool(_CONTROL_RE.search(text))


def check_abs_path(label: str, path: str) -> str:
    """Return ``path`` if it is absolute, normalised and plain; raise PlanError."""
    if not path:
        raise PlanError(f"{label} is empty")
    if has_control_chars(path):
        raise PlanError(f"{label} contains control characters")
    if not path.startswith("/"):
        raise PlanError(f"{label} must be an absolute path (got {path!r})")
    if ".." in path.split("/"):
        raise PlanError(f"{label} must not contain '..' (got {path!r})")
    if posixpath.normpath(path) != path or path.startswith("//"):
        raise PlanError(f"{label} must be normalised, without '//', './' or a trailing '/' (got {path!r})")
    if not _PATH_CHARS_RE.fullmatch(path):
        raise PlanError(f"{label} may only contain letters, digits and . _ - / @ + = , (got {path!r})")
    return path


def check_webroot(webroot: str) -> str:
    """Return ``webroot`` if it is a usable symlink path (its parent is not '/')."""
    check_abs_path("webroot", webroot)
    if posixpath.dirname(webroot) == "/":
        raise PlanError(f"webroot {webroot} sits directly under '/'; use a path like /data/www/site")
    return webroot


def check_layout(webroot: str, release_library: str) -> None:
    """Check the webroot symlink and the release library make a sane pair."""
    check_webroot(webroot)
    check_abs_path("release library", release_library)
    if release_library == "/":
        raise PlanError("release library must not be '/'")
    if webroot == release_library or webroot.startswith(release_library + "/"):
        raise PlanError("webroot must not be the release library or inside it")
    if release_library.startswith(webroot + "/"):
        raise PlanError("release library must not be inside the webroot")


def check_user(user: str) -> str:
    """Return ``user`` if it is a plain POSIX login name."""
    if not _USER_RE.fullmatch(user or ""):
        raise PlanError(f"run user {user!r} is not a valid login name (lowercase letters, digits, _ and -)")
    return user


def check_release_name(name: str) -> str:
    """Return ``name`` if it is a Walle release name (YYYYmmdd-HHMMSS-<ticket>)."""
    if not RELEASE_NAME_RE.fullmatch(name or ""):
        raise PlanError(f"release name {name!r} does not look like YYYYmmdd-HHMMSS-<ticket>")
    return name


def check_target(target: Target) -> Target:
    """Check a target's address, port and that its host key is pinned."""
    check_address(target.address)
    if not 0 < target.port < 65536:
        raise PlanError(f"host {target.name}: port {target.port} is out of range")
    if not target.host_key.strip():
        raise PlanError(f"host {target.name} has no pinned host key; run the config check to pin it")
    return target


def check_address(address: str) -> str:
    """Return ``address`` if it is a host name, IPv4 or IPv6 literal (no leading '-')."""
    if ":" in (address or ""):
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise PlanError(f"host address {address!r} is not a host name or IP address") from None
        return address
    if not _ADDRESS_RE.fullmatch(address or ""):
        raise PlanError(f"host address {address!r} is not a host name or IP address")
    return address


def check_common(plan: Common) -> None:
    """Checks shared by deploys and rollbacks."""
    check_layout(plan.webroot, plan.release_library)
    check_user(plan.run_user)
    if plan.ref_kind not in (RefKind.BRANCH, RefKind.TAG):
        raise PlanError(f"ref kind must be 'branch' or 'tag' (got {plan.ref_kind!r})")
    if not plan.key.value.strip():
        raise PlanError("no SSH key configured for this project")
    if plan.max_parallel < 1:
        raise PlanError("max_parallel must be at least 1")
    if plan.post_release_delay < 0:
        raise PlanError("post_release_delay must not be negative")
    if plan.command_timeout < 1 or plan.connect_timeout < 1:
        raise PlanError("timeouts must be at least 1 second")
    try:
        rollout.check(plan.effective_rollout)
        health.check(plan.health)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def check_deploy_plan(plan: DeployPlan) -> None:
    """Refuse a deploy plan with any unusable value, before anything runs."""
    check_common(plan)
    check_abs_path("workspace", plan.workspace)
    check_release_name(plan.release_name)
    if not plan.targets:
        raise PlanError("no target hosts selected")
    _check_unique(plan.targets)
    for target in plan.targets:
        check_target(target)
    for line in plan.excludes:
        if has_control_chars(line):
            raise PlanError(f"exclude pattern {line!r} contains control characters")


def check_rollback_plan(plan: RollbackPlan) -> None:
    """Refuse a rollback plan with any unusable value, before anything runs."""
    check_common(plan)
    if not plan.releases:
        raise PlanError("no hosts to roll back")
    _check_unique(tuple(target for target, _ in plan.releases))
    for target, release in plan.releases:
        check_target(target)
        if not release:
            raise PlanError(f"host {target.name} has no earlier release to roll back to")
        check_release_name(release)


def _check_unique(targets: tuple[Target, ...]) -> None:
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise PlanError("the same host is listed twice")

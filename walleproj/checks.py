"""System checks for what makes this deploy host safe to run Walle on."""

from __future__ import annotations

import subprocess

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register

from engine import sandbox
from engine.sandbox import SandboxMode
from releases.plans import build_user
from walleproj import datadir


@register(Tags.security, deploy=False)
def data_dir_is_private(app_configs=None, **kwargs) -> list[CheckMessage]:
    return [
        Error(problem, hint="chmod 700 the data dir and 600 its files; only Walle's user may read them",
              id="walle.E001")
        for problem in datadir.problems(settings.DATA_DIR)
    ]


@register(Tags.security)
def hook_sandbox_available(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Deploy-host hooks run the repository's own scripts: they must be confined."""
    try:
        mode = SandboxMode(settings.WALLE_HOOK_SANDBOX)
    except ValueError:
        return [Error(f"WALLE_HOOK_SANDBOX={settings.WALLE_HOOK_SANDBOX!r} is not one of required, auto, off",
                      id="walle.E002")]
    if mode != SandboxMode.OFF and sandbox.bwrap_path() is not None:
        return _sandbox_works()
    message = (
        "build hooks (pre_deploy/post_deploy) cannot run sandboxed: "
        + ("WALLE_HOOK_SANDBOX=off" if mode == SandboxMode.OFF else "bubblewrap (bwrap) is not installed")
    )
    if sandbox.running_as_root():
        return [Warning(message + "; running as root, Walle refuses to run them at all",
                        hint="apt-get install bubblewrap, or run Walle as an unprivileged user", id="walle.W001")]
    hint = "apt-get install bubblewrap" if mode == SandboxMode.REQUIRED else "they run with this user's rights"
    return [Info(message, hint=hint, id="walle.I001")]


def _sandbox_works() -> list[CheckMessage]:
    """bwrap is there; can it start a sandbox here, and as whom would hooks run?"""
    problems: list[CheckMessage] = []
    if sandbox.running_as_root():
        user = build_user()
        if user.uid == 0:
            problems.append(Error(
                f"WALLE_BUILD_USER={settings.WALLE_BUILD_USER!r} is not an unprivileged user of this machine",
                hint="name an existing non-root user (default: nobody); hooks run as it when Walle runs as root",
                id="walle.E003"))
        if sandbox.setpriv_path() is None:
            problems.append(Error("setpriv (util-linux) is missing: as root, hooks cannot drop to the build user",
                                  hint="apt-get install util-linux", id="walle.E004"))
    probe = subprocess.run([sandbox.bwrap_path() or "bwrap", "--ro-bind", "/", "/", "--", "true"],
                           capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        problems.append(Warning(
            f"bubblewrap is installed but cannot start a sandbox here: {probe.stderr.strip()[:200]}",
            hint="allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1) or run in a VM/"
                 "container that permits them; until then deploys with build hooks fail",
            id="walle.W002"))
    return problems

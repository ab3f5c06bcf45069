"""System checks for what makes this deploy host safe to run Walle on."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register

from releases.deploy import sandbox
from releases.deploy.sandbox import SandboxMode
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
        return []
    message = (
        "build hooks (pre_deploy/post_deploy) cannot run sandboxed: "
        + ("WALLE_HOOK_SANDBOX=off" if mode == SandboxMode.OFF else "bubblewrap (bwrap) is not installed")
    )
    if sandbox.running_as_root():
        return [Warning(message + "; running as root, Walle refuses to run them at all",
                        hint="apt-get install bubblewrap, or run Walle as an unprivileged user", id="walle.W001")]
    hint = "apt-get install bubblewrap" if mode == SandboxMode.REQUIRED else "they run with this user's rights"
    return [Info(message, hint=hint, id="walle.I001")]

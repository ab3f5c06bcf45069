"""Run a project's hook lines on the deploy host or on a target.

Each line runs as ``bash -e -o pipefail -c <line>``. Values about the run (ticket
title, branch, ...) are passed as WALLE_* environment variables and never pasted
into the hook's text, so ``"; id; "`` in a title is just text to the hook.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from . import local
from .local import OnLine
from .plan import Common, RefKind, Stream
from .sandbox import DEFAULT_SANDBOX, Confinement, SandboxSpec, SandboxUnavailable, env_script, wrap
from .ssh import Connection

Runner = Callable[[list[str], OnLine], int]


class HookError(RuntimeError):
    """A hook line failed or timed out."""


def hook_argv(line: str) -> list[str]:
    """argv for one hook line: bash stops at the first failing command or pipe stage."""
    return ["bash", "-e", "-o", "pipefail", "-c", line]


def hook_env(plan: Common, *, commit: str, release: str, release_path: str) -> dict[str, str]:
    """The WALLE_* variables every hook sees."""
    values = {
        "WALLE_PROJECT": plan.project,
        "WALLE_ENVIRONMENT": plan.environment,
        "WALLE_TICKET_ID": str(plan.ticket_id),
        "WALLE_TICKET_TITLE": plan.ticket_title,
        "WALLE_BRANCH": plan.ref if plan.ref_kind == RefKind.BRANCH else "",
        "WALLE_TAG": plan.ref if plan.ref_kind == RefKind.TAG else "",
        "WALLE_COMMIT": commit,
        "WALLE_RELEASE": release,
        "WALLE_RELEASE_PATH": release_path,
        "WALLE_WEBROOT": plan.webroot,
        "WALLE_DEPLOY_USER": plan.deployed_by,
    }
    # The environment cannot carry NUL bytes; everything else passes unchanged.
    return {name: value.replace("\0", "") for name, value in values.items()}


def secret_env(plan: Common) -> dict[str, str]:
    """The project's secrets as environment variables (names validated upstream)."""
    return {name: secret.value.replace("\0", "") for name, secret in plan.secrets}


# Reads NAME='value' lines from stdin into the environment, then runs the hook:
# secrets never appear in the remote command line (visible in ps on the host).
_LOAD_SECRETS = 'set -a; eval "$(cat)"; set +a; exec "$@"'


def _secrets_script(secrets: Mapping[str, str]) -> bytes:
    try:
        return env_script(secrets)
    except ValueError as exc:
        raise HookError(f"bad secret name: {exc}") from None


def run_lines(lines: Sequence[str], runner: Runner, on_line: OnLine) -> None:
    """Run hook lines in order; raise HookError at the first failure."""
    for line in lines:
        if not line.strip():
            continue
        on_line(Stream.INFO, f"$ {line}")
        status = runner(hook_argv(line), on_line)
        if status == local.TIMEOUT_STATUS:
            raise HookError(f"hook timed out: {line}")
        if status != 0:
            raise HookError(f"hook failed with exit status {status}: {line}")


def run_local(
    lines: Sequence[str],
    *,
    box: Confinement,
    env: Mapping[str, str],
    timeout: int,
    on_line: OnLine,
    sandbox: SandboxSpec = DEFAULT_SANDBOX,
) -> None:
    """Run hook lines on the deploy host in ``box.cwd`` with a minimal
    environment, HOME = ``box.home``, inside the sandbox when there is one.

    Sandboxed, bubblewrap itself starts from ``/`` with only PATH and the
    locale; the hook's variables (secrets included) reach the hook through a
    memfd that bubblewrap copies inside, never through the launcher.
    """
    full_env = local.safe_env({**env, "HOME": box.home})
    env_fd = os.memfd_create("walle-hook-env")
    try:
        try:
            os.write(env_fd, env_script({name: value for name, value in full_env.items() if name != "PATH"}))
        except ValueError as exc:
            raise HookError(str(exc)) from None

        def runner(argv: list[str], out: OnLine) -> int:
            try:
                wrapped = wrap(argv, sandbox, box, env_fd)
            except SandboxUnavailable as exc:
                raise HookError(str(exc)) from None
            if wrapped is None:
                return local.run(argv, cwd=box.cwd, env=full_env, timeout=timeout, on_line=out)
            os.lseek(env_fd, 0, os.SEEK_SET)  # bubblewrap reads it from the current offset
            return local.run(wrapped, cwd="/", env=local.safe_env(), timeout=timeout, on_line=out,
                             pass_fds=(env_fd,))

        run_lines(lines, runner, on_line)
    finally:
        os.close(env_fd)


def run_remote(
    conn: Connection,
    lines: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: int,
    on_line: OnLine,
    secrets: Mapping[str, str] | None = None,
) -> None:
    """Run hook lines on a target in ``cwd``; env travels as quoted ``env K=V``
    words, secrets as a script on the channel's stdin."""
    stdin = _secrets_script(secrets) if secrets else b""

    def runner(argv: list[str], out: OnLine) -> int:
        if stdin:
            argv = ["bash", "-c", _LOAD_SECRETS, "walle-hook", *argv]
        return conn.run(argv, cwd=cwd, env=env, timeout=timeout, on_line=out, stdin=stdin)

    run_lines(lines, runner, on_line)

"""Project secrets reach the hooks that need them (deploy host and targets),
are masked in every stored line, and never travel on a command line."""

from __future__ import annotations

import hashlib

import pytest

from projects.secrets import set_secret
from releases.models import DeployRun
from tests.deploy_fixtures import deploy_now, open_approved_ticket

pytestmark = [pytest.mark.sshd, pytest.mark.django_db(transaction=True)]

TOKEN = "tok_live_9f8e7d6c5b4a3f2e1d0c"
# On a target, every process's command line is readable by every user there:
# this hook line looks for the token in all of them (it reads the token from a
# file, so its own command line does not hold it).
SCAN = (
    'printf %s "$API_TOKEN" > pattern && found=0; '
    "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null | grep -qF -f pattern && found=1; done; "
    'rm -f pattern; echo "token on a command line: $found"'
)


def test_secrets_reach_hooks_masked_and_never_on_a_command_line(site):
    set_secret(site.users["maintainer"], site.project, "API_TOKEN", TOKEN)
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    site.project.post_deploy = 'echo "build sees $API_TOKEN"\nprintf %s "$API_TOKEN" | sha256sum'
    site.project.post_release = f'echo "target sees $API_TOKEN"\nprintf %s "$API_TOKEN" | sha256sum\n{SCAN}'
    site.project.save()
    run = deploy_now(site.users["developer"], open_approved_ticket(site, "v1"))
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    texts = list(run.log_lines.values_list("text", flat=True))
    everything = "\n".join(texts)
    assert TOKEN not in everything
    assert "build sees [MASKED]" in texts
    assert texts.count("target sees [MASKED]") == len(site.targets)
    assert sum(line.startswith(digest) for line in texts) == 1 + len(site.targets)  # delivered intact everywhere
    assert texts.count("token on a command line: 0") == len(site.targets)

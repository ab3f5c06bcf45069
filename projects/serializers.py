"""Project representations for the API.

Everyone who sees a project gets its summary; configuration (repository,
paths, hooks, hosts) only goes to those who may VIEW_DETAILS. Secrets never
appear: a deploy key shows its public half and fingerprint only, hosts their
host-key fingerprint only.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.permissions import Action, can

from .keys import key_for
from .models import DeployKey, Environment, Host, Project


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ("slug", "name", "deploy_needs_approval", "rollback_needs_approval", "approvals_required",
                  "allow_self_approval")


class HostSerializer(serializers.ModelSerializer):
    class Meta:
        model = Host
        fields = ("id", "name", "address", "port", "label", "enabled", "host_key_fingerprint")


class DeployKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = DeployKey
        fields = ("name", "fingerprint", "public_key")


class ProjectSummarySerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", read_only=True)
    environment = EnvironmentSerializer(read_only=True)

    class Meta:
        model = Project
        fields = ("id", "name", "slug", "team", "environment", "is_active")


class ProjectDetailSerializer(ProjectSummarySerializer):
    hosts = HostSerializer(many=True, read_only=True)
    deploy_key = serializers.SerializerMethodField()
    workspace = serializers.CharField(source="effective_workspace", read_only=True)
    release_library = serializers.CharField(source="effective_release_library", read_only=True)

    class Meta(ProjectSummarySerializer.Meta):
        fields = ProjectSummarySerializer.Meta.fields + (
            "description", "repo_url", "repo_mode", "deploy_key", "workspace", "excludes", "run_user",
            "webroot", "release_library", "keep_releases", "hosts", "pre_deploy", "post_deploy",
            "pre_release", "post_release", "post_release_delay", "max_parallel", "compress_transfer",
            "rollout_strategy", "canary_hosts", "batch_size", "batch_percent", "promote_required", "health_path",
            "health_port", "health_host_header", "health_status", "health_text", "health_timeout", "health_retries",
            "health_command", "created_at", "updated_at",
        )

    @extend_schema_field(DeployKeySerializer)
    def get_deploy_key(self, project: Project) -> dict[str, Any]:
        # The key the project actually logs in with (its group's, unless one
        # was chosen), so scripts know which public key to install.
        return DeployKeySerializer(key_for(project)).data


class ProjectSerializer(ProjectSummarySerializer):
    """Summary or full config, per project, by what the requesting user may see.

    A list mixes both, so the choice is made per object. The view passes the
    ids the user may see details of (one query) as ``details_ids``.
    """

    def to_representation(self, instance: Project) -> dict[str, Any]:
        if self._shows_details(instance):
            return ProjectDetailSerializer(instance, context=self.context).data
        return super().to_representation(instance)

    def _shows_details(self, project: Project) -> bool:
        ids = self.context.get("details_ids")
        if ids is not None:
            return project.pk in ids
        request = self.context.get("request")
        return request is not None and can(request.user, Action.VIEW_DETAILS, project)


class CheckResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    host = serializers.CharField()
    ok = serializers.BooleanField()
    warning = serializers.BooleanField()
    message = serializers.CharField()
    fix = serializers.CharField()


class CheckReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    results = CheckResultSerializer(many=True)
    pinned_hosts = serializers.ListField(child=serializers.IntegerField())
    pinned_repo_host_key = serializers.BooleanField()


class RefsSerializer(serializers.Serializer):
    branches = serializers.ListField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.CharField())


class CommitSerializer(serializers.Serializer):
    sha = serializers.CharField()
    short = serializers.CharField()
    author = serializers.CharField()
    date = serializers.CharField()
    message = serializers.CharField()

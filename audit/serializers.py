from __future__ import annotations

from rest_framework import serializers

from .models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", help_text="user name at the time; empty for the worker")
    project = serializers.IntegerField(source="project_id", allow_null=True)
    group = serializers.IntegerField(source="team_id", allow_null=True)
    changes = serializers.JSONField(help_text='{field: [before, after]}, or "changed" for a secret')

    class Meta:
        model = AuditEntry
        fields = [
            "id", "created_at", "actor", "origin", "source_address", "kind", "action", "project", "project_name",
            "group", "object_type", "object_id", "object_repr", "changes", "note",
        ]
        read_only_fields = fields

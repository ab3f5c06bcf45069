"""Ticket, run and log representations for the API, and the ticket form.

Guests see a ticket, its status and its timeline; hosts, per-host results,
run errors and event notes (which carry deploy errors) need VIEW_DETAILS,
like the deploy log itself.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.permissions import Action, can, visible
from projects.models import Host, Project, RolloutStrategy
from projects.serializers import HostSerializer

from .models import Approval, DeployRun, LogLine, RunHost, Ticket, TicketEvent


def shows_details(context: dict[str, Any], ticket: Ticket) -> bool:
    request = context.get("request")
    return request is not None and can(request.user, Action.VIEW_DETAILS, ticket)


class TicketEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None, read_only=True)

    class Meta:
        model = TicketEvent
        fields = ("action", "actor", "from_status", "to_status", "note", "created_at")


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = Approval
        fields = ("approver", "version", "created_at")
        read_only_fields = fields


class RunHostSerializer(serializers.ModelSerializer):
    host = HostSerializer(read_only=True)

    class Meta:
        model = RunHost
        fields = ("host", "status", "release", "previous_release", "error", "duration")


class RunSummarySerializer(serializers.ModelSerializer):
    triggered_by = serializers.CharField(source="triggered_by.username", default=None, read_only=True)

    class Meta:
        model = DeployRun
        fields = (
            "number", "status", "stage", "release_name", "commit", "triggered_by", "failed_batch",
            "created_at", "started_at", "finished_at", "duration",
        )


class RunDetailSerializer(RunSummarySerializer):
    host_results = RunHostSerializer(many=True, read_only=True)

    class Meta(RunSummarySerializer.Meta):
        fields = RunSummarySerializer.Meta.fields + ("error", "worker", "host_results")


class TicketSerializer(serializers.ModelSerializer):
    """The list row: what every viewer of the project may see."""

    project_name = serializers.CharField(source="project.name", read_only=True)
    environment = serializers.CharField(source="project.environment.slug", read_only=True)
    author = serializers.CharField(source="author.username", read_only=True)
    approvals_required = serializers.IntegerField(
        read_only=True,
        help_text="approvals of one version, by distinct people, the ticket needs where its environment asks "
                  "for approval",
    )
    approvals = serializers.SerializerMethodField(
        help_text="every approval given, oldest first; only those of the current `version` count")
    approval_count = serializers.SerializerMethodField(help_text="approvals of the current version")

    class Meta:
        model = Ticket
        fields = (
            "id", "project", "project_name", "environment", "kind", "status", "title", "ref_kind", "ref",
            "commit", "author", "rollback_of", "rollback_release", "rollout_strategy", "version", "scheduled_at",
            "created_at", "updated_at", "approvals_required", "approval_count", "approvals",
        )
        read_only_fields = fields

    # Both read ticket.approvals.all(), which the list prefetches once for the page.
    @extend_schema_field(ApprovalSerializer(many=True))
    def get_approvals(self, ticket: Ticket) -> list[dict[str, Any]]:
        return ApprovalSerializer(ticket.approvals.all(), many=True).data

    def get_approval_count(self, ticket: Ticket) -> int:
        return sum(1 for approval in ticket.approvals.all() if approval.version == ticket.version)


class TicketDetailSerializer(TicketSerializer):
    events = serializers.SerializerMethodField()
    latest_run = serializers.SerializerMethodField()
    hosts = serializers.SerializerMethodField()

    class Meta(TicketSerializer.Meta):
        fields = TicketSerializer.Meta.fields + ("description", "reject_reason", "hosts", "events", "latest_run")
        read_only_fields = fields

    def get_events(self, ticket: Ticket) -> list[dict[str, Any]]:
        events = TicketEventSerializer(ticket.events.select_related("actor"), many=True).data
        if not shows_details(self.context, ticket):
            for event in events:
                event["note"] = ""
        return events

    def get_latest_run(self, ticket: Ticket) -> dict[str, Any] | None:
        run = ticket.latest_run()
        if run is None:
            return None
        serializer = RunDetailSerializer if shows_details(self.context, ticket) else RunSummarySerializer
        return serializer(run).data

    def get_hosts(self, ticket: Ticket) -> list[dict[str, Any]] | None:
        if not shows_details(self.context, ticket):
            return None
        return HostSerializer(ticket.hosts.all(), many=True).data


class TicketCreateSerializer(serializers.Serializer):
    """Input for a new ticket. Choices are limited to what the user can see, so
    an unknown and an invisible project (or host) get the same answer."""

    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                  help_text="empty = the ref and the short commit")
    ref = serializers.CharField(max_length=255, help_text="branch or tag, per the project's mode")
    commit = serializers.CharField(
        max_length=40, required=False, allow_blank=True, default="",
        help_text="full SHA on the ref; empty = the ref's tip",
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")
    hosts = serializers.PrimaryKeyRelatedField(
        queryset=Host.objects.none(), many=True, required=False,
        help_text="host ids; omitted = every enabled host of the project",
    )
    rollout_strategy = serializers.ChoiceField(
        choices=RolloutStrategy.choices, required=False, allow_blank=True, default="",
        help_text="empty = the project's rollout; else one at least as careful (all_at_once < one_by_one < canary)",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:  # None when drf-spectacular inspects the class
            self.fields["project"].queryset = visible(request.user, Project.objects.all())
            self.fields["hosts"].child_relation.queryset = visible(request.user, Host.objects.all())


class TicketEditSerializer(serializers.Serializer):
    """Input for editing a ticket; every field is optional (omitted = as is).
    A rollback ticket keeps the ref, commit and hosts it undoes."""

    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    ref = serializers.CharField(max_length=255, required=False, help_text="branch or tag, per the project's mode")
    commit = serializers.CharField(
        max_length=40, required=False, allow_blank=True,
        help_text="full SHA on the ref; empty (or omitted with a new ref) = the ref's tip",
    )
    hosts = serializers.PrimaryKeyRelatedField(
        queryset=Host.objects.none(), many=True, required=False, help_text="host ids; omitted = unchanged",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:  # None when drf-spectacular inspects the class
            self.fields["hosts"].child_relation.queryset = visible(request.user, Host.objects.all())

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        ticket = self.context.get("ticket")
        if ticket is not None and ticket.is_rollback:
            fixed = sorted({"ref", "commit", "hosts"} & set(attrs))
            if fixed:
                raise serializers.ValidationError({name: ["A rollback ticket keeps what it undoes."] for name in fixed})
        return attrs


SEEN_VERSION_HELP = (
    "the ticket's `version` as you reviewed it; if the ticket was edited since, the request is refused "
    "with 409 and nothing changes"
)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)
    version = serializers.IntegerField(min_value=1, required=False, help_text=SEEN_VERSION_HELP)


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class ApproveSerializer(NoteSerializer):
    """An approval names the version of the ticket it approves."""

    version = serializers.IntegerField(min_value=1, help_text=SEEN_VERSION_HELP)


class DeploySerializer(serializers.Serializer):
    override_reason = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="",
        help_text="outside the environment's deploy window or in a freeze: an Owner's reason to deploy anyway "
                  "(recorded); without it such a deploy is refused with the next open window",
    )


class ScheduleSerializer(serializers.Serializer):
    at = serializers.DateTimeField(
        help_text="ISO 8601; without an offset it is read in the environment's time zone. Must be in the future."
    )
    version = serializers.IntegerField(min_value=1, help_text=SEEN_VERSION_HELP)


class RollbackSerializer(serializers.Serializer):
    release = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default="",
        help_text="a kept release name; empty = what was live before the ticket",
    )


class ConsoleLinesSerializer(serializers.ListSerializer):
    """A page of lines without a serializer run per line: a page holds up to
    2,000 lines, and DRF's per-field machinery cost ~25 µs a line. The output
    is LogLineSerializer's, field for field (the time through its own field)."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        time = self.child.fields["time"]  # this serializer's own copy of the field
        # The time zone once per page, not once per line (each lookup goes
        # through asgiref's Local); DRF uses the field's ``timezone`` when set.
        time.timezone = time.default_timezone()
        return [
            {"seq": line.seq, "time": time.to_representation(line.created_at), "host": line.host,
             "stage": line.stage, "stream": line.stream, "text": line.text}
            for line in data
        ]


class LogLineSerializer(serializers.ModelSerializer):
    time = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = LogLine
        fields = ("seq", "time", "host", "stage", "stream", "text")
        list_serializer_class = ConsoleLinesSerializer


class LogSerializer(serializers.Serializer):
    """One page of a run's console, bounded by lines and by bytes of text."""

    ticket = serializers.IntegerField()
    status = serializers.CharField()
    run = RunSummarySerializer(allow_null=True)
    lines = LogLineSerializer(many=True)
    next_after = serializers.IntegerField(help_text="pass as ?after= for the lines that follow")
    more = serializers.BooleanField(help_text="more lines follow next_after now; ask again at once")
    next_before = serializers.IntegerField(help_text="pass as ?before= for the lines before this page")
    more_before = serializers.BooleanField(help_text="earlier lines exist before next_before")

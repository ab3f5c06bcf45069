"""Tickets over the API. Each endpoint parses input, calls one workflow (or
repository) function and renders the result; the workflow checks the policy
and moves the status."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts.drf import PolicyErrorsMixin, WallePermission, check_object
from accounts.permissions import Action, visible
from projects.api import ProjectViewSet as BaseProjectViewSet
from projects.models import RepoMode
from projects.serializers import CommitSerializer, ProjectDetailSerializer, RefsSerializer

from . import queries, repository, workflow
from .forms import BadParameter, parse_count
from .models import Approval, DeployRun, Ticket
from .serializers import (
    ApproveSerializer,
    DeploySerializer,
    LogSerializer,
    NoteSerializer,
    ReasonSerializer,
    RollbackSerializer,
    ScheduleSerializer,
    TicketCreateSerializer,
    TicketDetailSerializer,
    TicketEditSerializer,
    TicketSerializer,
)

LOG_PAGE = 2000  # most lines per /log/ response (also bounded by WALLE_API_LOG_PAGE_BYTES); clients follow next_after


class Refused(exceptions.APIException):
    """A WorkflowError that is not about state: bad input the workflow caught."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = gettext_lazy("The request was refused.")


class RepositoryUnavailable(exceptions.APIException):
    """The git server could not be reached; not the client's fault."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = gettext_lazy("The repository could not be fetched.")


class RepositoryMisconfigured(exceptions.APIException):
    """The project's repository settings are invalid: a Maintainer must fix
    them. A conflict with the project's state, not an outage."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("The project's repository settings are not valid.")


class StateConflict(exceptions.APIException):
    """The ticket (or project) is not in a state that allows the action."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("The ticket is not in a state that allows this.")


def _int_param(request: Request, name: str, *, minimum: int = 0, maximum: int | None = None) -> int | None:
    bounds = {"minimum": minimum} | ({} if maximum is None else {"maximum": maximum})
    try:
        return parse_count(request.query_params.get(name), name, **bounds)
    except BadParameter as exc:
        raise exceptions.ValidationError({name: [str(exc)]}) from None


TICKET_FILTERS = [
    OpenApiParameter("project", int), OpenApiParameter("environment", str, description="environment slug"),
    OpenApiParameter("status", str, enum=Ticket.Status.values),
    OpenApiParameter("kind", str, enum=Ticket.Kind.values),
    OpenApiParameter("author", str, description="user name, any case"),
    OpenApiParameter("q", str, description="text in the title or ref, or the start of the commit"),
]
# Anything else on the list is refused rather than silently ignored.
LIST_PARAMS = {p.name for p in TICKET_FILTERS} | {"page", "format"}


class LogTextRenderer(renderers.BaseRenderer):
    """A run's console as plain text, one line per console line, for curl and
    terminals: ``Accept: text/plain`` or ``?format=txt``. Errors come as their
    message."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if not isinstance(data, dict) or "lines" not in data:
            detail = data.get("detail", data) if isinstance(data, dict) else data
            return f"{detail}\n".encode()
        text = "".join(
            f"{line['time']} {line['host'] or 'walle'} {line['stage']} {line['stream']}: {line['text']}\n"
            for line in data["lines"]
        )
        return text.encode()


class TicketViewSet(PolicyErrorsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Deploy and rollback tickets of the projects you can see, newest first."""

    permission_classes = [WallePermission]
    object_actions = {"log": Action.VIEW_DETAILS}

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, (workflow.InvalidTransition, workflow.Conflict, workflow.WindowClosed)):
            exc = StateConflict(str(exc))
        elif isinstance(exc, workflow.WorkflowError):
            exc = Refused(str(exc))
        return super().handle_exception(exc)

    def get_queryset(self) -> QuerySet[Ticket]:
        queryset = (
            Ticket.objects.select_related("project__environment", "author")
            .prefetch_related(Prefetch("approvals", Approval.objects.select_related("approver")))
            .order_by("-created_at", "-id")
        )
        if self.action == "list":
            return queries.listed_tickets(self.request.user, queryset, self._wanted())
        return visible(self.request.user, queryset, Action.VIEW)

    def _wanted(self) -> queries.TicketFilter:
        params = self.request.query_params
        unknown = set(params.keys()) - LIST_PARAMS
        if unknown:
            raise exceptions.ValidationError({name: [_("Unknown filter.")] for name in sorted(unknown)})
        for name, choices in (("status", Ticket.Status.values), ("kind", Ticket.Kind.values)):
            if params.get(name) and params[name] not in choices:
                raise exceptions.ValidationError({name: [_("Unknown %(name)s %(value)r.") % {"name": name, "value": params[name]}]})
        return queries.TicketFilter(
            project_id=_int_param(self.request, "project"), environment=params.get("environment", ""),
            status=params.get("status", ""), kind=params.get("kind", ""), author=params.get("author", ""),
            text=params.get("q", ""),
        )

    def get_serializer_class(self) -> type:
        return TicketSerializer if self.action == "list" else TicketDetailSerializer

    def _render(self, ticket: Ticket, code: int = status.HTTP_200_OK) -> Response:
        ticket = self.get_queryset().get(pk=ticket.pk)  # fresh approvals, not the ones prefetched before the action
        return Response(TicketDetailSerializer(ticket, context=self.get_serializer_context()).data, status=code)

    @extend_schema(parameters=TICKET_FILTERS)
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=TicketCreateSerializer, responses={201: TicketDetailSerializer})
    def create(self, request: Request) -> Response:
        form = TicketCreateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        project = data["project"]
        # Refuse before touching the repository: a Guest must not learn which
        # refs exist, nor make Walle fetch on their behalf.
        check_object(request, Action.SUBMIT, project)
        resolved = _resolve(project, data["ref"], data["commit"])
        ticket = workflow.submit(
            request.user, project, title=data["title"] or Ticket.default_title(resolved.ref, resolved.commit),
            ref=resolved.ref, commit=resolved.commit,
            description=data["description"], hosts=data.get("hosts"), rollout_strategy=data["rollout_strategy"],
        )
        return self._render(ticket, status.HTTP_201_CREATED)

    @extend_schema(request=ApproveSerializer, responses=TicketDetailSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve the ticket as it was at ``version`` (read it from the ticket
        when you review it). 409 if it was edited since: review it again.

        Where the environment needs more than one approval
        (``approvals_required``), the ticket stays ``pending`` until that many
        distinct people approved its current version; the answer shows
        ``approval_count`` and ``approvals``. A second approval by the same
        person is refused (403, with the reason)."""
        ticket = self.get_object()
        check_object(request, Action.APPROVE, ticket)  # the refusal does not depend on the body
        data = _valid(ApproveSerializer, request)
        return self._render(workflow.approve(request.user, ticket, data["note"], version=data["version"]))

    @extend_schema(request=ReasonSerializer, responses=TicketDetailSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = _valid(ReasonSerializer, request)
        return self._render(workflow.reject(request.user, ticket, data["reason"], version=data.get("version")))

    @extend_schema(request=NoteSerializer, responses={200: TicketDetailSerializer, 202: TicketDetailSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a ticket that has not run (200, ``cancelled``), or stop a
        rollout waiting for a promote (202, ``cancelling``: the worker switches
        back the hosts the run switched, then the ticket is ``cancelled``, or
        ``failed`` if a host could not be switched back). Stopping a rollout
        takes the right to promote it. 409 when the status allows no cancel."""
        ticket = self.get_object()
        note = _valid(NoteSerializer, request)["note"]
        ticket = workflow.cancel(request.user, ticket, note)
        code = status.HTTP_202_ACCEPTED if ticket.status == Ticket.Status.CANCELLING else status.HTTP_200_OK
        return self._render(ticket, code)

    @extend_schema(request=DeploySerializer, responses={202: TicketDetailSerializer})
    @action(detail=True, methods=["post"])
    def deploy(self, request: Request, pk: str | None = None) -> Response:
        """Queue a run. Outside the deploy window (or in a freeze) it is
        refused (409) naming the next window, unless an Owner gives
        ``override_reason``; rollbacks are always allowed."""
        ticket = self.get_object()
        reason = _valid(DeploySerializer, request)["override_reason"]
        run = workflow.deploy(request.user, ticket, override_reason=reason)
        # 202: the run is queued for the worker; follow it through /log/.
        return self._render(run.ticket, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=TicketDetailSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str | None = None) -> Response:
        """Let a rollout waiting for a promote (status ``waiting``) switch its
        next batch. 409 when the ticket is not waiting."""
        return self._render(workflow.promote(request.user, self.get_object()))

    @extend_schema(request=DeploySerializer, responses={202: TicketDetailSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Run a failed deploy again with its last run's release: complete
        copies are reused, hosts that finished are left alone, the rest is
        prepared and switched (a run that failed during the switch is
        completed). 409 when there is no failed run to retry."""
        ticket = self.get_object()
        reason = _valid(DeploySerializer, request)["override_reason"]
        run = workflow.retry(request.user, ticket, override_reason=reason)
        return self._render(run.ticket, status.HTTP_202_ACCEPTED)

    @extend_schema(request=ScheduleSerializer, responses=TicketDetailSerializer)
    @action(detail=True, methods=["post"])
    def schedule(self, request: Request, pk: str | None = None) -> Response:
        """Deploy the approved ticket, as it is at ``version``, at ``at`` (as
        you). At that time it is refused if the ticket changed or the window
        is closed. Scheduling again moves the time."""
        ticket = self.get_object()
        with timezone.override(ZoneInfo(ticket.project.environment.time_zone)):
            data = _valid(ScheduleSerializer, request)
        return self._render(workflow.schedule(request.user, ticket, data["at"], data["version"]))

    @extend_schema(request=None, responses=TicketDetailSerializer)
    @action(detail=True, methods=["post"])
    def unschedule(self, request: Request, pk: str | None = None) -> Response:
        return self._render(workflow.unschedule(request.user, self.get_object()))

    @extend_schema(request=RollbackSerializer, responses={201: TicketDetailSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        release = _valid(RollbackSerializer, request)["release"]
        try:
            rollback = workflow.request_rollback(request.user, ticket, release=release)
        except workflow.WorkflowError as exc:
            # The workflow decides; this only names the field when the
            # refusal is about the release the client asked for.
            if type(exc) is workflow.WorkflowError and release and not queries.kept_releases(
                ticket.project
            ).filter(name=release).exists():
                raise exceptions.ValidationError({"release": [str(exc)]}) from None
            raise
        return self._render(rollback, status.HTTP_201_CREATED)

    @extend_schema(request=TicketEditSerializer, responses=TicketDetailSerializer)
    @action(detail=True, methods=["post"])
    def edit(self, request: Request, pk: str | None = None) -> Response:
        """Change a ticket that has not run yet (only its author may). Omitted
        fields stay as they are; a new ``ref`` without ``commit`` takes the
        ref's tip. Editing a rejected ticket resubmits it."""
        ticket = self.get_object()
        # Refuse before touching the repository, as for a new ticket.
        check_object(request, Action.EDIT, ticket)
        form = TicketEditSerializer(data=request.data, context={**self.get_serializer_context(), "ticket": ticket})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        fields = {name: data[name] for name in ("title", "description") if name in data}
        if "ref" in data or "commit" in data:
            resolved = _resolve(ticket.project, data.get("ref", ticket.ref), data.get("commit", ""))
            fields.update(ref=resolved.ref, commit=resolved.commit)
        return self._render(workflow.edit(request.user, ticket, hosts=data.get("hosts"), **fields))

    @extend_schema(
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, description="return lines with seq greater than this"),
            OpenApiParameter("before", OpenApiTypes.INT,
                             description="instead, return the last lines with seq less than this (paging back)"),
            OpenApiParameter("run", OpenApiTypes.INT, description="run number; default the latest"),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"most lines to return (1-{LOG_PAGE})"),
        ],
        responses=LogSerializer,
    )
    @action(detail=True, methods=["get"], renderer_classes=[*api_settings.DEFAULT_RENDERER_CLASSES, LogTextRenderer])
    def log(self, request: Request, pk: str | None = None) -> Response:
        """A page of the run's console: at most ``limit`` lines and about
        WALLE_API_LOG_PAGE_BYTES of text (one longer line still comes alone).
        Follow ``next_after`` while ``more``; page back with ``next_before``."""
        ticket = self.get_object()
        after = _int_param(request, "after") or 0
        before = _int_param(request, "before")
        limit = _int_param(request, "limit", minimum=1, maximum=LOG_PAGE) or LOG_PAGE
        run = _pick_run(ticket, _int_param(request, "run"))
        # Status first, lines second: the worker writes every line before it
        # ends the ticket, so a client that sees a final status in this
        # response has also been given (or can page to) the last line.
        ticket.refresh_from_db(fields=["status"])
        bounds = {"max_lines": limit, "max_bytes": settings.WALLE_API_LOG_PAGE_BYTES}
        page = queries.log_page(run, before=before, after=after, **bounds)
        lines = page.lines
        data = {
            "ticket": ticket.pk, "status": ticket.status, "run": run, "lines": lines,
            "next_after": lines[-1].seq if lines else (before - 1 if before else after), "more": page.more_after,
            "next_before": lines[0].seq if lines else (before if before is not None else after + 1),
            "more_before": page.more_before,
        }
        body = LogSerializer(data).data
        # For curl: where to go on, as headers beside the plain text.
        paging = {"X-Walle-Status": data["status"], "X-Walle-Next-After": str(body["next_after"]),
                  "X-Walle-More": "true" if body["more"] else "false"}
        return Response(body, headers=paging)


def _valid(serializer_class: type, request: Request) -> dict:
    form = serializer_class(data=request.data)
    form.is_valid(raise_exception=True)
    return form.validated_data


def _resolve(project, ref: str, commit: str) -> repository.ResolvedRef:
    """:func:`repository.resolve_fresh` as API errors: a 400 naming the field
    at fault, a 409 for invalid repository settings, or a 503 when the git
    server (or the worker that fetches from it) does not answer."""
    try:
        return repository.resolve_fresh(project, ref, commit)
    except repository.ResolveError as exc:
        raise exceptions.ValidationError({exc.field: [str(exc)]}) from None
    except repository.ConfigurationError as exc:
        raise RepositoryMisconfigured(str(exc)) from None
    except repository.RepositoryError as exc:
        raise RepositoryUnavailable(str(exc)) from None


def _pick_run(ticket: Ticket, number: int | None) -> DeployRun | None:
    if number is None:
        return ticket.latest_run()
    run = ticket.runs.filter(number=number).first()
    if run is None:
        raise exceptions.NotFound(_("Ticket #%(ticket)s has no run %(number)s.") % {"ticket": ticket.pk, "number": number})
    return run


COMMIT_LIMIT = 30


def repository_error(field: str, exc: repository.RepositoryError) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [str(exc)]})


@extend_schema(responses=ProjectDetailSerializer)
class ProjectViewSet(BaseProjectViewSet):
    """Projects you can see, with their repository's branches, tags and commits
    as of the worker's last fetch (the repository is ``releases``' business)."""

    @extend_schema(
        parameters=[OpenApiParameter("refresh", OpenApiTypes.BOOL, description="fetch the repository first")],
        responses=RefsSerializer,
    )
    @action(detail=True, methods=["get"])
    def refs(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        fetch = request.query_params.get("refresh", "") in ("1", "true", "yes")
        try:
            return Response(repository.refs(project, fetch=fetch))
        except repository.RepositoryError as exc:
            raise repository_error("refresh" if fetch else "repository", exc) from None

    @extend_schema(
        parameters=[OpenApiParameter("branch", str), OpenApiParameter("tag", str)],
        responses=CommitSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def commits(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        # The project's mode decides whether tickets name branches or tags, so
        # the parameter must match it; commits() reads refs of that kind only.
        field = RepoMode(project.repo_mode).value
        ref = request.query_params.get(field, "")
        if not ref:
            raise exceptions.ValidationError({field: [_("This project deploys by %(field)s; pass ?%(field)s=<name>.") % {"field": field}]})
        try:
            return Response(repository.commits(project, ref, COMMIT_LIMIT))
        except repository.RepositoryError as exc:
            raise repository_error(field, exc) from None

"""Projects over the API: thin adapters over the policy, the repository
reader and the config check."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.drf import PolicyErrorsMixin, WallePermission
from accounts.permissions import Action, visible, visible_projects
from releases import repository

from .checks import run_check
from .models import Project, RepoMode
from .serializers import (
    CheckReportSerializer,
    CommitSerializer,
    ProjectDetailSerializer,
    ProjectSerializer,
    RefsSerializer,
)

COMMIT_LIMIT = 30


def repository_error(field: str, exc: repository.RepositoryError) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [str(exc)]})


@extend_schema(responses=ProjectDetailSerializer)
class ProjectViewSet(PolicyErrorsMixin, viewsets.ReadOnlyModelViewSet):
    """Projects you can see; configuration only where you may view details."""

    serializer_class = ProjectSerializer
    permission_classes = [WallePermission]
    object_actions = {"refs": Action.VIEW_DETAILS, "commits": Action.VIEW_DETAILS, "check": Action.CONFIGURE}

    def get_queryset(self) -> QuerySet[Project]:
        queryset = Project.objects.select_related("team", "environment", "deploy_key").order_by("name", "pk")
        return visible(self.request.user, queryset, Action.VIEW)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if self.action == "list":
            context["details_ids"] = set(
                visible_projects(self.request.user, Action.VIEW_DETAILS).values_list("pk", flat=True)
            )
        return context

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
            raise exceptions.ValidationError({field: [f"This project deploys by {field}; pass ?{field}=<name>."]})
        try:
            return Response(repository.commits(project, ref, COMMIT_LIMIT))
        except repository.RepositoryError as exc:
            raise repository_error(field, exc) from None

    @extend_schema(request=None, responses=CheckReportSerializer)
    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str | None = None) -> Response:
        report = run_check(request.user, self.get_object())
        data = {
            "ok": report.ok, "results": report.results, "pinned_hosts": sorted(report.pinned),
            "pinned_repo_host_key": bool(report.repo_host_key),
        }
        return Response(CheckReportSerializer(data).data)

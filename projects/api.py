"""Projects over the API: thin adapters over the policy and the config check.
(Branches and commits of a project's repository are added by
``releases.api.ProjectViewSet``: projects never import releases.)"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.drf import PolicyErrorsMixin, WallePermission
from accounts.permissions import Action, visible, visible_projects

from .config_check import run_check
from .models import Project
from .serializers import CheckReportSerializer, ProjectDetailSerializer, ProjectSerializer


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

    @extend_schema(request=None, responses=CheckReportSerializer)
    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str | None = None) -> Response:
        report = run_check(request.user, self.get_object())
        data = {
            "ok": report.ok, "results": report.results, "pinned_hosts": sorted(report.pinned),
            "pinned_repo_host_key": bool(report.repo_host_key),
        }
        return Response(CheckReportSerializer(data).data)

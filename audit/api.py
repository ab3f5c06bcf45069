"""The audit log over the API: read-only, the page's filters, unknown ones refused."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.drf import WallePermission

from . import queries
from .forms import FILTER_NAMES, AuditFilterForm
from .models import AuditEntry, Kind
from .serializers import AuditEntrySerializer

AUDIT_FILTERS = [
    OpenApiParameter("project", int, description="project id"),
    OpenApiParameter("actor", str, description="user name, any case"),
    OpenApiParameter("kind", str, enum=Kind.values),
    OpenApiParameter("since", str, description="ISO date-time; entries at or after it"),
    OpenApiParameter("until", str, description="ISO date-time; entries at or before it"),
]
LIST_PARAMS = set(FILTER_NAMES) | {"page", "format"}


class AuditEntryList(generics.ListAPIView):
    """Ticket events and configuration changes you may read, newest first."""

    serializer_class = AuditEntrySerializer
    permission_classes = [WallePermission]

    def get_queryset(self) -> QuerySet[AuditEntry]:
        params = self.request.query_params
        unknown = set(params.keys()) - LIST_PARAMS
        if unknown:
            raise exceptions.ValidationError({name: ["Unknown filter."] for name in sorted(unknown)})
        form = AuditFilterForm(self.request.user, params)
        if not form.is_valid():
            raise exceptions.ValidationError(form.errors)
        return queries.filter_entries(queries.entries_for(self.request.user), form.wanted())

    @extend_schema(parameters=AUDIT_FILTERS)
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

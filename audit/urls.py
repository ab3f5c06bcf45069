"""The audit page, its CSV export and its API endpoint (mounted at the site root)."""

from django.urls import path

from . import api, views

urlpatterns = [
    path("audit/", views.entry_list, name="audit_list"),
    path("audit/export.csv", views.entry_csv, name="audit_csv"),
    path("api/audit/", api.AuditEntryList.as_view(), name="api-audit-list"),
]

"""The audit page and its CSV export: parse the filters, read, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape

from releases.forms import BadParameter, parse_count

from . import export, queries
from .forms import AuditFilterForm
from .models import AuditEntry

PAGE_SIZE = 50


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, QuerySet[AuditEntry]]:
    """The form and the entries it selects (none when a filter is invalid:
    showing everything instead would hide that the filter was not applied)."""
    form = AuditFilterForm(request.user, request.GET)
    entries = queries.entries_for(request.user)
    if not form.is_valid():
        return form, entries.none()
    return form, queries.filter_entries(entries, form.wanted())


@login_required
def entry_list(request: HttpRequest) -> HttpResponse:
    try:
        number = parse_count(request.GET.get("page"), "page", minimum=1)
    except BadParameter as exc:
        return HttpResponseBadRequest(escape(str(exc)))
    form, entries = _filtered(request)
    page = Paginator(entries, PAGE_SIZE).get_page(number)
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit/entry_list.html", {"form": form, "page": page, "export_query": query.urlencode()})


@login_required
def entry_csv(request: HttpRequest) -> HttpResponse:
    form, entries = _filtered(request)
    if form.errors:
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponseBadRequest(escape(problems), content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(export.lines(entries), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="walle-audit-{stamp}.csv"'
    return response

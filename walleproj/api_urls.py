"""REST API routes, the OpenAPI schema, and an offline docs page.

Swagger UI and ReDoc load their JavaScript from a CDN, which deployments
behind a firewall cannot reach; /api/docs/ instead renders the schema's
endpoint list as plain HTML, and DRF's browsable API at /api/ lets a logged-in
user try every endpoint.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.decorators import api_view, renderer_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import StaticHTMLRenderer
from rest_framework.routers import DefaultRouter

from releases.api import ProjectViewSet, TicketViewSet

router = DefaultRouter()
router.register("projects", ProjectViewSet, basename="api-project")
router.register("tickets", TicketViewSet, basename="api-ticket")

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@extend_schema(exclude=True)
@api_view(["GET"])
@renderer_classes([StaticHTMLRenderer])
def docs(request: HttpRequest) -> HttpResponse:
    schema = SchemaGenerator().get_schema(request=request, public=True)
    rows = [
        (method.upper(), url, operation.get("summary") or operation.get("description", "").split("\n")[0])
        for url, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    table = format_html_join("\n", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>", rows)
    page = format_html(  # i18n-exempt: the API's documentation is English, like its schema
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        "<h1>{title}</h1><p>{description}</p><p>Authenticate with <code>Authorization: Bearer &lt;token&gt;</code>."
        " Machine-readable schema: <a href='schema/'>/api/schema/</a>; try requests in the"
        " <a href='./'>browsable API</a>.</p><table border='1' cellpadding='4'>"
        "<tr><th>Method</th><th>Path</th><th>What</th></tr>{table}</table></body></html>",
        title=schema["info"]["title"], description=schema["info"].get("description", ""), table=table,
    )
    return HttpResponse(page)


urlpatterns = [
    # Same rule as every other endpoint (drf-spectacular's default is AllowAny).
    path("schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="api-schema"),
    path("docs/", docs, name="api-docs"),
    *router.urls,
]

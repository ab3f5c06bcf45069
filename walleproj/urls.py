from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.language import set_language
from walleproj import health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", set_language, name="set_language"),
    path("api/webhooks/", include("webhooks.urls")),
    path("api/", include("walleproj.api_urls")),
    path("api/notifications/", include("notifications.urls")),
    path("", include("audit.urls")),
    path("", include("releases.urls")),
]

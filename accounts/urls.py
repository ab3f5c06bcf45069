"""The user's own pages (mounted at /account/ by releases.urls)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.profile, name="profile"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
]

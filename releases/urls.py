"""Page routes. The account pages live in accounts.urls, mounted here because
walleproj.urls includes only this module for pages."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("tickets/", views.ticket_list, name="ticket_list"),
    path("tickets/new/", views.ticket_new, name="ticket_new"),
    path("tickets/new/refresh/", views.ticket_new_refresh, name="ticket_new_refresh"),
    path("tickets/new/fetch.json", views.ticket_new_fetch_status, name="ticket_new_fetch_status"),
    path("tickets/<int:pk>/", views.ticket_detail, name="ticket_detail"),
    path("tickets/<int:pk>/log.json", views.ticket_log, name="ticket_log"),
    path("tickets/<int:pk>/edit/", views.ticket_edit, name="ticket_edit"),
    path("tickets/<int:pk>/approve/", views.ticket_approve, name="ticket_approve"),
    path("tickets/<int:pk>/reject/", views.ticket_reject, name="ticket_reject"),
    path("tickets/<int:pk>/cancel/", views.ticket_cancel, name="ticket_cancel"),
    path("tickets/<int:pk>/deploy/", views.ticket_deploy, name="ticket_deploy"),
    path("tickets/<int:pk>/promote/", views.ticket_promote, name="ticket_promote"),
    path("tickets/<int:pk>/retry/", views.ticket_retry, name="ticket_retry"),
    path("tickets/<int:pk>/schedule/", views.ticket_schedule, name="ticket_schedule"),
    path("tickets/<int:pk>/unschedule/", views.ticket_unschedule, name="ticket_unschedule"),
    path("tickets/<int:pk>/rollback/", views.ticket_rollback, name="ticket_rollback"),
    path("account/", include("accounts.urls")),
]

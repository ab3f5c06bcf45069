from django.urls import path

from .api import WebhookReceiveView

urlpatterns = [
    path("<str:hook_id>/", WebhookReceiveView.as_view(), name="webhook-receive"),
]

"""API routes of notifications, mounted at /api/notifications/ (so the API
schema lists them with the rest)."""

from rest_framework.routers import SimpleRouter

from .api import ChannelViewSet, DeliveryViewSet, ProjectSettingsViewSet

router = SimpleRouter()
router.register("channels", ChannelViewSet, basename="api-notification-channel")
router.register("deliveries", DeliveryViewSet, basename="api-notification-delivery")
router.register("project-settings", ProjectSettingsViewSet, basename="api-notification-project-settings")

urlpatterns = router.urls

"""API routes of notifications, mounted at /api/notifications/ (so the API
schema lists them with the rest)."""

from rest_framework.routers import SimpleRouter

from .api import ChannelViewSet, DeliveryViewSet

router = SimpleRouter()
router.register("channels", ChannelViewSet, basename="api-notification-channel")
router.register("deliveries", DeliveryViewSet, basename="api-notification-delivery")

urlpatterns = router.urls

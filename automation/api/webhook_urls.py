"""API routes of outgoing webhooks: /api/v1/webhooks and the deliveries under each endpoint."""

from rest_framework.routers import DefaultRouter

from automation.api.webhooks import WebhookEndpointViewSet

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")

urlpatterns = [*router.urls]

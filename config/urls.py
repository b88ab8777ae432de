"""URLs: the API under /api/v1/, its schema and docs, the admin, health and metrics."""

from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from django_prometheus import exports
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import health

api_v1 = [
    path("", include("accounts.api.urls")),
    path("", include("subscribers.api.urls")),
    path("", include("sequences.api.urls")),
    path("", include("automation.api.urls")),
    path("", include("realtime.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        # The split view loads its init script from /api/docs/?script, so no inline script is needed;
        # Swagger UI's page does carry a small inline <style>.
        csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="swagger-ui",
    ),
    path("health", health.health, name="health"),
    path("health/ready", health.health_ready, name="health-ready"),
    path("metrics", exports.ExportToDjangoView, name="prometheus-django-metrics"),
    path("app/", include("ui.urls")),
    path("", include("sequences.urls")),
    path("", include("automation.urls")),
]

from django.urls import include, path

urlpatterns = [
    path("", include("automation.api.workflow_urls")),
    path("", include("automation.api.webhook_urls")),
]

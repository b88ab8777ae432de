"""Public (non-API) automation URLs: the inbound workflow hooks at /hooks/<token>."""

from django.urls import path

from automation.hooks import workflow_hook

urlpatterns = [
    path("hooks/<str:token>", workflow_hook, name="workflow-hook"),
]

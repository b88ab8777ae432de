"""API routes of workflows and workflow runs."""

from rest_framework.routers import DefaultRouter

from automation.api.workflows import WorkflowRunViewSet, WorkflowViewSet

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("workflow-runs", WorkflowRunViewSet, basename="workflow-run")

urlpatterns = [*router.urls]

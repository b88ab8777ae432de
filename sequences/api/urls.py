from rest_framework.routers import DefaultRouter

from sequences.api import views
from sequences.api.campaigns import CampaignViewSet

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
router.register("templates", views.TemplateViewSet, basename="template")
router.register("email-sequences", views.SequenceViewSet, basename="email-sequence")
router.register("steps", views.StepViewSet, basename="step")
router.register("enrollments", views.EnrollmentViewSet, basename="enrollment")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = [*router.urls]

from rest_framework.routers import DefaultRouter

from sequences.api import views

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
router.register("templates", views.TemplateViewSet, basename="template")
router.register("email-sequences", views.SequenceViewSet, basename="email-sequence")
router.register("steps", views.StepViewSet, basename="step")
router.register("enrollments", views.EnrollmentViewSet, basename="enrollment")

urlpatterns = [*router.urls]

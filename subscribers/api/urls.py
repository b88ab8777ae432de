from rest_framework.routers import DefaultRouter

from subscribers.api import views

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
router.register("subscribers", views.SubscriberViewSet, basename="subscriber")
router.register("lists", views.MailingListViewSet, basename="list")
router.register("tags", views.TagViewSet, basename="tag")
router.register("fields", views.FieldDefinitionViewSet, basename="field")
router.register("suppressions", views.SuppressionViewSet, basename="suppression")
router.register("events", views.EventViewSet, basename="event")
router.register("segments", views.SegmentViewSet, basename="segment")
router.register("imports", views.ImportViewSet, basename="import")

urlpatterns = [*router.urls]

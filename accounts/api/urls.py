from django.urls import path
from rest_framework.routers import DefaultRouter

from accounts.api import views

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register("members", views.MemberViewSet, basename="member")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")

urlpatterns = [
    path("auth/token", views.TokenObtainView.as_view(), name="token-obtain"),
    path("auth/token/refresh", views.TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/token/verify", views.TokenVerifyView.as_view(), name="token-verify"),
    *router.urls,
]

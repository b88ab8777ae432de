"""Public routes that emails link to (mounted at the site root): open pixel, click, unsubscribe."""

from django.urls import path

from sequences import views
from sequences.tokens import TRACKING_PATHS, TokenPurpose

urlpatterns = [
    path(f"{TRACKING_PATHS[TokenPurpose.OPEN]}/<str:token>", views.open_pixel, name="tracking-open"),
    path(f"{TRACKING_PATHS[TokenPurpose.CLICK]}/<str:token>", views.click_redirect, name="tracking-click"),
    path(f"{TRACKING_PATHS[TokenPurpose.UNSUBSCRIBE]}/<str:token>", views.unsubscribe, name="unsubscribe"),
]

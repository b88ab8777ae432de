"""Public routes that emails link to (mounted at the site root): open pixel, click, unsubscribe, the
double opt-in subscribe form and confirmation, and the ESP tracking webhooks."""

from django.urls import include, path

from sequences import public_views, views, webhooks
from sequences.optin import CONFIRM_PATH
from sequences.tokens import TRACKING_PATHS, TokenPurpose
from subscribers.links import SUBSCRIBE_PATH

urlpatterns = [
    path(f"{TRACKING_PATHS[TokenPurpose.OPEN]}/<str:token>", views.open_pixel, name="tracking-open"),
    path(f"{TRACKING_PATHS[TokenPurpose.CLICK]}/<str:token>", views.click_redirect, name="tracking-click"),
    path(f"{TRACKING_PATHS[TokenPurpose.UNSUBSCRIBE]}/<str:token>", views.unsubscribe, name="unsubscribe"),
    path(f"{SUBSCRIBE_PATH}/<str:token>", public_views.subscribe, name="optin-subscribe"),
    path(f"{CONFIRM_PATH}/<str:token>", public_views.confirm, name="optin-confirm"),
    path("webhooks/anymail/", include((webhooks.anymail_urlpatterns(), "anymail"))),
]

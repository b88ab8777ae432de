"""WebSocket routes of the realtime app (mounted by config.asgi)."""

from django.urls import re_path

from realtime.consumers import LiveConsumer

websocket_urlpatterns = [
    re_path(r"^api/v1/ws/connect/(?P<kind>dashboard|events|campaign)/?$", LiveConsumer.as_asgi()),
]

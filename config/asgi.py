"""ASGI entry point: HTTP through Django, WebSockets of the realtime app (session or JWT auth)."""

import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # before importing anything that touches models

from realtime.auth import RealtimeAuthStack  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": RealtimeAuthStack(URLRouter(websocket_urlpatterns)),
    }
)

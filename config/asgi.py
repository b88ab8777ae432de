"""ASGI entry point: HTTP through Django, WebSocket routes added by the realtime app."""

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # before importing anything that touches models

application = ProtocolTypeRouter({"http": django_asgi_app})

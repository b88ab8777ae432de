"""WebSocket authentication: a simplejwt access token in `?token=`, else the Django session.

Browsers cannot set headers on a WebSocket, so a token travels in the query string (keep it short-lived:
it can end up in proxy logs). A session-authenticated socket must come from one of ALLOWED_HOSTS (its
Origin header), since cookies ride along on cross-site sockets too; a token is not sent by a browser on
its own, so token sockets need no Origin check (non-browser clients send none).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host


def query_params(scope: dict[str, Any]) -> dict[str, str]:
    """The first value of each query parameter of the socket's URL."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {key: values[0] for key, values in parse_qs(raw).items() if values}


@database_sync_to_async
def user_for_token(token: str) -> Any:
    from rest_framework.exceptions import AuthenticationFailed
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

    authentication = JWTAuthentication()
    try:
        user = authentication.get_user(authentication.get_validated_token(token.encode()))
    except (InvalidToken, TokenError, AuthenticationFailed):  # a bad token is "not authenticated"
        return AnonymousUser()
    return user if user.is_active else AnonymousUser()


def origin_allowed(scope: dict[str, Any]) -> bool:
    """The socket's Origin is one of ALLOWED_HOSTS (Django's own defaults for DEBUG with none set)."""
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin", b"").decode("latin-1")
    host = urlparse(origin).hostname if origin else None
    if not host:
        return False
    allowed = list(settings.ALLOWED_HOSTS) or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    return validate_host(host, allowed)


class TokenOrSessionAuthMiddleware:
    """Sets scope["user"] from `?token=` when given; otherwise keeps the session's user (from the stack
    outside it), unless the Origin is foreign. scope["auth"] says which: "token", "session" or None."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        token = query_params(scope).get("token")
        if token:
            user = await user_for_token(token)
            scope = {**scope, "user": user, "auth": "token" if user.is_authenticated else None}
        else:
            user = scope.get("user")
            authenticated = bool(user is not None and user.is_authenticated)
            if authenticated and not origin_allowed(scope):
                scope = {**scope, "user": AnonymousUser(), "auth": None, "origin_rejected": True}
            else:
                scope = {**scope, "auth": "session" if authenticated else None}
        return await self.inner(scope, receive, send)


def RealtimeAuthStack(inner: Any) -> Any:
    return AuthMiddlewareStack(TokenOrSessionAuthMiddleware(inner))

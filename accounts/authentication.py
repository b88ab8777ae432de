"""`X-API-Key` authentication: the request acts for the key's workspace with the key's scope."""

from __future__ import annotations

from django.contrib.auth.models import User
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiKey
from accounts.services import api_key_authenticate
from core.errors import NotFound


class ApiKeyUser:
    """The principal of a request made with an API key: authenticated, but not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}"


def acting_user(request: Request) -> User | None:
    """The signed-in person behind a request; None for API keys (and anonymous callers)."""
    user = request.user
    if isinstance(user, User) and user.is_authenticated:
        return user
    return None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    header = "X-API-Key"

    def authenticate(self, request):
        secret = request.headers.get(self.header)
        if not secret:
            return None
        try:
            api_key = api_key_authenticate(secret=secret.strip())
        except NotFound:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request) -> str:
        return self.header


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}

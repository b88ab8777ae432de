"""Default API throttles: per credential (user or API key) and per address for anonymous callers."""

from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle


class PrincipalRateThrottle(SimpleRateThrottle):
    """One bucket per user or per API key, shared by every process through the Redis cache."""

    scope = "user"

    def get_cache_key(self, request, view):
        api_key = getattr(request.user, "api_key", None)
        if api_key is not None:
            ident = f"key:{api_key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AnonThrottle(AnonRateThrottle):
    scope = "anon"


class AuthRateThrottle(AnonRateThrottle):
    """The token endpoints: per address, whoever the caller claims to be (slows password guessing)."""

    scope = "auth"

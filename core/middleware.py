"""Answers errors under /api/ and /health with JSON instead of Django's HTML pages."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.api.exceptions import error_body

logger = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/health", "/hooks/")


class JsonErrorMiddleware:
    """An unexpected exception on an API path becomes a JSON 500 (logged); 404s outside DRF become JSON."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(JSON_PREFIXES) and self._too_large(request):
            return JsonResponse(error_body("payload_too_large", "The request body is too large."), status=413)
        response = self.get_response(request)
        if (
            request.path.startswith(JSON_PREFIXES)
            and response.status_code == 404
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return JsonResponse(error_body("not_found", "Not found."), status=404)
        return response

    @staticmethod
    def _too_large(request: HttpRequest) -> bool:
        """DRF reads JSON bodies from the raw stream, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check."""
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return False
        multipart = request.content_type == "multipart/form-data"
        limit = settings.IMPORT_MAX_FILE_SIZE if multipart else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return length > limit

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(JSON_PREFIXES):
            return None
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(error_body("payload_too_large", "The request body is too large."), status=413)
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return JsonResponse(error_body("server_error", "An unexpected error occurred."), status=500)

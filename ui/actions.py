"""A state change asked for by a button (activate, pause, cancel, ...): one service call whose refusal
(a Conflict, a ValidationFailed) is shown as an error message and whose result as a success message."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.contrib import messages
from django.http import HttpRequest

from core.errors import ApplicationError

Result = TypeVar("Result")


def button_change(
    request: HttpRequest, change: Callable[[], Result], *, done: Callable[[Result], str], subject: str = ""
) -> bool:
    """Run `change`; a success message from `done(result)`, or the refusal prefixed with `subject`.
    True when the change went through (the caller picks where to go next)."""
    try:
        result = change()
    except ApplicationError as error:
        messages.error(request, f"{subject}: {error.message}" if subject else error.message)
        return False
    messages.success(request, done(result))
    return True

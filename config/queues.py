"""Celery queue names: the one place they are spelled."""

from enum import StrEnum


class Queue(StrEnum):
    DEFAULT = "default"
    EMAIL = "email"
    ML = "ml"

"""`python manage.py create_workspace --name NAME --owner-email EMAIL [--password PASSWORD]`.

Creates a workspace owned by that user (created when new). The last line of stdout is the workspace id
alone, so scripts can capture it: `id=$(python manage.py create_workspace ... | tail -n1)`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from accounts.services import user_get_or_create, workspace_create
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a workspace and its owner; prints the new workspace's id on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="The workspace's name.")
        parser.add_argument("--owner-email", required=True, help="The owner's email (their login); created if new.")
        parser.add_argument(
            "--password", default=None, help="Password for a NEW owner; without it the owner cannot log in yet."
        )
        parser.add_argument("--time-zone", default="UTC", help="IANA time zone of the workspace (default UTC).")

    def handle(self, *args: Any, **options: Any) -> None:
        email = str(options["owner_email"]).strip()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"--owner-email: '{email}' is not a valid email address.")
        try:
            with transaction.atomic():
                owner, created = user_get_or_create(email=email, password=options["password"])
                workspace = workspace_create(
                    name=str(options["name"]), owner=owner, time_zone=str(options["time_zone"])
                )  # fmt: skip
        except ApplicationError as exc:
            raise CommandError(str(exc))
        if not created and options["password"]:
            self.stderr.write(f"{email} already exists; --password was ignored (their password is unchanged).")
        self.stderr.write(
            f"Created workspace '{workspace.name}' (slug {workspace.slug}) owned by {email}"
            + (" (new user)." if created else ".")
        )
        self.stdout.write(str(workspace.pk))

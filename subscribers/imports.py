"""CSV import (streamed, chunked, with a bad-row report) and CSV export of subscribers."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from accounts.models import Workspace
from config.queues import Queue
from core.errors import Conflict, PayloadTooLarge, ValidationFailed
from subscribers.models import (
    FieldDefinition,
    ImportJob,
    ImportStatus,
    ListMembership,
    MailingList,
    MembershipStatus,
    Subscriber,
)
from subscribers.services.subscribers import (
    CleanSubscriber,
    error_as_dict,
    subscriber_row_clean,
    subscribers_upsert_chunk,
    tag_names_clean,
    tags_get_or_create,
)
from subscribers.services.validation import UNSTORABLE_RE, field_definitions_by_key

logger = logging.getLogger(__name__)

IMPORT_CHUNK_SIZE = 500
HEADER_MAX_BYTES = 64 * 1024
PROFILE_TARGETS = ("email", "first_name", "last_name", "time_zone", "locale")
ATTRIBUTE_PREFIX = "attributes."
ERROR_REPORT_HEADER = ["row", "email", "field", "reason"]
# Header spellings people use, mapped to fields when no column_mapping is given.
HEADER_ALIASES = {
    "email": "email", "email_address": "email", "e_mail": "email", "mail": "email",
    "first_name": "first_name", "firstname": "first_name", "given_name": "first_name", "first": "first_name",
    "last_name": "last_name", "lastname": "last_name", "surname": "last_name", "family_name": "last_name",
    "last": "last_name",
    "time_zone": "time_zone", "timezone": "time_zone", "tz": "time_zone",
    "locale": "locale", "language": "locale", "lang": "locale",
}  # fmt: skip


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _header_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


# Creating an import ----------------------------------------------------------------------------


def import_header_read(*, file: UploadedFile) -> list[str]:
    """The CSV's header row, checked: present, UTF-8, no blank or repeated column names."""
    file.seek(0)
    line = file.readline(HEADER_MAX_BYTES)
    file.seek(0)
    if not line or not line.strip():
        raise ValidationFailed.for_field("file", "The file is empty: the first row must name the columns.")
    if not line.endswith((b"\n", b"\r")) and file.size and file.size > len(line):
        raise ValidationFailed.for_field("file", f"The header row is longer than {HEADER_MAX_BYTES} bytes.")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed.for_field("file", "The file must be UTF-8 encoded CSV.", code="invalid_encoding")
    try:
        header = next(csv.reader([text.rstrip("\r\n")]), [])
    except csv.Error as error:
        raise ValidationFailed.for_field("file", f"The header row is not valid CSV: {error}.")
    header = [name.strip() for name in header]
    if not header or any(not name for name in header):
        raise ValidationFailed.for_field("file", "Every column of the header row needs a name.")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValidationFailed.for_field("file", f"Column names must be unique; repeated: {', '.join(duplicates)}.")
    return header


def column_mapping_clean(
    *, header: Sequence[str], mapping: Any, definitions: Mapping[str, FieldDefinition]
) -> dict[str, str]:
    """CSV column -> target field. Without a mapping, columns are matched by name; others are ignored."""
    if mapping in (None, {}, ""):
        mapping = {}
        for column in header:
            key = _header_key(column)
            target = HEADER_ALIASES.get(key)
            if target is None and key.startswith("attributes_"):
                key = key[len("attributes_") :]
            if target is None and key in definitions:
                target = ATTRIBUTE_PREFIX + key
            if target and target not in mapping.values():
                mapping[column] = target
        if "email" not in mapping.values():
            raise ValidationFailed.for_field(
                "column_mapping", "No column looks like an email address: name it 'email' or send column_mapping."
            )
        return mapping
    if not isinstance(mapping, Mapping):
        raise ValidationFailed.for_field("column_mapping", "Must be an object: CSV column -> field.")
    cleaned: dict[str, str] = {}
    for column, target in mapping.items():
        name = f"column_mapping.{column}"
        if column not in header:
            raise ValidationFailed.for_field(name, "The file has no such column.", code="unknown_column")
        if target in (None, ""):
            continue  # explicitly ignored
        if not isinstance(target, str):
            raise ValidationFailed.for_field(name, "Must be a field name.")
        if target.startswith(ATTRIBUTE_PREFIX):
            if target[len(ATTRIBUTE_PREFIX) :] not in definitions:
                raise ValidationFailed.for_field(
                    name, f"Unknown attribute '{target[len(ATTRIBUTE_PREFIX):]}': define it first.",
                    code="unknown_attribute",
                )  # fmt: skip
        elif target not in PROFILE_TARGETS:
            raise ValidationFailed.for_field(
                name, f"Must be one of {', '.join(PROFILE_TARGETS)} or attributes.KEY.", code="unknown_field"
            )
        if target in cleaned.values():
            raise ValidationFailed.for_field(name, f"Another column is already mapped to {target}.")
        cleaned[column] = target
    if "email" not in cleaned.values():
        raise ValidationFailed.for_field("column_mapping", "Map one column to email.", code="email_column_required")
    return cleaned


def import_job_create(
    *,
    workspace: Workspace,
    file: UploadedFile,
    column_mapping: Mapping[str, Any] | None = None,
    mailing_list: MailingList | None = None,
    tag_names: Sequence[str] = (),
    update_existing: bool = True,
    created_by: User | None = None,
) -> ImportJob:
    """Store the upload and queue its import (after commit, on the default queue)."""
    if file.size is not None and file.size > settings.IMPORT_MAX_FILE_SIZE:
        raise PayloadTooLarge(f"The file is larger than the limit of {settings.IMPORT_MAX_FILE_SIZE} bytes.")
    if mailing_list is not None and mailing_list.workspace_id != workspace.pk:
        raise ValueError("list belongs to another workspace")
    header = import_header_read(file=file)
    mapping = column_mapping_clean(
        header=header, mapping=column_mapping, definitions=field_definitions_by_key(workspace=workspace)
    )
    tags = tag_names_clean(names=list(tag_names))
    with transaction.atomic():
        job = ImportJob(
            workspace=workspace,
            original_filename=UNSTORABLE_RE.sub("", file.name or "")[:255],
            column_mapping=mapping,
            mailing_list=mailing_list,
            tag_names=tags,
            update_existing=update_existing,
            total_bytes=file.size or 0,
            created_by=created_by,
        )
        job.file.save(f"import-{workspace.pk}.csv", file, save=False)
        job.save()
        transaction.on_commit(lambda: import_job_enqueue(import_job_id=job.pk))
    return job


def import_job_enqueue(*, import_job_id: int) -> None:
    from subscribers.tasks import import_job_run_task  # tasks import this module

    import_job_run_task.apply_async(args=[import_job_id], queue=Queue.DEFAULT.value)


# Running an import -----------------------------------------------------------------------------


class _Fingerprints:
    """A set of 64-bit address fingerprints in one flat array (linear probing, at most half full).

    About 16 to 32 bytes an address, against some 80 for a Python set of ints: the within-file dedupe of
    a million-row file costs tens of megabytes, not the file.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._slots = array("Q", bytes(8 * capacity))  # 0 marks an empty slot
        self._count = 0

    @staticmethod
    def of(email: str) -> int:
        return int.from_bytes(hashlib.blake2b(email.encode(), digest_size=8).digest(), "big") or 1

    def add(self, value: int) -> bool:
        """Add `value`; False when it was already there."""
        if (self._count + 1) * 2 > len(self._slots):
            self._grow()
        slots, mask = self._slots, len(self._slots) - 1
        index = value & mask
        while slots[index]:
            if slots[index] == value:
                return False
            index = (index + 1) & mask
        slots[index] = value
        self._count += 1
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(8 * len(old) * 2))
        self._count = 0
        for value in old:
            if value:
                self.add(value)


@dataclass
class _Progress:
    processed_rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: int = 0
    pending: list[tuple[int, CleanSubscriber]] = field(default_factory=list)


class _ImportFailed(Exception):
    pass


def import_job_run(*, import_job_id: int) -> ImportJob | None:
    """Run the import: stream the file in chunks of IMPORT_CHUNK_SIZE rows, one transaction per chunk,
    progress saved after each. A finished job is left alone, so a redelivered task does nothing; a job
    found `running` (its worker died) starts again from the top, which is safe because rows upsert.
    """
    job = ImportJob.objects.select_related("workspace", "mailing_list").filter(pk=import_job_id).first()
    if job is None or job.status in (ImportStatus.COMPLETED, ImportStatus.FAILED):
        return job
    now = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.RUNNING, started_at=now, finished_at=None, processed_rows=0, processed_bytes=0,
        created_count=0, updated_count=0, skipped_count=0, error_count=0, failure_reason="",
    )  # fmt: skip
    try:
        _import_stream(job)
    except _ImportFailed as error:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, failure_reason=str(error), finished_at=timezone.now()
        )
    except Exception:
        logger.exception("Import %s failed", job.pk)
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, failure_reason="An unexpected error stopped the import.",
            finished_at=timezone.now(),
        )  # fmt: skip
    _upload_discard(job)
    job.refresh_from_db()
    return job


def _upload_discard(job: ImportJob) -> None:
    """The upload holds personal data and is not needed once the import has finished; the report stays."""
    if job.file:
        try:
            job.file.delete(save=False)
        except OSError:
            logger.warning("Could not delete the upload of import %s", job.pk, exc_info=True)
        ImportJob.objects.filter(pk=job.pk).update(file="")


def _import_stream(job: ImportJob) -> None:
    workspace = job.workspace
    if not job.file or not job.file.storage.exists(job.file.name or ""):
        raise _ImportFailed("The uploaded file is no longer available; upload it again.")
    definitions = field_definitions_by_key(workspace=workspace)
    tags = tags_get_or_create(workspace=workspace, names=job.tag_names) if job.tag_names else []
    progress = _Progress()
    seen = _Fingerprints()  # addresses already met in the file, as 8-byte fingerprints
    with job.file.open("rb") as handle, tempfile.TemporaryFile() as report_file:
        binary: IO[bytes] = getattr(handle, "file", handle)
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
        report_text = io.TextIOWrapper(report_file, encoding="utf-8", newline="")
        report = csv.writer(report_text)
        report.writerow(ERROR_REPORT_HEADER)
        reader = csv.reader(text)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise _ImportFailed("The file is empty.")
        except csv.Error as error:
            raise _ImportFailed(f"The header row is not valid CSV: {error}.")
        positions: dict[str, int] = {}
        for column, target in job.column_mapping.items():
            if column not in header:
                raise _ImportFailed(f"The file has no column named {column!r}.")
            positions[target] = header.index(column)
        email_index = positions["email"]

        def report_error(row_no: int, email: str, field_name: str | None, reason: str) -> None:
            report.writerow([row_no, csv_safe(email), field_name or "", csv_safe(reason)])

        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                progress.processed_rows += 1
                progress.errors += 1
                report_error(reader.line_num, "", None, f"Unreadable CSV: {error}")
                continue
            if not cells or not any(cell.strip() for cell in cells):
                continue  # blank lines are not rows
            progress.processed_rows += 1
            row_no = reader.line_num
            email_cell = cells[email_index].strip() if email_index < len(cells) else ""
            if any("\ufffd" in cell for cell in cells):
                progress.errors += 1
                report_error(row_no, email_cell, None, "The row is not valid UTF-8.")
                continue
            if len(cells) != len(header):
                progress.errors += 1
                report_error(row_no, email_cell, None, f"Expected {len(header)} columns, found {len(cells)}.")
                continue
            try:
                clean = subscriber_row_clean(data=_row_data(cells, positions), definitions=definitions)
            except ValidationFailed as error:
                progress.errors += 1
                problem = error_as_dict(error)
                report_error(row_no, email_cell, problem["field"], problem["message"])
                continue
            if not seen.add(_Fingerprints.of(clean.email)):
                progress.skipped += 1
                report_error(
                    row_no, email_cell, "email", "Duplicate of an earlier row in this file; the first was kept."
                )
                continue
            progress.pending.append((row_no, clean))
            if len(progress.pending) >= IMPORT_CHUNK_SIZE:
                _flush(job, progress, tags, binary)
        _flush(job, progress, tags, binary)
        text.detach()
        report_text.flush()
        report_text.detach()
        report_file.seek(0)
        job.error_report.save(f"import-{job.pk}-errors.csv", File(report_file), save=False)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.COMPLETED, error_report=job.error_report.name, processed_bytes=job.total_bytes,
        finished_at=timezone.now(),
    )  # fmt: skip


def _row_data(cells: Sequence[str], positions: Mapping[str, int]) -> dict[str, Any]:
    """A CSV row as subscriber input. Empty cells set nothing, so they never blank an existing value."""
    data: dict[str, Any] = {"email": cells[positions["email"]].strip()}
    attributes: dict[str, str] = {}
    for target, index in positions.items():
        value = cells[index].strip()
        if target == "email" or not value:
            continue
        if target.startswith(ATTRIBUTE_PREFIX):
            attributes[target[len(ATTRIBUTE_PREFIX) :]] = value
        else:
            data[target] = value
    if attributes:
        data["attributes"] = attributes
    return data


def _flush(job: ImportJob, progress: _Progress, tags: Sequence[Any], binary: IO[bytes]) -> None:
    if progress.pending:
        outcomes = subscribers_upsert_chunk(
            workspace=job.workspace, rows=[row for _, row in progress.pending], update_existing=job.update_existing,
            consent_source="import", mailing_list=job.mailing_list, tags=tags,
        )  # fmt: skip
        for outcome in outcomes:
            if outcome.status == "created":
                progress.created += 1
            elif outcome.status == "skipped":
                progress.skipped += 1
            else:
                progress.updated += 1
        progress.pending.clear()
    try:
        position = binary.tell()
    except (OSError, ValueError):
        position = 0
    ImportJob.objects.filter(pk=job.pk).update(
        processed_rows=progress.processed_rows, processed_bytes=min(position, job.total_bytes or position),
        created_count=progress.created, updated_count=progress.updated, skipped_count=progress.skipped,
        error_count=progress.errors,
    )  # fmt: skip


def import_error_report_lines(*, job: ImportJob) -> Iterator[bytes]:
    """The bad-row report of a finished import, streamed."""
    if job.status not in (ImportStatus.COMPLETED, ImportStatus.FAILED):
        raise Conflict("The import has not finished yet.", code="import_not_finished")
    if not job.error_report:
        yield (",".join(ERROR_REPORT_HEADER) + "\r\n").encode()
        return
    with job.error_report.open("rb") as handle:
        yield from iter(lambda: handle.read(64 * 1024), b"")


# Export ----------------------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def subscribers_export_lines(*, workspace: Workspace, queryset: QuerySet[Subscriber]) -> Iterator[str]:
    """CSV lines for the subscribers of `queryset`, read from the database in chunks (memory stays flat)."""
    keys = list(FieldDefinition.objects.filter(workspace=workspace).order_by("key").values_list("key", flat=True))
    writer = csv.writer(_Echo())
    yield writer.writerow(
        ["id", "email", "first_name", "last_name", "status", "time_zone", "locale", "lists", "tags", "created_at",
         "consent_source", "consent_at", "confirmed_at", *(ATTRIBUTE_PREFIX + key for key in keys)]
    )  # fmt: skip
    rows: Iterable[Subscriber] = queryset.prefetch_related(
        "tags",
        Prefetch(
            "list_memberships",
            queryset=ListMembership.objects.filter(status=MembershipStatus.SUBSCRIBED).select_related("mailing_list"),
        ),
    ).iterator(chunk_size=1000)
    for subscriber in rows:
        attributes = subscriber.attributes if isinstance(subscriber.attributes, dict) else {}
        yield writer.writerow(
            [
                subscriber.pk, csv_safe(subscriber.email), csv_safe(subscriber.first_name),
                csv_safe(subscriber.last_name), subscriber.status, subscriber.time_zone, subscriber.locale,
                csv_safe(";".join(m.mailing_list.name for m in subscriber.list_memberships.all())),
                csv_safe(";".join(tag.name for tag in subscriber.tags.all())),
                subscriber.created_at.isoformat(), csv_safe(subscriber.consent_source),
                subscriber.consent_at.isoformat() if subscriber.consent_at else "",
                subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "",
                *(csv_safe(attributes.get(key, "")) for key in keys),
            ]
        )  # fmt: skip

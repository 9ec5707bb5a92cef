"""Import of scraped posts: Telegram Desktop exports, JSON Lines and CSV files.

Every record of a file is read and validated before anything is written, and
the file is written in one transaction: a file is imported whole or not at all.
Posts already in the database (same source URL, or same channel and message
id) are skipped and reported, so importing the same file twice is harmless.
"""

import csv
import datetime
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import TEXT_MIN_LENGTH, Report, text_fingerprint

logger = logging.getLogger(__name__)

FORMATS = ("telegram", "jsonl", "csv")
SUFFIX_FORMATS = {
    ".json": "telegram",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
REQUIRED_FIELDS = ("text", "source_url")
# Rows per INSERT: well under SQLite's bound-parameter limit for this model.
CHUNK_SIZE = 500

SKIP_SERVICE = "service message"
SKIP_SHORT = f"text under {TEXT_MIN_LENGTH} characters"
SKIP_URL = "source URL already imported"
SKIP_MESSAGE = "channel message already imported"
SKIP_REPEAT = "repeated in this file"

_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_CHANNEL_URL = re.compile(r"^(?:https?://)?(?:t\.me|telegram\.me)/(?:s/)?([^/?#]+)/?$")
_LINKS_AND_MENTIONS = re.compile(r"(?:https?://|www\.)\S+|@\w+")
_KEYWORD_SEPARATORS = re.compile(r"[;,،|]")
# Letters only: Arabic digits and punctuation say nothing about the language.
_ARABIC_LETTERS = re.compile(
    "[\u0621-\u064a\u066e-\u06d3\u06d5\u06fa-\u06ff\u0750-\u077f"
    "\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc]"
)
_LATIN_LETTERS = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")


class ImportFileError(Exception):
    """A file that cannot be imported; the message names the file and record."""


class RecordError(ValueError):
    """One field of one record is unusable; the caller adds file and record."""


@dataclass(frozen=True)
class Skipped:
    record: str
    reason: str
    detail: str = ""


@dataclass
class ImportResult:
    path: str
    file_format: str
    dry_run: bool = False
    imported: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, int]:
        """Skipped records counted per reason, most frequent first."""
        return dict(Counter(item.reason for item in self.skipped).most_common())


@dataclass(frozen=True)
class Record:
    """One post as read from a file, before conversion to a Report."""

    label: str
    values: Mapping[str, Any]


# --- entry point ---------------------------------------------------------------


def import_reports_file(
    path: str | Path,
    *,
    file_format: str | None = None,
    channel_url: str | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Imports one file of scraped posts and returns what was imported and skipped.

    ``file_format`` is one of FORMATS, or None to go by the file's suffix.
    ``channel_url`` (https://t.me/NAME) names the channel of a Telegram
    export. Raises ImportFileError, naming the file and the record, when any
    record is unusable; nothing of the file is written then. With ``dry_run``
    everything is checked and counted but nothing is written.
    """
    path = Path(path)
    file_format = file_format or detect_format(path)
    result = ImportResult(path=str(path), file_format=file_format, dry_run=dry_run)

    records = read_records(path, file_format, channel_url=channel_url)
    reports = build_reports(path, records, result)
    new_reports = drop_known_reports(reports, result)

    if not dry_run:
        save_reports(path, [report for _, report in new_reports])
    result.imported = len(new_reports)
    logger.info(
        "%s: %d reports %s, %d skipped",
        path,
        result.imported,
        "would be imported" if dry_run else "imported",
        len(result.skipped),
    )
    return result


def detect_format(path: Path) -> str:
    """The format a file's suffix stands for; ImportFileError when unknown."""
    try:
        return SUFFIX_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ImportFileError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
            f"name it .json (Telegram export), .jsonl or .csv, or pass --format."
        ) from None


def read_records(
    path: Path, file_format: str, *, channel_url: str | None = None
) -> list[Record]:
    """Every record of the file, parsed but not yet validated."""
    if file_format not in FORMATS:
        raise ImportFileError(f"{path}: unknown format {file_format!r}.")
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            if file_format == "telegram":
                return list(read_telegram_export(path, stream, channel_url))
            if file_format == "jsonl":
                return list(read_json_lines(path, stream))
            return list(read_csv(path, stream))
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file.") from None
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded)."
        ) from None


# --- formats -------------------------------------------------------------------


def read_json_lines(path: Path, stream: Iterable[str]) -> Iterator[Record]:
    """One JSON object per line; blank lines are allowed."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFileError(
                f"{path}, line {number}: invalid JSON ({exc.msg}, column {exc.colno})."
            ) from None
        if not isinstance(values, dict):
            raise ImportFileError(f"{path}, line {number}: not a JSON object.")
        yield Record(label=f"line {number}", values=values)


def read_csv(path: Path, stream: Iterable[str]) -> Iterator[Record]:
    """A CSV file whose header row names the columns (text, source_url, ...)."""
    reader = csv.DictReader(stream)
    try:
        columns = reader.fieldnames
        if not columns:
            raise ImportFileError(f"{path}: empty file, no header row.")
        missing = [name for name in REQUIRED_FIELDS if name not in columns]
        if missing:
            raise ImportFileError(
                f"{path}: missing required column {', '.join(missing)} "
                f"(the header has: {', '.join(columns)})."
            )
        line = reader.line_num + 1
        for row in reader:
            yield Record(label=f"line {line}", values=csv_row_values(path, line, row))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(f"{path}, line {reader.line_num}: {exc}.") from None


def csv_row_values(path: Path, line: int, row: dict) -> dict[str, Any]:
    if None in row:
        raise ImportFileError(
            f"{path}, line {line}: more values than the header has columns."
        )
    # A short row leaves None in its last columns: those cells are empty.
    return {name: value for name, value in row.items() if value not in (None, "")}


def read_telegram_export(
    path: Path, stream: Any, channel_url: str | None
) -> Iterator[Record]:
    """The messages of a Telegram Desktop export of one channel (result.json)."""
    try:
        export = json.load(stream)
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno} "
            f"({exc.msg})."
        ) from None
    if not isinstance(export, dict) or not isinstance(export.get("messages"), list):
        raise ImportFileError(
            f"{path}: not a Telegram Desktop export of one chat "
            f'(no "messages" list at the top level).'
        )
    username = export_username(path, export, channel_url)
    chat = {key: export.get(key) for key in ("name", "type", "id")}

    for index, message in enumerate(export["messages"], start=1):
        if not isinstance(message, dict):
            raise ImportFileError(f"{path}, message #{index}: not a JSON object.")
        label = f"message {message.get('id', f'#{index}')}"
        try:
            values = telegram_message_values(message, username, chat)
        except RecordError as exc:
            raise ImportFileError(f"{path}, {label}: {exc}") from None
        yield Record(label=label, values=values)


def export_username(path: Path, export: Mapping, channel_url: str | None) -> str:
    """The channel's public username: from --channel-url, else from the export."""
    if channel_url:
        return channel_username(channel_url)
    username = str(export.get("username") or "").lstrip("@")
    if _USERNAME.match(username):
        return username
    raise ImportFileError(
        f"{path}: the export does not name the channel's public username, so the "
        f"posts' addresses are unknown; pass --channel-url https://t.me/NAME."
    )


def channel_username(channel_url: str) -> str:
    """NAME from https://t.me/NAME (or t.me/NAME, @NAME, NAME)."""
    text = channel_url.strip()
    match = _CHANNEL_URL.match(text)
    username = match.group(1) if match else text.lstrip("@")
    if not _USERNAME.match(username):
        raise ImportFileError(
            f"--channel-url {channel_url!r} is not a public channel address "
            f"such as https://t.me/NAME."
        )
    return username


# Keys of an exported message that become Report fields; the rest is metadata.
TELEGRAM_FIELDS = {
    "id",
    "type",
    "date",
    "date_unixtime",
    "text",
    "text_entities",
    "forwarded_from",
}
TELEGRAM_MEDIA_KEYS = ("photo", "file", "media_type")


def telegram_message_values(
    message: Mapping[str, Any], username: str, chat: Mapping[str, Any]
) -> dict[str, Any]:
    """A message's values in the import's field names; service messages marked."""
    if message.get("type") != "message":
        return {"service": message.get("type") or "unknown"}
    message_id = message.get("id")
    if isinstance(message_id, bool) or not isinstance(message_id, int):
        raise RecordError(f"id: {message_id!r} is not a message number.")

    metadata = {k: v for k, v in message.items() if k not in TELEGRAM_FIELDS}
    metadata["telegram_chat"] = dict(chat)
    return {
        "text": telegram_text(message.get("text", "")),
        "source_url": f"https://t.me/{username}/{message_id}",
        "channel": username,
        "message_id": message_id,
        # date_unixtime is UTC; "date" is the exporting computer's local time,
        # only used (as UTC) by old exports that lack date_unixtime.
        "published_at": message.get("date_unixtime") or message.get("date"),
        "media_count": int(any(key in message for key in TELEGRAM_MEDIA_KEYS)),
        "forwarded_from": message.get("forwarded_from") or "",
        "metadata": metadata,
    }


def telegram_text(value: Any) -> str:
    """A message's text: a string, or a list of strings and entity objects."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise RecordError("text: neither a string nor a list of text parts.")
    parts = []
    for part in value:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            raise RecordError(f"text: unreadable text part {part!r}.")
    return "".join(parts)


# --- validation ------------------------------------------------------------------


def build_reports(
    path: Path, records: list[Record], result: ImportResult
) -> list[tuple[str, Report]]:
    """Validated, unsaved Report objects; skipped records are added to result."""
    now = timezone.now()
    reports = []
    for record in records:
        if "service" in record.values:
            result.skipped.append(Skipped(record.label, SKIP_SERVICE))
            continue
        try:
            report = report_from_values(record.values, now=now)
        except RecordError as exc:
            raise ImportFileError(f"{path}, {record.label}: {exc}") from None
        if report is None:
            result.skipped.append(Skipped(record.label, SKIP_SHORT))
            continue
        reports.append((record.label, report))
    return reports


def report_from_values(
    values: Mapping[str, Any], *, now: datetime.datetime
) -> Report | None:
    """A full_clean'ed Report, or None when the text is too short to be a report.

    Keys that are not Report fields are kept in ``metadata``. Raises
    RecordError naming the field when a value is unusable.
    """
    values = dict(values)
    for name in REQUIRED_FIELDS:
        if name not in values:
            raise RecordError(f"{name} is missing.")
    metadata = parse_metadata(values.pop("metadata", None))

    fields: dict[str, Any] = {"scraped_at": now}
    for name, parse in FIELD_PARSERS.items():
        value = values.pop(name, None)
        if value is not None and value != "":
            fields[name] = parse(name, value)
    for name, value in values.items():
        metadata.setdefault(name, value)

    if len(fields.get("text", "")) < TEXT_MIN_LENGTH:
        return None
    fields.setdefault("language", detect_language(fields["text"]))
    report = Report(**fields, metadata=metadata)
    report.text_hash = text_fingerprint(report.text)
    check_report(report)
    return report


def check_report(report: Report) -> None:
    """Django's field validation and Report.clean; uniqueness is checked in bulk."""
    try:
        report.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        problems = [
            message if name == "__all__" else f"{name}: {message}"
            for name, messages in exc.message_dict.items()
            for message in messages
        ]
        raise RecordError(" ".join(problems)) from None


def parse_string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{name}: {value!r} is not text.")
    return value.strip()


def parse_channel(name: str, value: Any) -> str:
    return parse_string(name, value).lstrip("@")


def parse_integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise RecordError(f"{name}: {value!r} is not a whole number.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise RecordError(f"{name}: {value!r} is not a whole number.")


def parse_datetime(name: str, value: Any) -> datetime.datetime:
    """ISO 8601 (an offset is advised; without one UTC is assumed) or Unix time."""
    problem = RecordError(
        f"{name}: {value!r} is not a date and time "
        f"(ISO 8601 such as 2026-03-01T14:05:00+02:00, or Unix seconds)."
    )
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem
    try:
        if isinstance(value, int | float) or re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            return datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)
        parsed = datetime.datetime.fromisoformat(value.strip())
    except (ValueError, OverflowError, OSError):
        raise problem from None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


def parse_language(name: str, value: Any) -> str:
    return parse_string(name, value).lower()


def parse_keywords(name: str, value: Any) -> list[str]:
    """A list of strings; in CSV a JSON list or words separated by ; , or |."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise RecordError(f"{name}: {text!r} is not a JSON list.") from None
        else:
            value = _KEYWORD_SEPARATORS.split(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{name}: {value!r} is not a list of words.")
    return [word.strip() for word in value if word.strip()]


def parse_metadata(value: Any) -> dict[str, Any]:
    """An object, or in CSV a JSON object; missing means empty."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RecordError(f"metadata: {value!r} is not a JSON object.") from None
    if not isinstance(value, dict):
        raise RecordError(f"metadata: {value!r} is not a JSON object.")
    return dict(value)


FIELD_PARSERS = {
    "text": parse_string,
    "source_url": parse_string,
    "channel": parse_channel,
    "message_id": parse_integer,
    "published_at": parse_datetime,
    "scraped_at": parse_datetime,
    "language": parse_language,
    "keywords": parse_keywords,
    "media_count": parse_integer,
    "forwarded_from": parse_string,
    "view_count": parse_integer,
}


def detect_language(text: str) -> str:
    """ar, en or mixed from the share of Arabic letters; unknown without letters.

    Links and @mentions are left out, since Arabic posts carry Latin ones. The
    register records Arabic and English only, so any Latin script counts as
    English; a French post would be labelled ``en``.
    """
    text = _LINKS_AND_MENTIONS.sub(" ", text)
    arabic = len(_ARABIC_LETTERS.findall(text))
    latin = len(_LATIN_LETTERS.findall(text))
    if not arabic + latin:
        return Report.Language.UNKNOWN
    share = arabic / (arabic + latin)
    if share >= 0.8:
        return Report.Language.ARABIC
    if share <= 0.2:
        return Report.Language.ENGLISH
    return Report.Language.MIXED


# --- duplicates and writing ---------------------------------------------------------


def drop_known_reports(
    reports: list[tuple[str, Report]], result: ImportResult
) -> list[tuple[str, Report]]:
    """The reports neither in the database nor earlier in the file."""
    known_urls = existing_source_urls({report.source_url for _, report in reports})
    known_messages = existing_channel_messages(
        {(r.channel, r.message_id) for _, r in reports if r.message_id is not None}
    )
    seen_urls: dict[str, str] = {}
    seen_messages: dict[tuple[str, int], str] = {}
    new_reports = []

    for label, report in reports:
        url = report.source_url
        message_key = (report.channel, report.message_id)
        if url in known_urls:
            skip = Skipped(label, SKIP_URL, url)
        elif message_key in known_messages:
            skip = Skipped(label, SKIP_MESSAGE, "{} message {}".format(*message_key))
        elif url in seen_urls:
            skip = Skipped(label, SKIP_REPEAT, f"same URL as {seen_urls[url]}")
        elif report.message_id is not None and message_key in seen_messages:
            first = seen_messages[message_key]
            skip = Skipped(label, SKIP_REPEAT, f"same message as {first}")
        else:
            skip = None
        if skip:
            result.skipped.append(skip)
            continue

        seen_urls[report.source_url] = label
        if report.message_id is not None:
            seen_messages[message_key] = label
        new_reports.append((label, report))
    return new_reports


def existing_source_urls(urls: set[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunked(sorted(urls)):
        queryset = Report.objects.filter(source_url__in=chunk)
        found.update(queryset.values_list("source_url", flat=True))
    return found


def existing_channel_messages(keys: set[tuple[str, int]]) -> set[tuple[str, int]]:
    by_channel: dict[str, list[int]] = {}
    for channel, message_id in keys:
        by_channel.setdefault(channel, []).append(message_id)

    found: set[tuple[str, int]] = set()
    for channel, message_ids in by_channel.items():
        for chunk in chunked(sorted(message_ids)):
            queryset = Report.objects.filter(channel=channel, message_id__in=chunk)
            found.update(queryset.values_list("channel", "message_id"))
    return found


def save_reports(path: Path, reports: list[Report]) -> None:
    """Inserts all reports in one transaction (bulk_create does not call save())."""
    try:
        with transaction.atomic():
            for chunk in chunked(reports):
                Report.objects.bulk_create(chunk)
    except IntegrityError:
        # Only a concurrent import of the same posts gets here: the duplicate
        # check ran before the transaction.
        raise ImportFileError(
            f"{path}: some of these posts were added by another import meanwhile; "
            f"nothing was written, run the import again."
        ) from None


def chunked(items: list, size: int = CHUNK_SIZE) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

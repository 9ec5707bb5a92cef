"""Export of violations as CSV and GeoJSON, for the admin's export actions."""

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from .choices import COUNT_FIELDS
from .models import Violation, ViolationSource

EXPORT_FIELDS = (
    "id",
    "violation_type",
    "incident_date",
    "reported_date",
    "location_name_en",
    "location_name_ar",
    "admin_division_en",
    "admin_division_ar",
    "latitude",
    "longitude",
    "description_en",
    "description_ar",
    "perpetrator_en",
    "perpetrator_ar",
    "perpetrator_affiliation",
    "certainty",
    "verified",
    "verification_method",
    *COUNT_FIELDS,
    "flagged",
    "source_urls",
    "report_ids",
)

# Spreadsheet programs run a cell that starts with one of these as a formula;
# report text is scraped from the public, so it is quoted to stay plain text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# Rows fetched per query, so exporting a large selection keeps memory flat.
CHUNK_SIZE = 2000


def export_rows(queryset: QuerySet) -> Iterator[dict[str, Any]]:
    """One dict per violation (EXPORT_FIELDS), its sources read in chunks."""
    violations = queryset.order_by("pk")
    ids = list(violations.values_list("pk", flat=True))
    for start in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[start : start + CHUNK_SIZE]
        reports = report_ids_by_violation(chunk)
        for violation in Violation.objects.filter(pk__in=chunk).order_by("pk"):
            yield violation_row(violation, reports.get(violation.pk, []))


def report_ids_by_violation(violation_ids: list[int]) -> dict[int, list[int]]:
    links = (
        ViolationSource.objects.filter(violation_id__in=violation_ids)
        .order_by("created_at", "pk")
        .values_list("violation_id", "report_id")
    )
    reports = defaultdict(list)
    for violation_id, report_id in links:
        reports[violation_id].append(report_id)
    return reports


def violation_row(violation: Violation, report_ids: list[int]) -> dict[str, Any]:
    row = {name: getattr(violation, name) for name in EXPORT_FIELDS[:-1]}
    row["incident_date"] = violation.incident_date.isoformat()
    if violation.reported_date:
        row["reported_date"] = violation.reported_date.isoformat()
    row["report_ids"] = report_ids
    return row


class Echo:
    """A file-like object whose write returns the line, for streaming csv."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The header and one CSV line per row; lists joined with spaces."""
    writer = csv.writer(Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for row in rows:
        yield writer.writerow([csv_cell(row[name]) for name in EXPORT_FIELDS])


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(item) for item in value)
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return f"'{value}"
    return value


def geojson_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A GeoJSON FeatureCollection, one feature per row, written piece by piece.

    A violation without coordinates is still exported, with a null geometry
    (allowed by RFC 7946), so the export holds the whole selection.
    """
    yield '{"type": "FeatureCollection", "features": ['
    for index, row in enumerate(rows):
        yield ("," if index else "") + json.dumps(feature(row), ensure_ascii=False)
    yield "]}\n"


def feature(row: dict[str, Any]) -> dict[str, Any]:
    geometry = None
    if row["longitude"] is not None and row["latitude"] is not None:
        geometry = {"type": "Point", "coordinates": [row["longitude"], row["latitude"]]}
    properties = {
        name: value
        for name, value in row.items()
        if name not in {"id", "longitude", "latitude"}
    }
    return {
        "type": "Feature",
        "id": row["id"],
        "geometry": geometry,
        "properties": properties,
    }

"""Storing the violations a report describes: create, merge, repost, split.

``create_violations_from_report`` does not change the report's status. The
caller runs it and ``report.mark_as_processed`` in one
``transaction.atomic()``, so the violations, their links and the report's
outcome commit together; it opens its own (nested) transaction as well, so it
is all-or-nothing when called alone.
"""

import dataclasses
import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from reports.models import Report

from . import duplicates
from .merge import figures_of, json_ready, merge_values, revert_changes
from .models import Violation, ViolationSource

logger = logging.getLogger(__name__)

# What a single bad draft may raise; it is recorded and the others go on.
# Anything else (a lost connection, a bug) aborts the whole report.
DRAFT_ERRORS = (ValidationError, IntegrityError, DataError, ValueError, TypeError)
NULLABLE_FIELDS = frozenset(
    field.name for field in Violation._meta.concrete_fields if field.null
)


@dataclasses.dataclass
class CreationResult:
    """What one report's drafts became.

    ``merged`` lists every merge as (violation id, similarity), including a
    draft merged into a violation an earlier draft of the same report created;
    ``violations_merged`` counts only the known violations this report
    corroborated, so ``violations_created + violations_merged`` equals
    ``len(violation_ids)``.
    """

    created_ids: list[int] = dataclasses.field(default_factory=list)
    merged: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    violation_ids: list[int] = dataclasses.field(default_factory=list)
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def violations_created(self) -> int:
        return len(self.created_ids)

    @property
    def violations_merged(self) -> int:
        return len({pk for pk, _ in self.merged} - set(self.created_ids))

    def add(self, violation_id: int, *, similarity: float | None) -> None:
        if similarity is None:
            self.created_ids.append(violation_id)
        else:
            self.merged.append((violation_id, similarity))
        if violation_id not in self.violation_ids:
            self.violation_ids.append(violation_id)


def create_violations_from_report(
    *, report: Report, drafts: Sequence[Mapping[str, Any]]
) -> CreationResult:
    """Creates or merges one violation per draft and links each to ``report``.

    Each draft is a dict of Violation field values. A draft that matches a
    known violation (or one an earlier draft of this report created) is
    merged into it; otherwise a new violation is created. A draft that fails
    validation or a database constraint is rolled back alone and listed in
    ``errors`` with its index and reason. Any other exception propagates and
    nothing of this call remains.
    """
    result = CreationResult()
    with transaction.atomic():
        duplicates.lock_candidate_blocks(drafts)

        for index, draft in enumerate(drafts):
            try:
                with transaction.atomic():
                    violation_id, similarity = store_draft(report=report, draft=draft)
            except DRAFT_ERRORS as exc:
                result.errors.append({"index": index, "reason": _reason(exc)})
                continue
            result.add(violation_id, similarity=similarity)

    logger.info(
        "report %s: %d violations created, %d merged, %d drafts rejected",
        report.pk,
        result.violations_created,
        result.violations_merged,
        len(result.errors),
    )
    return result


def store_draft(
    *, report: Report, draft: Mapping[str, Any]
) -> tuple[int, float | None]:
    """Creates or merges one draft; returns (violation id, similarity or None)."""
    values = violation_values(report=report, draft=draft)
    violation = Violation(**values)
    violation.full_clean()

    match = duplicates.find_duplicate(values)
    if match.is_duplicate():
        merge_into(
            match.violation,
            report=report,
            draft=draft,
            values=values,
            similarity=match.similarity,
        )
        return match.violation.pk, match.similarity

    violation.save()
    violation.link_to_report(
        report, role=ViolationSource.Role.CREATED, **_source_details(draft, values)
    )
    return violation.pk, None


def violation_values(*, report: Report, draft: Mapping[str, Any]) -> dict[str, Any]:
    """The draft's values plus the report's source information.

    None for a field that cannot be null means "not stated" and takes the
    field's default (0 for counts).
    """
    values = {
        field: value
        for field, value in draft.items()
        if value is not None or field in NULLABLE_FIELDS
    }
    urls = list(values.get("source_urls") or [])
    if report.source_url not in urls:
        urls.append(report.source_url)
    values["source_urls"] = urls
    if not values.get("source_en"):
        values["source_en"] = report.channel or report.source_url
    if not values.get("reported_date"):
        values["reported_date"] = report_date(report)
    return values


def report_date(report: Report) -> datetime.date:
    """The day the report was published, or scraped when that is unknown."""
    return timezone.localdate(report.published_at or report.scraped_at)


def merge_into(
    violation: Violation,
    *,
    report: Report,
    draft: Mapping[str, Any],
    values: Mapping[str, Any],
    similarity: float,
) -> dict[str, list]:
    """Merges a draft into ``violation`` and records it on the report's link.

    Returns the changes made, as {field: [before, after]}.
    """
    violation = Violation.objects.select_for_update().get(pk=violation.pk)
    changes = merge_values(violation, values)
    if changes:
        violation.full_clean()
        violation.save(update_fields=list(changes))

    created = violation.link_to_report(
        report,
        role=ViolationSource.Role.MERGED,
        similarity=similarity,
        changes=changes,
        **_source_details(draft, values),
    )
    if not created:
        _extend_link(violation, report=report, values=values, changes=changes)
    logger.info(
        "report %s merged into violation %s (similarity %.2f, %d fields changed)",
        report.pk,
        violation.pk,
        similarity,
        len(changes),
    )
    return changes


def _extend_link(
    violation: Violation,
    *,
    report: Report,
    values: Mapping[str, Any],
    changes: Mapping[str, list],
) -> None:
    """A second draft of one report matched the same violation: one link, both.

    The link keeps the first "before" of each field and the highest figures;
    a split of this link takes back both drafts' changes together.
    """
    link = ViolationSource.objects.get(violation=violation, report=report)
    combined = dict(link.changes)
    for field, (before, after) in changes.items():
        combined[field] = [combined.get(field, [before])[0], after]
    link.changes = combined
    ours = figures_of(values)
    link.figures = {
        field: max(link.figures.get(field, 0), count) for field, count in ours.items()
    }
    link.save(update_fields=["changes", "figures"])


def find_repost_source(report: Report) -> Report | None:
    """The earliest processed report with the same normalised text, if any.

    Never ``report`` itself. Reads only.
    """
    return (
        Report.objects.filter(
            text_hash=report.text_hash, status=Report.Status.PROCESSED
        )
        .exclude(pk=report.pk)
        .order_by("id")
        .first()
    )


def link_repost(*, report: Report, source: Report) -> list[int]:
    """Links ``report`` to every violation of ``source`` as an exact repost.

    Each violation gains the repost's URL among its source URLs (recorded as
    a change on the link); ``report.duplicate_of`` becomes ``source``.
    Returns the violation ids, ascending. The report's status is not changed.
    """
    with transaction.atomic():
        violations = Violation.objects.select_for_update().filter(
            sources__report=source
        )
        for violation in violations.order_by("id"):
            _link_one_repost(violation, report=report, source=source)

        Report.objects.filter(pk=report.pk).update(duplicate_of=source)
        report.duplicate_of = source
    logger.info("report %s linked as a repost of report %s", report.pk, source.pk)
    return report.violation_ids


def _link_one_repost(violation: Violation, *, report: Report, source: Report) -> None:
    changes = merge_values(violation, {"source_urls": [report.source_url]})
    if changes:
        violation.save(update_fields=list(changes))
    original = ViolationSource.objects.get(violation=violation, report=source)
    violation.link_to_report(
        report,
        role=ViolationSource.Role.REPOST,
        similarity=1.0,
        figures=original.figures,
        description=original.description,
        changes=changes,
    )


def split_source(source: ViolationSource) -> Violation:
    """Undoes a merge: the source's report gets its own violation back.

    On the violation it was merged into, each field the merge changed and
    that nobody changed since is set back, the link is deleted, and the
    counts become the highest any remaining source reported. A new violation
    is created from the source's stored draft and linked to its report.
    Raises ValueError for a source that is not a merge.
    """
    if source.role != ViolationSource.Role.MERGED:
        raise ValueError(
            f"Only a merged source can be split; link {source.pk} is {source.role}."
        )
    with transaction.atomic():
        violation = Violation.objects.select_for_update().get(pk=source.violation_id)
        reverted = revert_changes(violation, source.changes)
        source.delete()
        recounted = _recount(violation)
        violation.save(update_fields=[*reverted, *recounted])

        split_off = _violation_from_source(source)
    logger.info(
        "report %s split from violation %s into violation %s (%d fields set back)",
        source.report_id,
        violation.pk,
        split_off.pk,
        len(reverted),
    )
    return split_off


def _violation_from_source(source: ViolationSource) -> Violation:
    """A new violation from the source's stored draft, created by its report."""
    values = violation_values(report=source.report, draft=_draft_values(source.draft))
    violation = Violation(**values)
    violation.full_clean()
    violation.save()
    violation.link_to_report(
        source.report,
        role=ViolationSource.Role.CREATED,
        **_source_details(source.draft, values),
    )
    return violation


def _recount(violation: Violation) -> list[str]:
    """Counts set to the highest any linked source reported; returns the fields."""
    figures = [
        link.figures
        for link in violation.sources.exclude(role=ViolationSource.Role.REPOST)
    ]
    changed = []
    for field in figures_of({}):
        highest = max((found.get(field, 0) for found in figures), default=0)
        if getattr(violation, field) != highest:
            setattr(violation, field, highest)
            changed.append(field)
    return changed


def _draft_values(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored (JSON) draft with its date fields as dates again."""
    values = dict(stored)
    for field in ("incident_date", "reported_date"):
        if values.get(field):
            values[field] = datetime.date.fromisoformat(values[field])
    return values


def _source_details(draft: Mapping[str, Any], values: Mapping[str, Any]) -> dict:
    return {
        "figures": figures_of(values),
        "description": values.get("description_en") or "",
        "draft": json_ready(dict(draft)),
    }


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}"
            for field, messages in sorted(exc.message_dict.items())
        )
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)

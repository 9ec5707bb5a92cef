"""Processing of one report: repost check, Claude call, stored outcome.

The work is split in three steps so a batch can run the Claude call in a
worker thread while every database write stays on the coordinating thread
(one writer: SQLite needs it, and connections stay simple):

- ``prepare_report`` (database): claims the report unless the caller already
  did, and settles an exact repost without calling Claude;
- ``call_claude`` (no database): the extraction, with any error kept as data;
- ``finish_report`` (database): one transaction writes the violations, their
  links and the report's final status.

``process_report`` runs the three for a single report. Whatever happens, the
report has left ``processing`` when it returns, unless its claim was taken
over by another worker (then that worker owns it).
"""

import dataclasses
import datetime
import enum
import logging
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from violations.services import (
    create_violations_from_report,
    find_repost_source,
    link_repost,
)

from .extraction import (
    ExtractionError,
    ExtractionResult,
    Usage,
    extract_violations,
)
from .limits import CallSlots, RequestPace, new_holder
from .models import Report
from .prompts import PROMPT_VERSION

logger = logging.getLogger(__name__)

# Categories where the API refused for its own load, not because of the
# report: the report goes back to the queue without spending an attempt.
DEFERRED_CATEGORIES = {
    Report.ErrorCategory.RATE_LIMITED,
    Report.ErrorCategory.OVERLOADED,
}
# Wait used when a rate-limit or overload answer carries no retry-after.
DEFAULT_RETRY_AFTER_SECONDS = 30.0


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    RETRY = "retry"  # the attempt failed; the report waits for a retry
    FAILED = "failed"  # the attempt failed and was the last one
    RELEASED = "released"  # given back to the queue, attempt not spent
    SKIPPED = "skipped"  # not claimable, or the claim was taken over


@dataclasses.dataclass
class ProcessingResult:
    """What happened to one report; ``as_dict()`` gives plain values."""

    report_id: int
    outcome: Outcome
    violations_created: int = 0
    violations_merged: int = 0
    violation_ids: list[int] = dataclasses.field(default_factory=list)
    validation_errors: list[dict] = dataclasses.field(default_factory=list)
    error: str = ""
    error_category: str = ""
    processing_time_ms: int = 0
    # Tokens of this attempt's calls, as the API bills them (see Report.TOKEN_FIELDS).
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    retry_after: float | None = None
    stops_batch: bool = False
    repost_of: int | None = None

    @property
    def success(self) -> bool:
        return self.outcome in (Outcome.PROCESSED, Outcome.IGNORED)

    @property
    def ignored(self) -> bool:
        return self.outcome == Outcome.IGNORED

    @property
    def tokens_used(self) -> int:
        """All tokens: input, output, cache read and cache write."""
        return sum(getattr(self, kind) for kind in Report.TOKEN_FIELDS)

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values.update(
            outcome=str(self.outcome),
            success=self.success,
            tokens_used=self.tokens_used,
        )
        return values


@dataclasses.dataclass
class CallOutcome:
    """The result of the Claude call, or the exception it raised."""

    extraction: ExtractionResult | None = None
    error: BaseException | None = None


class ClaimLost(Exception):
    """The report's claim was taken over; this worker must not write a result."""


def process_report(report: Report, *, claimed: bool = False) -> ProcessingResult:
    """Processes one report from claim to final status.

    With ``claimed=False`` the report is claimed first (an attempt is
    counted); a report that is not ready comes back as ``skipped``.
    """
    started = time.monotonic()
    settled = prepare_report(report, claimed=claimed, started=started)
    if settled is not None:
        log_result(settled)
        return settled

    call = call_within_limits(report)
    result = finish_report(report, call, started=started)
    log_result(result)
    return result


def call_within_limits(report: Report) -> CallOutcome:
    """One call outside a batch, within the installation's limits.

    It waits for a call slot and then for the request turn, like a batch's
    calls, so reprocessing from the admin or ``--report`` never adds a call
    beyond REPORTS_MAX_CONCURRENT_CALLS or the request pace.
    """
    holder = new_holder()
    slots = CallSlots(holder)
    slot = slots.wait()
    try:
        RequestPace(holder).wait()
        return call_claude(report)
    finally:
        slots.release(slot)


def prepare_report(
    report: Report, *, claimed: bool, started: float
) -> ProcessingResult | None:
    """Claims the report if needed and settles an exact repost.

    Returns a final result when no Claude call is needed, else None.
    """
    if not claimed and not report.mark_as_processing():
        return ProcessingResult(
            report_id=report.pk,
            outcome=Outcome.SKIPPED,
            error=f"Report {report.pk} is not ready for processing.",
        )

    try:
        source = find_repost_source(report)
        if source is None:
            return None
        return finish_repost(report, source, started=started)
    except ClaimLost:
        return claim_lost(report)
    except Exception as exc:
        return fail_internal(report, exc, started=started)


def call_claude(report: Report) -> CallOutcome:
    """Runs the extraction; touches no database, so it may run in a thread."""
    try:
        return CallOutcome(extraction=extract_violations(report))
    except Exception as exc:
        return CallOutcome(error=exc)


def interrupts_batch(call: CallOutcome) -> bool:
    """Whether this outcome pauses (rate limit) or stops (auth) a batch."""
    error = call.error
    return isinstance(error, ExtractionError) and (
        error.stops_batch or error.category in DEFERRED_CATEGORIES
    )


def finish_report(
    report: Report, call: CallOutcome, *, started: float
) -> ProcessingResult:
    """Stores the outcome of the call; the report leaves ``processing``."""
    try:
        if call.error is not None:
            return finish_failed_call(report, call.error, started=started)
        return store_extraction(report, call.extraction, started=started)
    except ClaimLost:
        return claim_lost(report)
    except Exception as exc:
        return fail_internal(report, exc, started=started)


def finish_repost(
    report: Report, source: Report, *, started: float
) -> ProcessingResult:
    """An exact repost gets the source's violations without a Claude call."""
    with transaction.atomic():
        violation_ids = link_repost(report=report, source=source)
        elapsed_ms = elapsed_since(started)
        if violation_ids:
            # Linked, not created: every violation counts as corroborated.
            done = report.mark_as_processed(
                violation_ids, elapsed_ms, violations_merged=len(violation_ids)
            )
            outcome = Outcome.PROCESSED
        else:
            reason = f"Repeats report {source.pk}, which describes no violation."
            done = report.mark_as_ignored(reason, processing_time_ms=elapsed_ms)
            outcome = Outcome.IGNORED
        if not done:
            raise ClaimLost

    return ProcessingResult(
        report_id=report.pk,
        outcome=outcome,
        violations_merged=len(violation_ids),
        violation_ids=sorted(violation_ids),
        processing_time_ms=elapsed_ms,
        repost_of=source.pk,
    )


def store_extraction(
    report: Report, extraction: ExtractionResult, *, started: float
) -> ProcessingResult:
    """One transaction: usage, violations and links, and the final status."""
    drafts = [draft.violation_fields() for draft in extraction.drafts]

    with transaction.atomic():
        record_usage(
            report,
            extraction.usage,
            prompt_version=extraction.prompt_version,
            model=extraction.model,
        )
        if not drafts and not extraction.rejected:
            result = finish_ignored(report, extraction, started=started)
        elif not drafts:
            result = finish_rejected(report, list(extraction.rejected), started)
        else:
            result = finish_with_drafts(report, extraction, drafts, started)

    for kind in Report.TOKEN_FIELDS:
        setattr(result, kind, getattr(extraction.usage, kind) or 0)
    return result


def record_usage(
    report: Report, usage: Usage, *, prompt_version: str, model: str
) -> None:
    """Adds the call's tokens to the report; raises ClaimLost if not ours.

    Tokens add up over attempts, failed ones included, so the fields hold
    what the report cost. Updating the claimed row first also locks it
    (PostgreSQL) until the transaction ends, so the claim cannot be taken
    over half-way.
    """
    updated = Report.objects.filter(
        pk=report.pk, status=Report.Status.PROCESSING, claim_token=report.claim_token
    ).update(
        prompt_version=prompt_version or "",
        model_name=model or "",
        **{name: F(name) + (getattr(usage, name) or 0) for name in Report.TOKEN_FIELDS},
    )
    if not updated:
        raise ClaimLost


def finish_ignored(
    report: Report, extraction: ExtractionResult, *, started: float
) -> ProcessingResult:
    reason = extraction.no_violation_reason.strip() or (
        "Claude found no violation in the report."
    )
    elapsed_ms = elapsed_since(started)
    if not report.mark_as_ignored(reason, processing_time_ms=elapsed_ms):
        raise ClaimLost
    return ProcessingResult(
        report_id=report.pk, outcome=Outcome.IGNORED, processing_time_ms=elapsed_ms
    )


def finish_rejected(
    report: Report, errors: list[dict], started: float
) -> ProcessingResult:
    """Every draft was rejected: a ``validation`` failure, errors kept."""
    save_validation_errors(report, errors)
    message = (
        f"All {len(errors)} violations Claude returned were rejected: "
        f"{describe_error(errors[0])}"
    )
    result = fail(report, Report.ErrorCategory.VALIDATION, message, started=started)
    if result.outcome == Outcome.SKIPPED:
        raise ClaimLost
    result.validation_errors = errors
    return result


def finish_with_drafts(
    report: Report,
    extraction: ExtractionResult,
    drafts: list[Mapping[str, Any]],
    started: float,
) -> ProcessingResult:
    creation = create_violations_from_report(report=report, drafts=drafts)
    errors = [*extraction.rejected, *storage_errors(creation.errors)]
    if not creation.violation_ids:
        return finish_rejected(report, errors, started)

    save_validation_errors(report, errors)
    elapsed_ms = elapsed_since(started)
    done = report.mark_as_processed(
        list(creation.violation_ids),
        elapsed_ms,
        violations_merged=creation.violations_merged,
    )
    if not done:
        raise ClaimLost
    return ProcessingResult(
        report_id=report.pk,
        outcome=Outcome.PROCESSED,
        violations_created=creation.violations_created,
        violations_merged=creation.violations_merged,
        violation_ids=list(creation.violation_ids),
        validation_errors=errors,
        processing_time_ms=elapsed_ms,
    )


def storage_errors(errors: list[Mapping[str, Any]]) -> list[dict]:
    """Drafts the creation service refused, in the shape of rejected drafts."""
    return [
        {"index": error["index"], "errors": [error["reason"]], "stage": "storage"}
        for error in errors
    ]


def save_validation_errors(report: Report, errors: list[dict]) -> None:
    # Most answers have no rejections: skip the write when nothing changes.
    if errors == report.validation_errors:
        return
    Report.objects.filter(pk=report.pk).update(validation_errors=errors)
    report.validation_errors = errors


def describe_error(error: Mapping[str, Any]) -> str:
    reasons = "; ".join(str(reason) for reason in error.get("errors", []))
    return f"item {error.get('index')}: {reasons}"


def finish_failed_call(
    report: Report, error: BaseException, *, started: float
) -> ProcessingResult:
    if not isinstance(error, ExtractionError):
        logger.error(
            "report %s: unexpected error in the Claude call",
            report.pk,
            exc_info=error,
        )
        message = f"{type(error).__name__}: {error}"
        return fail(report, Report.ErrorCategory.INTERNAL, message, started=started)

    if error.category in DEFERRED_CATEGORIES or error.stops_batch:
        return release(report, error)

    with transaction.atomic():
        if error.usage is not None:
            record_usage(
                report,
                error.usage,
                prompt_version=PROMPT_VERSION,
                model=settings.CLAUDE_MODEL,
            )
        result = fail(
            report,
            error.category,
            str(error),
            started=started,
            final=not error.retryable,
        )
    if error.usage is not None:
        for kind in Report.TOKEN_FIELDS:
            setattr(result, kind, getattr(error.usage, kind) or 0)
    return result


def release(report: Report, error: ExtractionError) -> ProcessingResult:
    """Gives the report back without spending the attempt.

    Rate and overload answers are about the API's load, and ``auth`` or
    ``spend_limit`` about the account: none is the report's fault. The error
    is still stored on the report, so the admin shows why it went back.
    """
    retry_after = None
    not_before = None
    if error.category in DEFERRED_CATEGORIES:
        retry_after = error.retry_after or DEFAULT_RETRY_AFTER_SECONDS
        not_before = timezone.now() + datetime.timedelta(seconds=retry_after)
    released = report.release(
        not_before=not_before,
        error_category=error.category,
        error_message=str(error),
    )
    if not released:
        return claim_lost(report)
    return ProcessingResult(
        report_id=report.pk,
        outcome=Outcome.RELEASED,
        error=str(error),
        error_category=str(error.category),
        retry_after=retry_after,
        stops_batch=error.stops_batch,
    )


def fail(
    report: Report,
    category: str,
    message: str,
    *,
    started: float,
    final: bool = False,
) -> ProcessingResult:
    """Stores the failure: ``retry_pending`` if attempts remain, else ``failed``.

    ``final``: the error would recur, so no attempt is left for it.
    """
    elapsed_ms = elapsed_since(started)
    failed = report.mark_as_failed(
        category, message, processing_time_ms=elapsed_ms, final=final
    )
    if not failed:
        return claim_lost(report)
    outcome = Outcome.FAILED if report.status == Report.Status.FAILED else Outcome.RETRY
    return ProcessingResult(
        report_id=report.pk,
        outcome=outcome,
        error=message,
        error_category=str(category),
        processing_time_ms=elapsed_ms,
    )


def fail_internal(
    report: Report, error: Exception, *, started: float
) -> ProcessingResult:
    """The catch-all boundary: a bug must not leave the report in processing."""
    logger.exception("report %s: unexpected error while processing", report.pk)
    message = f"{type(error).__name__}: {error}"
    return fail(report, Report.ErrorCategory.INTERNAL, message, started=started)


def claim_lost(report: Report) -> ProcessingResult:
    logger.warning(
        "report %s: claim taken over by another worker; result discarded", report.pk
    )
    return ProcessingResult(
        report_id=report.pk,
        outcome=Outcome.SKIPPED,
        error=f"Report {report.pk} was claimed again elsewhere; result discarded.",
    )


def elapsed_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def log_result(result: ProcessingResult) -> None:
    """One line per report, with its outcome, counts and time in seconds."""
    seconds = result.processing_time_ms / 1000
    if result.outcome == Outcome.PROCESSED:
        logger.info(
            "report %s processed: %s violations created, %s merged in %.1f s",
            result.report_id,
            result.violations_created,
            result.violations_merged,
            seconds,
        )
    elif result.outcome == Outcome.IGNORED:
        logger.info("report %s ignored in %.1f s", result.report_id, seconds)
    else:
        logger.warning(
            "report %s %s: %s", result.report_id, result.outcome, result.error
        )

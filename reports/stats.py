"""Processing statistics: the figures `report_stats` prints, as one plain value.

Outcome figures (success rate, times, violations, errors, tokens) are read
from reports finished in the period through the ``finished_at`` index; the
queue (reports still waiting, and the oldest of them) is always the queue now.
The admin dashboard takes its outcome, time, violation and token figures from
here too: ``processed`` and ``ignored`` count as success, ``failed`` and
``retry_pending`` as failure.
"""

import datetime
import re
from dataclasses import asdict, dataclass
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Avg, Count, Q, QuerySet, Sum
from django.utils import timezone

from .models import Report

SUCCESS_STATUSES = (Report.Status.PROCESSED, Report.Status.IGNORED)
FAILURE_STATUSES = (Report.Status.FAILED, Report.Status.RETRY_PENDING)
# The reports whose processing time counts: processed ones that recorded it.
TIMED = Q(status=Report.Status.PROCESSED, processing_time_ms__isnull=False)
PERIOD_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PERIOD = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class OldestWaiting:
    report_id: int
    status: str
    created_at: datetime.datetime
    waiting_seconds: float


@dataclass(frozen=True)
class ReportStats:
    generated_at: datetime.datetime
    since: datetime.datetime | None
    by_status: dict[str, int]
    attempts: dict[int, int]
    succeeded: int
    failed: int
    success_rate: float | None
    timed_reports: int
    mean_processing_seconds: float | None
    p95_processing_seconds: float | None
    violations_created: int
    violations_merged: int
    errors_by_category: dict[str, int]
    oldest_waiting: OldestWaiting | None
    tokens: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def waiting(self) -> int:
        return sum(self.by_status[status] for status in Report.QUEUE_STATUSES)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: datetimes as ISO 8601, attempts keys as text."""
        data = asdict(self)
        data["generated_at"] = self.generated_at.isoformat()
        data["since"] = self.since.isoformat() if self.since else None
        data["attempts"] = {str(k): v for k, v in self.attempts.items()}
        if self.oldest_waiting:
            data["oldest_waiting"]["created_at"] = (
                self.oldest_waiting.created_at.isoformat()
            )
        data["total"] = self.total
        return data


def report_stats(
    *, since: datetime.datetime | None = None, now: datetime.datetime | None = None
) -> ReportStats:
    """Statistics of all reports, or of those finished since ``since``.

    With ``since``, counts by status and attempts cover the reports finished in
    the period plus every report still waiting. Six aggregate queries, five on
    PostgreSQL; with ``since`` the outcome figures read only the period
    (``finished_at`` index).
    """
    now = now or timezone.now()
    finished = Report.objects.order_by()
    counted = Report.objects.order_by()
    if since is not None:
        finished = finished.filter(finished_at__gte=since)
        counted = counted.filter(
            Q(finished_at__gte=since) | Q(status__in=Report.QUEUE_STATUSES)
        )

    outcome = outcome_totals(finished)
    times = processing_times(finished, outcome)
    return ReportStats(
        generated_at=now,
        since=since,
        by_status=counts_by_status(counted),
        attempts=attempts_distribution(counted),
        succeeded=outcome["succeeded"],
        failed=outcome["failed"],
        success_rate=rate(
            outcome["succeeded"], outcome["succeeded"] + outcome["failed"]
        ),
        timed_reports=times["count"],
        mean_processing_seconds=times["mean"],
        p95_processing_seconds=times["p95"],
        violations_created=outcome["violations_created"],
        violations_merged=outcome["violations_merged"],
        errors_by_category=errors_by_category(finished),
        oldest_waiting=oldest_waiting(now=now),
        tokens=token_totals(outcome),
    )


def counts_by_status(reports: QuerySet) -> dict[str, int]:
    """Every status in lifecycle order with its count, zeros included."""
    counts = dict(reports.values_list("status").annotate(count=Count("pk")))
    return {status.value: counts.get(status.value, 0) for status in Report.Status}


def attempts_distribution(reports: QuerySet) -> dict[int, int]:
    """How many reports have used 0, 1, 2, ... attempts."""
    rows = reports.values_list("attempts").annotate(count=Count("pk"))
    return dict(sorted(rows))


class Percentile95(Aggregate):
    """PostgreSQL's nearest-rank 95th percentile, computed in the same pass."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(0.95) WITHIN GROUP (ORDER BY %(expressions)s)"


def outcome_totals(finished: QuerySet) -> dict[str, Any]:
    """Successes, failures, times, violations and token sums in one aggregate query.

    Sums of no rows come back as 0; ``p95_ms`` is there on PostgreSQL only.
    """
    aggregates = {
        "succeeded": Count("pk", filter=Q(status__in=SUCCESS_STATUSES)),
        "failed": Count("pk", filter=Q(status__in=FAILURE_STATUSES)),
        "timed": Count("pk", filter=TIMED),
        "mean_ms": Avg("processing_time_ms", filter=TIMED),
        "violations_created": Sum("violations_created"),
        "violations_merged": Sum("violations_merged"),
        **{name: Sum(name) for name in Report.TOKEN_FIELDS},
    }
    if connection.vendor == "postgresql":
        aggregates["p95_ms"] = Percentile95("processing_time_ms", filter=TIMED)
    totals = finished.order_by().aggregate(**aggregates)
    for name in ("violations_created", "violations_merged", *Report.TOKEN_FIELDS):
        totals[name] = totals[name] or 0
    return totals


def processing_times(finished: QuerySet, totals: dict[str, Any]) -> dict[str, Any]:
    """Mean and 95th percentile, in seconds, of processed reports' times."""
    count = totals["timed"]
    if not count:
        return {"mean": None, "p95": None, "count": 0}

    p95_ms = totals.get("p95_ms")
    if p95_ms is None:
        # SQLite has no percentile function: the same nearest rank, read as
        # one row, since fetching every time would grow with the table.
        rank = -(-count * 95 // 100) - 1
        ordered = finished.filter(TIMED).order_by("processing_time_ms")
        p95_ms = ordered.values_list("processing_time_ms", flat=True)[rank]
    return {"mean": totals["mean_ms"] / 1000, "p95": p95_ms / 1000, "count": count}


def errors_by_category(finished: QuerySet) -> dict[str, int]:
    """Failed and retry-pending reports by the category of their last error."""
    rows = (
        finished.filter(status__in=FAILURE_STATUSES)
        .exclude(error_category="")
        .values_list("error_category")
        .annotate(count=Count("pk"))
    )
    return dict(sorted(rows, key=lambda row: (-row[1], row[0])))


def oldest_waiting(*, now: datetime.datetime) -> OldestWaiting | None:
    """The report that has waited longest since it was imported, if any waits."""
    report = (
        Report.objects.waiting()
        .order_by("created_at", "pk")
        .only("pk", "status", "created_at")
        .first()
    )
    if report is None:
        return None
    return OldestWaiting(
        report_id=report.pk,
        status=report.status,
        created_at=report.created_at,
        waiting_seconds=max(0.0, (now - report.created_at).total_seconds()),
    )


def token_totals(sums: dict[str, int | None]) -> dict[str, int]:
    tokens = {
        name.removesuffix("_tokens"): sums[name] or 0 for name in Report.TOKEN_FIELDS
    }
    return {**tokens, "total": sum(tokens.values())}


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def parse_since(
    text: str, *, now: datetime.datetime | None = None
) -> datetime.datetime:
    """The start of a period: "30m", "24h", "7d", "2w" back from now, or an ISO date.

    A date or datetime without an offset is read in UTC. Raises ValueError.
    """
    now = now or timezone.now()
    match = _PERIOD.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        return now - datetime.timedelta(**{PERIOD_UNITS[unit]: amount})
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a period such as 30m, 24h, 7d or 2w, nor an ISO date."
        ) from None
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment

"""Figures for the processing dashboard, and the SVG bar charts that show them.

Every figure over time reads reports finished in the window through the
``finished_at`` index, so the page costs the same on a million reports as on
a thousand; only the per-status counts read the (status, attempts) index whole.
The outcome, time, violation and token figures are ``reports.stats``'s, so the
page and ``report_stats`` agree; the queue, the hourly rows, the schedules, the
costs and the charts are the dashboard's own.
"""

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django_q.models import Schedule, Task

from .models import Report
from .stats import (
    FAILURE_STATUSES,
    SUCCESS_STATUSES,
    counts_by_status,
    errors_by_category,
    outcome_totals,
    processing_times,
    rate,
)

DASHBOARD_DAYS = 7
STATUS_COLOURS = {
    Report.Status.UNPROCESSED: "#5b6770",
    Report.Status.PROCESSING: "#1f6fb2",
    Report.Status.PROCESSED: "#2e7d32",
    Report.Status.FAILED: "#c62828",
    Report.Status.IGNORED: "#8d6e63",
    Report.Status.RETRY_PENDING: "#ef6c00",
}
SUCCESS_COLOUR = "#2e7d32"
FAILURE_COLOUR = "#c62828"
MERGED_COLOUR = "#1f6fb2"
PRICE_SETTINGS = {
    "input_tokens": "CLAUDE_PRICE_INPUT_PER_MTOK",
    "output_tokens": "CLAUDE_PRICE_OUTPUT_PER_MTOK",
    "cache_read_tokens": "CLAUDE_PRICE_CACHE_READ_PER_MTOK",
    "cache_write_tokens": "CLAUDE_PRICE_CACHE_WRITE_PER_MTOK",
}


@dataclass
class Bar:
    label: str
    segments: list[tuple[float, str]]
    tooltip: str = ""
    show_label: bool = True

    @property
    def total(self) -> float:
        return sum(value for value, _ in self.segments)


@dataclass
class Chart:
    title: str
    bars: list[Bar]
    legend: list[tuple[str, str]] = field(default_factory=list)
    bar_width: int = 40
    gap: int = 12

    @property
    def svg(self) -> SafeString:
        return bar_chart_svg(self)


def dashboard_data(*, now: datetime.datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, computed at ``now`` (default: the present)."""
    now = now or timezone.now()
    since = now - datetime.timedelta(days=DASHBOARD_DAYS)
    finished = Report.objects.order_by().filter(
        finished_at__gte=since, finished_at__lte=now
    )

    by_status = reports_by_status()
    totals = outcome_totals(finished)
    outcomes = outcome_rates(finished, totals)
    hours = hourly_rows(finished)
    charts = [
        status_chart(by_status),
        hourly_chart(hours, since=since, now=now),
        failure_chart(outcomes["failures_by_category"]),
        violations_chart(hours, since=since, now=now),
    ]
    return {
        "now": now,
        "since": since,
        "days": DASHBOARD_DAYS,
        "by_status": by_status,
        "queue": queue_summary(now=now),
        "outcomes": outcomes,
        "times": processing_times(finished, totals),
        "tokens": token_usage(totals),
        "violations": {
            "created": totals["violations_created"],
            "merged": totals["violations_merged"],
        },
        "charts": charts,
        "schedules": schedule_status(),
    }


# --- figures ----------------------------------------------------------------


def reports_by_status() -> list[dict[str, Any]]:
    """Every status with its report count, in lifecycle order, zeros included."""
    counts = counts_by_status(Report.objects.order_by())
    return [
        {"status": status.value, "label": status.label, "count": counts[status.value]}
        for status in Report.Status
    ]


def queue_summary(*, now: datetime.datetime) -> dict[str, int]:
    """Ready to claim now, waiting for a retry, and stuck in processing."""
    stuck_cutoff = now - datetime.timedelta(
        seconds=settings.REPORTS_STUCK_TIMEOUT_SECONDS
    )
    # Filtering on status first lets the (status, attempts) index skip the
    # finished reports, which are nearly all of them.
    waiting = (
        Report.objects.filter(
            status__in=[Report.Status.RETRY_PENDING, Report.Status.PROCESSING]
        )
        .order_by()
        .aggregate(
            retry_pending=Count("pk", filter=Q(status=Report.Status.RETRY_PENDING)),
            stuck=Count(
                "pk",
                filter=Q(status=Report.Status.PROCESSING, started_at__lte=stuck_cutoff),
            ),
            processing=Count("pk", filter=Q(status=Report.Status.PROCESSING)),
        )
    )
    ready = Report.objects.ready_for_processing(now=now).order_by().count()
    return {"ready": ready, **waiting}


def outcome_rates(finished: QuerySet, totals: dict[str, Any]) -> dict[str, Any]:
    """Successes and failures among reports finished in the window, by category."""
    total = totals["succeeded"] + totals["failed"]
    failures_by_category = [
        {
            "category": category,
            "label": Report.ErrorCategory(category).label,
            "count": count,
        }
        for category, count in errors_by_category(finished).items()
    ]
    return {
        "succeeded": totals["succeeded"],
        "failed": totals["failed"],
        "total": total,
        "success_rate": percentage(totals["succeeded"], total),
        "failure_rate": percentage(totals["failed"], total),
        "failures_by_category": failures_by_category,
    }


def token_usage(totals: dict[str, Any]) -> dict[str, Any]:
    """Tokens spent in the window and their estimated cost in US dollars."""
    tokens = {name: totals[name] for name in Report.TOKEN_FIELDS}
    cost = sum(
        tokens[name] * getattr(settings, PRICE_SETTINGS[name]) / 1_000_000
        for name in Report.TOKEN_FIELDS
    )
    return {**tokens, "total": sum(tokens.values()), "cost": cost}


def hourly_rows(finished: QuerySet) -> dict[datetime.datetime, dict[str, int]]:
    """Per hour of the window: reports succeeded and failed, violations made."""
    rows = (
        finished.order_by()
        .annotate(hour=TruncHour("finished_at"))
        .values("hour")
        .annotate(
            succeeded=Count("pk", filter=Q(status__in=SUCCESS_STATUSES)),
            failed=Count("pk", filter=Q(status__in=FAILURE_STATUSES)),
            created=Sum("violations_created"),
            merged=Sum("violations_merged"),
        )
    )
    return {row.pop("hour"): row for row in rows}


def schedule_status() -> list[dict[str, Any]]:
    """Each django-q2 schedule with its next run and the result of its last task."""
    schedules = list(Schedule.objects.order_by("next_run"))
    task_ids = [schedule.task for schedule in schedules if schedule.task]
    tasks = {task.id: task for task in Task.objects.filter(id__in=task_ids)}
    return [
        {
            "name": schedule.name or schedule.func,
            "func": schedule.func,
            "cron": schedule.cron or schedule.get_schedule_type_display(),
            "next_run": schedule.next_run,
            "repeats": schedule.repeats,
            "last_task": tasks.get(schedule.task),
            "last_result": short_result(tasks.get(schedule.task)),
        }
        for schedule in schedules
    ]


def short_result(task: Task | None) -> str:
    if task is None:
        return ""
    return str(task.result)[:300]


def percentage(part: int, whole: int) -> float | None:
    """``rate`` as a percentage with one decimal, as the page shows it."""
    share = rate(part, whole)
    return None if share is None else round(100 * share, 1)


# --- charts -----------------------------------------------------------------


def status_chart(by_status: list[dict[str, Any]]) -> Chart:
    bars = [
        Bar(
            label=row["label"],
            segments=[(row["count"], STATUS_COLOURS[row["status"]])],
            tooltip=f"{row['label']}: {row['count']}",
        )
        for row in by_status
    ]
    return Chart("Reports by status", bars, bar_width=70)


def failure_chart(failures: list[dict[str, Any]]) -> Chart:
    bars = [
        Bar(
            label=row["label"],
            segments=[(row["count"], FAILURE_COLOUR)],
            tooltip=f"{row['label']}: {row['count']}",
        )
        for row in failures
    ]
    return Chart("Failures by category", bars, bar_width=90)


def hourly_chart(
    hours: dict[datetime.datetime, dict[str, int]],
    *,
    since: datetime.datetime,
    now: datetime.datetime,
) -> Chart:
    """Reports finished per hour, successes and failures stacked."""
    empty = {"succeeded": 0, "failed": 0}
    bars = []
    for hour in time_slots(since, now, datetime.timedelta(hours=1)):
        row = hours.get(hour, empty)
        bars.append(
            Bar(
                label=hour.strftime("%d %b"),
                segments=[
                    (row["succeeded"], SUCCESS_COLOUR),
                    (row["failed"], FAILURE_COLOUR),
                ],
                tooltip=f"{hour:%Y-%m-%d %H:00}: {row['succeeded']} processed, "
                f"{row['failed']} failed",
                show_label=hour.hour == 0,
            )
        )
    legend = [("processed or ignored", SUCCESS_COLOUR), ("failed", FAILURE_COLOUR)]
    return Chart("Reports finished per hour", bars, legend, bar_width=5, gap=1)


def violations_chart(
    hours: dict[datetime.datetime, dict[str, int]],
    *,
    since: datetime.datetime,
    now: datetime.datetime,
) -> Chart:
    """Violations created and merged per day, stacked; summed from the hours."""
    by_day: dict[datetime.date, list[int]] = {}
    for hour, row in hours.items():
        day = by_day.setdefault(hour.date(), [0, 0])
        day[0] += row["created"] or 0
        day[1] += row["merged"] or 0

    bars = []
    for day in time_slots(since, now, datetime.timedelta(days=1)):
        created, merged = by_day.get(day.date(), (0, 0))
        bars.append(
            Bar(
                label=day.strftime("%d %b"),
                segments=[(created, SUCCESS_COLOUR), (merged, MERGED_COLOUR)],
                tooltip=f"{day:%Y-%m-%d}: {created} created, {merged} merged",
            )
        )
    legend = [("created", SUCCESS_COLOUR), ("merged", MERGED_COLOUR)]
    return Chart("Violations created and merged per day", bars, legend, bar_width=50)


def time_slots(
    since: datetime.datetime, now: datetime.datetime, step: datetime.timedelta
) -> list[datetime.datetime]:
    """Slot starts from the slot holding ``since`` to the one holding ``now``."""
    if step >= datetime.timedelta(days=1):
        start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        start = since.replace(minute=0, second=0, microsecond=0)
    slots = []
    while start <= now:
        slots.append(start)
        start += step
    return slots


def bar_chart_svg(chart: Chart, *, height: int = 160) -> SafeString:
    """An inline SVG bar chart; each bar's segments stacked bottom up."""
    top, bottom, left = 16, 34, 36
    plot_height = height - top - bottom
    peak = max((bar.total for bar in chart.bars), default=0) or 1
    step = chart.bar_width + chart.gap
    width = left + step * len(chart.bars) + chart.gap

    parts = [
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
            '<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>'
            '<text x="{}" y="{}" font-size="10" text-anchor="end">0</text>',
            left,
            top + plot_height,
            width,
            top + plot_height,
            left - 4,
            top + 4,
            f"{peak:g}",
            left - 4,
            top + plot_height,
        )
    ]
    for index, bar in enumerate(chart.bars):
        x = left + chart.gap + index * step
        parts.append(bar_svg(bar, x, top + plot_height, plot_height / peak, chart))

    return format_html(
        '<svg class="chart" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg">{}</svg>',
        chart.title,
        width,
        height,
        width,
        height,
        format_html_join("", "{}", ((part,) for part in parts)),
    )


def bar_svg(bar: Bar, x: float, baseline: float, scale: float, chart: Chart) -> str:
    parts = []
    y = baseline
    for value, colour in bar.segments:
        if value <= 0:
            continue
        segment = value * scale
        y -= segment
        parts.append(
            format_html(
                '<rect class="bar" x="{}" y="{}" width="{}" height="{}" '
                'fill="{}"><title>{}</title></rect>',
                f"{x:g}",
                f"{y:.1f}",
                chart.bar_width,
                f"{segment:.1f}",
                colour,
                bar.tooltip,
            )
        )
    if bar.show_label:
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
                f"{x + chart.bar_width / 2:g}",
                f"{baseline + 14:g}",
                bar.label,
            )
        )
    if bar.total and chart.bar_width >= 20:
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
                f"{x + chart.bar_width / 2:g}",
                f"{y - 3:.1f}",
                f"{bar.total:g}",
            )
        )
    return format_html_join("", "{}", ((part,) for part in parts))

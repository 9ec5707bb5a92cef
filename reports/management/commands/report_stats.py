import datetime
import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports.batch import describe_tokens
from reports.stats import ReportStats, parse_since, report_stats


class Command(BaseCommand):
    help = "Prints report processing statistics: statuses, outcomes, times, tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            help="Only reports finished in this period (30m, 24h, 7d, 2w, or an "
            "ISO date); reports still waiting are always included.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the figures as one JSON object."
        )

    def handle(self, *args, **options) -> None:
        since = None
        if options["since"]:
            try:
                since = parse_since(options["since"])
            except ValueError as exc:
                raise CommandError(f"--since: {exc}") from None

        stats = report_stats(since=since)
        if options["json"]:
            self.stdout.write(json.dumps(stats.as_dict(), indent=2))
            return
        for line in self.table_lines(stats):
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(summary_line(stats)))

    def table_lines(self, stats: ReportStats) -> list[str]:
        heading = self.style.MIGRATE_HEADING
        period = "all"
        if stats.since:
            since = stats.since.astimezone(datetime.UTC)
            period = f"finished since {since:%Y-%m-%d %H:%M} UTC, and all waiting"
        lines = [heading(f"Reports ({period})")]
        lines += [
            f"  {status:<16}{count:>8,}" for status, count in stats.by_status.items()
        ]
        lines += [f"  {'total':<16}{stats.total:>8,}", heading("Attempts used")]
        lines += [
            f"  {attempts:<16}{count:>8,}" for attempts, count in stats.attempts.items()
        ]
        lines.append(heading("Processing"))
        lines += [f"  {label:<20}{value}" for label, value in figure_rows(stats)]
        return lines


def figure_rows(stats: ReportStats) -> list[tuple[str, str]]:
    outcomes = stats.succeeded + stats.failed
    if stats.success_rate is None:
        success = "no finished reports"
    else:
        success = (
            f"{stats.success_rate:.1%} ({stats.succeeded:,} of {outcomes:,} "
            f"processed or ignored)"
        )
    if stats.mean_processing_seconds is None:
        times = "no processed reports"
    else:
        times = (
            f"mean {stats.mean_processing_seconds:.1f} s, "
            f"p95 {stats.p95_processing_seconds:.1f} s "
            f"({stats.timed_reports:,} processed)"
        )
    errors = ", ".join(
        f"{name} {count:,}" for name, count in stats.errors_by_category.items()
    )
    return [
        ("success rate", success),
        ("processing time", times),
        (
            "violations",
            f"{stats.violations_created:,} created, {stats.violations_merged:,} merged",
        ),
        ("errors by category", errors or "none"),
        ("oldest waiting", oldest_waiting_text(stats)),
        ("tokens", describe_tokens(stats.tokens)),
    ]


def oldest_waiting_text(stats: ReportStats) -> str:
    oldest = stats.oldest_waiting
    if oldest is None:
        return "none, the queue is empty"
    return (
        f"report {oldest.report_id} ({oldest.status}), waiting "
        f"{duration_text(oldest.waiting_seconds)} since "
        f"{oldest.created_at.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    )


def duration_text(seconds: float) -> str:
    """A short human duration: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    minutes, hours, days = (
        int(seconds // 60),
        int(seconds // 3600),
        int(seconds // 86400),
    )
    if days:
        return f"{days} d {hours - days * 24} h"
    if hours:
        return f"{hours} h {minutes - hours * 60} min"
    if minutes:
        return f"{minutes} min"
    return f"{int(seconds)} s"


def summary_line(stats: ReportStats) -> str:
    counts = stats.by_status
    return (
        f"{stats.total:,} reports: {counts['processed']:,} processed, "
        f"{counts['ignored']:,} ignored, {counts['failed']:,} failed, "
        f"{stats.waiting:,} waiting; {stats.violations_created:,} violations "
        f"created, {stats.violations_merged:,} merged."
    )

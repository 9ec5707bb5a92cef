import json
import signal
import threading
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports.batch import BatchSummary, describe_tokens, run_batch
from reports.models import Report
from reports.processing import ProcessingResult, process_report

BAR_WIDTH = 30


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Processes waiting reports with Claude: one batch now, or one report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit",
            type=positive_int,
            help="Reports to claim (default REPORTS_BATCH_SIZE).",
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            help="Claude calls in flight for this batch (default "
            "REPORTS_MAX_CONCURRENT_CALLS, which also bounds all batches together).",
        )
        parser.add_argument(
            "--report",
            type=int,
            metavar="ID",
            help="Process this one report whatever its status (attempts reset).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would be claimed or reprocessed; change nothing.",
        )
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Run a batch every --interval seconds until Ctrl-C or SIGTERM "
            "(for a host without a django-q2 cluster).",
        )
        parser.add_argument(
            "--interval",
            type=positive_int,
            default=600,
            help="Seconds between the starts of two batches with --loop (600).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the summary as JSON."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        self.as_json = options["json"]
        if options["report"] is not None and options["loop"]:
            raise CommandError("--report and --loop cannot be used together.")

        if options["report"] is not None:
            self.handle_report(options["report"], dry_run=options["dry_run"])
        elif options["dry_run"]:
            self.show_ready(options["limit"])
        else:
            self.handle_batches(options)

    # --- one report -----------------------------------------------------------

    def handle_report(self, report_id: int, *, dry_run: bool) -> None:
        report = Report.objects.filter(pk=report_id).first()
        if report is None:
            raise CommandError(f"Report {report_id} does not exist.")
        if dry_run:
            self.stdout.write(
                f"Would reprocess report {report.pk} (now {report.status}, "
                f"{report.attempts} attempts)."
            )
            return

        result = self.reprocess(report)
        if self.as_json:
            self.stdout.write(json.dumps(result.as_dict(), default=str))
            return
        self.write_result(result, style=True)

    def reprocess(self, report: Report) -> ProcessingResult:
        # A report in processing is either still being worked on (left
        # alone) or stuck, in which case claiming it directly succeeds.
        if report.status != Report.Status.PROCESSING:
            report.reset_for_reprocessing()
        result = process_report(report)
        if result.stops_batch:
            raise CommandError(f"{result.error_category}: {result.error}")
        if result.outcome == "skipped":
            raise CommandError(
                f"Report {report.pk} is being processed right now; "
                "try again when it has finished."
            )
        return result

    # --- dry run ----------------------------------------------------------------

    def show_ready(self, limit: int | None) -> None:
        limit = limit or settings.REPORTS_BATCH_SIZE
        ready = list(Report.objects.ready_for_processing(limit))
        if self.as_json:
            self.stdout.write(json.dumps({"would_claim": [r.pk for r in ready]}))
            return
        self.stdout.write(f"Would claim {len(ready)} reports:")
        for report in ready:
            self.stdout.write(
                f"  report {report.pk}: {report.status}, {report.attempts} attempts, "
                f"{report.channel or report.source_url}"
            )

    # --- batches -------------------------------------------------------------------

    def handle_batches(self, options: dict[str, Any]) -> None:
        """One batch, or with --loop one per interval until a stop signal."""
        stop = threading.Event()
        with stop_on_signals(stop):
            while not stop.is_set():
                summary = run_batch(
                    limit=options["limit"],
                    concurrency=options["concurrency"],
                    # The loop stands in for the schedule, so it takes the
                    # schedule's lock; a one-off run is the operator's call.
                    exclusive=options["loop"],
                    progress=self.progress_callback(),
                    should_stop=stop.is_set,
                )
                self.write_summary(summary)
                if summary.stopped_by_error and not options["loop"]:
                    raise CommandError(summary.stopped_reason)
                if not options["loop"]:
                    return
                stop.wait(max(options["interval"] - summary.wall_time_seconds, 0))
        if not self.as_json:
            self.stdout.write("Stopped.")

    # --- output -------------------------------------------------------------------

    def progress_callback(self):
        if self.as_json:
            return lambda result, summary: None
        if self.stdout.isatty():
            return self.draw_bar
        return self.write_item

    def draw_bar(self, result: ProcessingResult, summary: BatchSummary) -> None:
        total = max(summary.claimed, 1)
        filled = BAR_WIDTH * summary.finished // total
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stdout.write(
            f"\r[{bar}] {summary.finished}/{summary.claimed} "
            f"processed {summary.processed}, ignored {summary.ignored}, "
            f"failed {summary.failed + summary.retried}",
            ending="",
        )
        self.stdout.flush()

    def write_item(self, result: ProcessingResult, summary: BatchSummary) -> None:
        if self.verbosity >= 2:
            self.write_result(result)

    def write_result(self, result: ProcessingResult, *, style: bool = False) -> None:
        seconds = result.processing_time_ms / 1000
        if result.outcome == "processed":
            line = (
                f"Report {result.report_id} processed: {result.violations_created} "
                f"violations created, {result.violations_merged} merged "
                f"in {seconds:.1f} s."
            )
            self.stdout.write(self.style.SUCCESS(line) if style else line)
        elif result.outcome == "ignored":
            line = f"Report {result.report_id} ignored in {seconds:.1f} s."
            self.stdout.write(self.style.SUCCESS(line) if style else line)
        else:
            line = f"Report {result.report_id} {result.outcome}: {result.error}"
            self.stdout.write(self.style.WARNING(line) if style else line)

    def write_summary(self, summary: BatchSummary) -> None:
        if self.as_json:
            self.stdout.write(json.dumps(summary.as_dict()))
            return
        if self.stdout.isatty() and summary.claimed:
            self.stdout.write("")
        if summary.stopped_reason:
            self.stdout.write(
                self.style.WARNING(f"Stopped early: {summary.stopped_reason}")
            )
        self.stdout.write(
            f"Violations: {summary.violations_created} created, "
            f"{summary.violations_merged} merged; "
            f"tokens used: {describe_tokens(summary.tokens)}."
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Batch done in {summary.wall_time_seconds:.1f} s: "
                f"{summary.claimed} claimed, {summary.processed} processed, "
                f"{summary.ignored} ignored, {summary.failed} failed, "
                f"{summary.retried} to retry, {summary.released} released."
            )
        )


@contextmanager
def stop_on_signals(stop: threading.Event):
    """Ctrl-C and SIGTERM set ``stop``; the batch ends after its calls in flight."""
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

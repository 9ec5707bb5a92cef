import contextlib
import logging
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.models import Count
from django.test.utils import override_settings

from reports.batch import BatchSummary, describe_tokens, run_batch
from reports.importing import ImportFileError, ImportResult, import_reports_file
from reports.models import Report
from reports.processing import Outcome, ProcessingResult
from reports.standin import MessagesStandIn, sample_recordings
from violations.models import Violation

SAMPLE_REPORTS = Path(__file__).resolve().parents[2] / "samples" / "reports.jsonl"
ADMIN_USERNAME = "admin"
# Only the local stand-in ever sees this key; it checks that one is sent.
STANDIN_API_KEY = "sk-ant-demo-standin"
STANDIN_REQUESTS_PER_MINUTE = 60_000
ADMIN_ADDRESS = "http://127.0.0.1:8000/admin/"


class Command(BaseCommand):
    help = (
        "Sets up a local installation: migrates the database, imports the sample "
        "reports, processes them all and prints the results and the admin address."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            default=str(SAMPLE_REPORTS),
            help="Reports to import instead of the bundled samples (JSON Lines or "
            "CSV, as import_reports reads them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        with quiet_logging(self.verbosity):
            self.migrate()
            imported = self.import_reports(options["file"])
            password = self.ensure_admin()
            with self.claude_or_standin():
                summaries = self.process_everything()

        self.stdout.write("")
        call_command(
            "report_stats",
            stdout=self.stdout,
            no_color=options["no_color"],
            force_color=options["force_color"],
        )
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(final_line(imported, summaries)))
        self.write_admin_address(password)

    # --- steps -------------------------------------------------------------------

    def migrate(self) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        name = connection.settings_dict["NAME"]
        self.stdout.write(f"Database ready: {connection.vendor} {name}")

    def import_reports(self, path: str) -> ImportResult:
        try:
            result = import_reports_file(path)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        already = result.skipped_by_reason()
        skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
        detail = ", ".join(f"{n} {reason}" for reason, n in already.items())
        self.stdout.write(
            f"Imported {result.imported} reports from {path}{skipped}"
            + (f" ({detail})." if detail else ".")
        )
        return result

    def ensure_admin(self) -> str | None:
        """Creates the admin superuser if none exists; returns a new password."""
        users = get_user_model()._default_manager
        if users.filter(is_superuser=True).exists():
            self.stdout.write("A superuser exists already; log in with it.")
            return None
        if users.filter(username=ADMIN_USERNAME).exists():
            self.stdout.write(
                self.style.WARNING(
                    f"A user named {ADMIN_USERNAME} exists without superuser "
                    "rights; create one with `python manage.py createsuperuser`."
                )
            )
            return None

        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.create_superuser(ADMIN_USERNAME, email="", password=password)
        if os.environ.get("DEMO_ADMIN_PASSWORD"):
            self.stdout.write(
                f"Created the superuser {ADMIN_USERNAME} with the password "
                "from DEMO_ADMIN_PASSWORD."
            )
            return None
        return password

    @contextlib.contextmanager
    def claude_or_standin(self) -> Iterator[None]:
        """Claude when a key is set; otherwise the local stand-in, said plainly."""
        if settings.ANTHROPIC_API_KEY:
            self.stdout.write(
                f"Using Claude ({settings.CLAUDE_MODEL}): ANTHROPIC_API_KEY is set, "
                "so the reports are sent to the Anthropic API."
            )
            yield
            return

        self.stdout.write(
            self.style.WARNING(
                "ANTHROPIC_API_KEY is not set: running against the local stand-in "
                "of the Claude API, which answers with recorded extractions of the "
                "sample reports (no Claude call is made). Set ANTHROPIC_API_KEY to "
                "use Claude."
            )
        )
        with (
            MessagesStandIn(sample_recordings()) as standin,
            # The stand-in has no rate limit; Claude's pace (one request every
            # 1.2 s at 50 a minute) would only make the offline demo slow.
            override_settings(
                ANTHROPIC_BASE_URL=standin.base_url,
                ANTHROPIC_API_KEY=STANDIN_API_KEY,
                CLAUDE_REQUESTS_PER_MINUTE=STANDIN_REQUESTS_PER_MINUTE,
            ),
        ):
            yield

    def process_everything(self) -> list[BatchSummary]:
        """Runs batches until no report is ready, a batch stops, or Ctrl-C."""
        summaries: list[BatchSummary] = []
        stop = threading.Event()
        with stop_on_signals(stop):
            while not stop.is_set() and Report.objects.ready_for_processing(1).exists():
                summary = run_batch(
                    progress=self.report_progress, should_stop=stop.is_set
                )
                summaries.append(summary)
                self.stdout.write(batch_line(len(summaries), summary))
                if summary.stopped_reason or not summary.claimed:
                    break
        if not summaries:
            self.stdout.write("No report is ready to process.")
        return summaries

    def report_progress(self, result: ProcessingResult, summary: BatchSummary) -> None:
        if self.verbosity < 2:
            return
        line = f"  report {result.report_id} {result.outcome}"
        if result.outcome == Outcome.PROCESSED:
            line += (
                f": {result.violations_created} violations created, "
                f"{result.violations_merged} merged"
            )
        elif result.error:
            line += f": {result.error}"
        self.stdout.write(f"{line} ({result.processing_time_ms / 1000:.1f} s)")

    def write_admin_address(self, password: str | None) -> None:
        self.stdout.write("")
        self.stdout.write(
            f"Admin: run `python manage.py runserver`, then open {ADMIN_ADDRESS}"
        )
        if password:
            self.stdout.write(
                f"Log in as {ADMIN_USERNAME} with the password {password} "
                "(shown only now; change it with "
                f"`python manage.py changepassword {ADMIN_USERNAME}`)."
            )


@contextlib.contextmanager
def quiet_logging(verbosity: int) -> Iterator[None]:
    """Below verbosity 2 the per-report log lines stay out of the demo's output."""
    loggers = [logging.getLogger(name) for name in ("reports", "violations")]
    levels = [logger.level for logger in loggers]
    if verbosity < 2:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C or SIGTERM ends the run after the calls in flight."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def batch_line(number: int, summary: BatchSummary) -> str:
    line = (
        f"Batch {number}: {summary.claimed} claimed, {summary.processed} processed, "
        f"{summary.ignored} ignored, {summary.failed} failed, "
        f"{summary.retried} to retry; {summary.violations_created} violations "
        f"created, {summary.violations_merged} merged; tokens used: "
        f"{describe_tokens(summary.tokens)}; {summary.wall_time_seconds:.1f} s."
    )
    if summary.stopped_reason:
        line += f" Stopped: {summary.stopped_reason}"
    return line


def final_line(imported: ImportResult, summaries: list[BatchSummary]) -> str:
    counts = dict(
        Report.objects.order_by().values_list("status").annotate(n=Count("pk"))
    )
    waiting = sum(counts.get(status, 0) for status in Report.QUEUE_STATUSES)
    return (
        f"Demo done: {imported.imported} reports imported, {len(summaries)} "
        f"batches run. The database holds {sum(counts.values())} reports "
        f"({counts.get('processed', 0)} processed, {counts.get('ignored', 0)} "
        f"ignored, {counts.get('failed', 0)} failed, {waiting} waiting) and "
        f"{Violation.objects.count()} violations."
    )

"""Throughput of a batch against the local Messages API stand-in.

Runs the same reports three ways in one process, on a scratch database:

- the sliding window of ``run_batch`` (a call starts as soon as one ends);
- fixed chunks of ``concurrency`` calls with a pause after each chunk, the
  way the system this replaces worked (chunks of 3, 1 s pause);
- one call at a time with no simulated latency, to measure what the
  framework itself costs per report (HTTP to the stand-in, the SDK,
  validation, duplicate search and the database writes).

Latencies are drawn once, right-skewed between 2 and 20 s like real
extraction calls (triangular, mode 5 s), divided by --scale, and served in
arrival order, so both timed runs see the same latencies. Throughput is
given as a fraction of the bound ``concurrency / mean latency``. Run:

    .venv/bin/python benchmarks/batch_bench.py --reports 60 --concurrency 3
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOWNS = [
    "Kafranbel", "Saraqib", "Ariha", "Maarrat", "Khan Shaykhun", "Taftanaz",
    "Binnish", "Sarmin", "Jisr al-Shughur", "Darkush", "Harem", "Salqin",
    "Atarib", "Daret Izza", "Azaz", "Marea", "Tal Rifaat", "Manbij", "Jarablus",
    "Al-Bab",
]  # fmt: skip
KINDS = ["AIRSTRIKE", "SHELLING"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=60, help="reports per run")
    parser.add_argument("--concurrency", type=int, default=3, help="calls in flight")
    parser.add_argument(
        "--scale", type=float, default=20, help="divide latencies (2-20 s) by this"
    )
    parser.add_argument("--seed", type=int, default=7, help="latency random seed")
    parser.add_argument(
        "--database-url", help="database to use (default: a scratch SQLite file)"
    )
    return parser.parse_args()


def set_up_django(database_url: str | None) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{scratch / 'db.sqlite3'}"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ["LOG_LEVEL"] = "WARNING"
    # Neither limit should shape the result: the window is what is measured.
    os.environ["CLAUDE_REQUESTS_PER_MINUTE"] = "100000"
    os.environ["REPORTS_BATCH_TIME_BUDGET_SECONDS"] = "3600"
    os.environ["CLAUDE_MAX_RETRIES"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "reportsite.settings"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


class Latencies:
    """Serves a fixed list of latencies in request order; sums what it served."""

    def __init__(self, seconds: list[float]) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.served: list[float] = []

    def __call__(self) -> float:
        with self.lock:
            value = self.seconds[len(self.served) % len(self.seconds)]
            self.served.append(value)
            return value


def draw_latencies(count: int, scale: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.triangular(2.0, 20.0, 5.0) / scale for _ in range(count)]


def create_reports(count: int, standin) -> list[int]:
    import datetime

    from django.utils import timezone

    from reports.models import Report

    published = timezone.now() - datetime.timedelta(hours=2)
    ids = []
    for n in range(count):
        town, killed = TOWNS[n % len(TOWNS)], 2 + n // len(TOWNS)
        kind = KINDS[n % 2]
        text = (
            f"A {kind.lower()} attack on {town} in Idlib this morning killed "
            f"{killed} civilians, local medics said (report {n})."
        )
        standin.record(text, tool_input(text, town, killed, kind, published.date()))
        report = Report.objects.create(
            text=text,
            source_url=f"https://t.me/bench/{n}",
            channel="bench",
            message_id=n,
            language=Report.Language.ENGLISH,
            published_at=published,
        )
        ids.append(report.pk)
    return ids


def tool_input(text: str, town: str, killed: int, kind: str, day) -> dict:
    item = {
        "violation_type": kind,
        "incident_date": day.isoformat(),
        "location_name_en": town,
        "location_name_ar": "",
        "admin_division_en": "Idlib",
        "admin_division_ar": "",
        "latitude": None,
        "longitude": None,
        "description_en": f"An attack on {town} killed {killed} civilians.",
        "description_ar": "",
        "perpetrator_en": "Unknown",
        "perpetrator_ar": "",
        "perpetrator_affiliation": "unknown",
        "certainty": "probable",
        "casualties": killed,
        "injured": None,
        "kidnapped": None,
        "detained": None,
        "displaced": None,
        "victims": [],
        "tags": [],
        "evidence": text.split(",")[0],
    }
    return {"violations": [item], "no_violation_reason": ""}


def reset(report_ids: list[int]) -> None:
    """Back to the start: no violations, every report waiting, no attempts."""
    from reports.models import Lease, Report
    from violations.models import Violation, ViolationSource

    ViolationSource.objects.all().delete()
    Violation.objects.all().delete()
    Lease.objects.all().delete()
    Report.objects.filter(pk__in=report_ids).update(
        status=Report.Status.UNPROCESSED,
        attempts=0,
        last_attempt=None,
        started_at=None,
        claim_token=None,
        duplicate_of=None,
    )


def run_sliding(count: int, concurrency: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reports.batch import run_batch

    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        summary = run_batch(limit=count, concurrency=concurrency, progress=quiet)
        wall = time.monotonic() - started
    assert summary.processed == count, summary.as_dict()
    return {"wall": wall, "queries": len(queries)}


def run_chunked(count: int, concurrency: int, pause: float) -> dict:
    """The replaced approach: start a chunk, wait for all of it, pause."""
    from reports.models import Report
    from reports.processing import call_claude, finish_report, prepare_report

    started = time.monotonic()
    claimed = Report.objects.claim(count)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for first in range(0, len(claimed), concurrency):
            chunk = claimed[first : first + concurrency]
            begun = [time.monotonic() for _ in chunk]
            for report, at in zip(chunk, begun, strict=True):
                assert prepare_report(report, claimed=True, started=at) is None
            calls = list(pool.map(call_claude, chunk))
            for report, call, at in zip(chunk, calls, begun, strict=True):
                assert finish_report(report, call, started=at).success
            if first + concurrency < len(claimed):
                time.sleep(pause)
    return {"wall": time.monotonic() - started}


def quiet(result, summary) -> None:
    """Progress callback that prints nothing (the benchmark prints a table)."""


def main() -> None:
    args = parse_args()
    set_up_django(args.database_url)
    from reports.standin import MessagesStandIn

    standin = MessagesStandIn()
    standin.start()
    from django.conf import settings

    settings.ANTHROPIC_BASE_URL = standin.base_url
    settings.ANTHROPIC_API_KEY = "sk-ant-benchmark-standin"

    try:
        measure(args, standin)
    finally:
        standin.stop()


def measure(args: argparse.Namespace, standin) -> None:
    count, concurrency = args.reports, args.concurrency
    report_ids = create_reports(count, standin)
    seconds = draw_latencies(count, args.scale, args.seed)
    mean = statistics.fmean(seconds)
    bound = concurrency / mean

    standin.latency = Latencies(seconds)
    sliding = run_sliding(count, concurrency)
    reset(report_ids)
    standin.latency = Latencies(seconds)
    chunked = run_chunked(count, concurrency, pause=1.0 / args.scale)
    reset(report_ids)
    standin.latency = 0.0
    bare = run_sliding(count, 1)

    print(
        f"{count} reports, concurrency {concurrency}, latencies 2-20 s / "
        f"{args.scale:g} (mean {mean:.3f} s), bound {bound:.2f} reports/s"
    )
    print()
    print("| run | wall time | reports/s | of bound |")
    print("| --- | --- | --- | --- |")
    for name, run in (("sliding window", sliding), ("chunks + pause", chunked)):
        rate = count / run["wall"]
        print(f"| {name} | {run['wall']:.2f} s | {rate:.2f} | {rate / bound:.0%} |")
    print()
    print(
        f"Framework overhead (no latency, one call at a time): "
        f"{1000 * bare['wall'] / count:.1f} ms per report; "
        f"{sliding['queries'] / count:.1f} queries per report in the batch."
    )


if __name__ == "__main__":
    main()

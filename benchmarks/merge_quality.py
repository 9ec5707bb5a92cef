"""Measures how well duplicate detection joins the accounts of one incident.

The bundled sample reports are imported into a scratch database and processed
through the real pipeline (``reports.batch.run_batch`` against the local
Messages API stand-in, which answers with the recorded extractions). Each
recorded violation is then found in the register and compared with the labels
in ``reports/samples/incidents.json``, which say which accounts tell the same
incident. Over every pair of labelled accounts:

- precision: of the pairs stored in one violation, the share that are one
  incident (a miss here is a false merge: two incidents counted as one);
- recall: of the pairs that are one incident, the share stored in one
  violation (a miss here is a double count).

False merges are listed, and missed merges with the best score either account
reaches against the other's violation ("gate" when a hard gate kept them
apart). Run by hand, for example:

    .venv/bin/python benchmarks/merge_quality.py --database sqlite

It uses a scratch database only: a temporary SQLite file, or the PostgreSQL
database named by --pg-name (created at the start, dropped at the end).
``tests/violations/test_merge_quality.py`` runs the same measure on the test
database.
"""

import argparse
import dataclasses
import itertools
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import scratch  # noqa: E402 (needs ROOT on the path)

SAMPLES = ROOT / "reports" / "samples"
LABELS = SAMPLES / "incidents.json"


@dataclasses.dataclass
class Account:
    """One recorded violation of one report, and where the pipeline stored it."""

    source_url: str
    item: int
    incident: str
    violation_id: int | None = None
    draft: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.source_url}#{self.item}"


@dataclasses.dataclass
class Quality:
    """Pairwise agreement of the register with the labels."""

    accounts: list[Account]
    true_pairs: int
    stored_pairs: int
    correct_pairs: int
    false_merges: list[tuple[Account, Account]]
    missed_merges: list[tuple[Account, Account, float | None]]
    # Accounts of different incidents kept apart although no hard gate did it:
    # the margin by which the score kept them apart.
    kept_apart: list[tuple[Account, Account, float]]

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.stored_pairs if self.stored_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def unstored(self) -> list[Account]:
        return [account for account in self.accounts if account.violation_id is None]


def load_labels(path: Path = LABELS) -> list[Account]:
    """The labelled accounts, in the file's order."""
    rows = json.loads(path.read_text("utf-8"))["violations"]
    return [Account(row["source_url"], row["item"], row["incident"]) for row in rows]


def process_samples(*, concurrency: int = 1) -> int:
    """Imports the sample reports and runs batches until none is ready.

    Needs the stand-in (or Claude) configured in settings. With one call in
    flight the reports are stored in the order they were claimed, so the
    outcome does not depend on thread timing. Returns the batches run.
    """
    from reports.batch import run_batch
    from reports.importing import import_reports_file
    from reports.models import Report

    import_reports_file(SAMPLES / "reports.jsonl")
    batches = 0
    while Report.objects.ready_for_processing(1).exists():
        summary = run_batch(concurrency=concurrency)
        batches += 1
        if summary.claimed == 0:
            break
    return batches


def locate(accounts: list[Account]) -> list[Account]:
    """Fills in each account's violation and stored draft from the links.

    An account is found by its report's link whose stored draft has the
    recorded type and description. An exact repost has no draft of its own: it
    takes the violation of the same item of the report it repeats. An account
    whose draft was rejected, or merged into another draft of its report,
    stays without a violation.
    """
    from reports.models import Report

    recordings = json.loads((SAMPLES / "extractions.json").read_text("utf-8"))
    reports = {report.source_url: report for report in Report.objects.all()}
    for account in accounts:
        report = reports[account.source_url]
        if report.duplicate_of_id is not None:
            continue
        item = recordings[account.source_url]["violations"][account.item]
        for link in report.violation_links.all():
            draft = link.draft or {}
            if (draft.get("violation_type"), draft.get("description_en")) == (
                item["violation_type"],
                item["description_en"],
            ):
                account.violation_id, account.draft = link.violation_id, draft
    _locate_reposts(accounts, reports)
    return accounts


def _locate_reposts(accounts: list[Account], reports: Mapping[str, Any]) -> None:
    by_report_item = {(a.source_url, a.item): a for a in accounts}
    for account in accounts:
        report = reports[account.source_url]
        if report.duplicate_of_id is None:
            continue
        source = next(r for r in reports.values() if r.pk == report.duplicate_of_id)
        original = by_report_item.get((source.source_url, account.item))
        if original is not None:
            account.violation_id = original.violation_id


def measure(accounts: list[Account]) -> Quality:
    """Compares where the accounts were stored with their labels."""
    stored = [account for account in locate(accounts) if account.violation_id]
    true_pairs = stored_pairs = correct_pairs = 0
    false_merges, missed_merges, kept_apart = [], [], []
    for first, second in itertools.combinations(stored, 2):
        same_incident = first.incident == second.incident
        same_violation = first.violation_id == second.violation_id
        true_pairs += same_incident
        stored_pairs += same_violation
        correct_pairs += same_incident and same_violation
        if same_violation and not same_incident:
            false_merges.append((first, second))
        if same_incident and not same_violation:
            missed_merges.append((first, second, pair_score(first, second)))
        if not same_incident and not same_violation:
            score = pair_score(first, second)
            if score is not None:
                kept_apart.append((first, second, score))
    kept_apart.sort(key=lambda pair: -pair[2])
    return Quality(
        accounts,
        true_pairs,
        stored_pairs,
        correct_pairs,
        false_merges,
        missed_merges,
        kept_apart,
    )


def pair_score(first: Account, second: Account) -> float | None:
    """The best score either account's draft reaches against the other's violation.

    None when a hard gate (type, date window, place) keeps them apart.
    """
    from violations.duplicates import similarity
    from violations.models import Violation

    scores = []
    for ours, theirs in ((first, second), (second, first)):
        if ours.draft is None:
            continue
        violation = Violation.objects.get(pk=theirs.violation_id)
        score = similarity(ours.draft, violation)
        if score is not None:
            scores.append(score)
    return round(max(scores), 4) if scores else None


def expected_merges(accounts: list[Account]) -> int:
    """How many merges the labels call for: accounts beyond the first, per incident.

    Exact reposts are linked, not merged, so they are left out.
    """
    from reports.models import Report

    reposts = set(
        Report.objects.filter(duplicate_of__isnull=False).values_list(
            "source_url", flat=True
        )
    )
    incidents = {a.incident for a in accounts if a.source_url not in reposts}
    told = sum(1 for a in accounts if a.source_url not in reposts)
    return told - len(incidents)


def merge_scores() -> list[float]:
    """The similarity of every merge made, lowest first (reposts apart)."""
    from violations.models import ViolationSource

    merges = ViolationSource.objects.filter(role=ViolationSource.Role.MERGED)
    return sorted(merges.values_list("similarity", flat=True))


def describe(quality: Quality) -> list[str]:
    """The figures and the lists, as printable lines."""
    scores = merge_scores()
    lines = [
        f"accounts: {len(quality.accounts)} labelled, "
        f"{len(quality.accounts) - len(quality.unstored)} stored, "
        f"{len({a.incident for a in quality.accounts})} incidents; "
        f"merges expected: {expected_merges(quality.accounts)}",
        f"pairs: {quality.true_pairs} same-incident, {quality.stored_pairs} stored "
        f"together, {quality.correct_pairs} both",
        f"merges made: {len(scores)}, scores "
        + ", ".join(f"{score:.4f}" for score in scores),
        f"precision {quality.precision:.3f}, recall {quality.recall:.3f}",
        f"false merges: {len(quality.false_merges)}",
    ]
    for first, second in quality.false_merges:
        lines.append(
            f"  {first.name} ({first.incident}) + {second.name} ({second.incident})"
            f" -> violation {first.violation_id}"
        )
    lines.append(f"missed merges: {len(quality.missed_merges)}")
    for first, second, score in quality.missed_merges:
        shown = "gate" if score is None else f"{score:.4f}"
        lines.append(f"  {first.incident}: {first.name} / {second.name}: {shown}")
    lines.append(f"different incidents past the hard gates: {len(quality.kept_apart)}")
    for first, second, score in quality.kept_apart:
        lines.append(f"  {first.name} / {second.name}: {score:.4f}")
    for account in quality.unstored:
        lines.append(f"not stored: {account.name} ({account.incident})")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scratch.add_arguments(parser, pg_name="merge_quality")
    parser.add_argument(
        "--threshold",
        type=float,
        help="VIOLATIONS_DUPLICATE_THRESHOLD for this run (default: the setting)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="Claude calls in flight; above 1 the reports are stored in the order "
        "their calls finish, which varies from run to run",
    )
    return parser.parse_args()


def configure(args: argparse.Namespace) -> str:
    """Sets up the scratch database for the offline path; returns its URL."""
    # Recorded extractions only, never a real Claude call.
    os.environ["ANTHROPIC_API_KEY"] = ""
    return scratch.configure(args, prefix="merge-quality")


def run(args: argparse.Namespace) -> Quality:
    from django.conf import settings
    from django.test.utils import override_settings

    from reports.standin import MessagesStandIn, sample_recordings

    threshold = args.threshold or settings.VIOLATIONS_DUPLICATE_THRESHOLD
    with (
        MessagesStandIn(sample_recordings()) as standin,
        override_settings(
            ANTHROPIC_BASE_URL=standin.base_url,
            ANTHROPIC_API_KEY="sk-ant-merge-quality-standin",
            CLAUDE_REQUESTS_PER_MINUTE=60_000,
            VIOLATIONS_DUPLICATE_THRESHOLD=threshold,
        ),
    ):
        process_samples(concurrency=args.concurrency)
        print(f"threshold {threshold}, concurrency {args.concurrency}")
        return measure(load_labels())


def main() -> None:
    args = parse_args()
    # Each report logs its outcome at info level; only the figures matter here.
    logging.disable(logging.INFO)
    url = configure(args)
    print(f"database: {args.database} ({url})")
    try:
        quality = run(args)
        print("\n".join(describe(quality)))
    finally:
        scratch.drop(args, url)


if __name__ == "__main__":
    main()

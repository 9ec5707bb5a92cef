"""Times the duplicate check against a register of N synthetic violations.

For each N the table is topped up to N rows, then a set of drafts (half of
them retellings of stored violations, half new incidents) is checked with
``violations.duplicates.find_duplicate``, the indexed candidate-block lookup
the service uses. Times are wall clock, with this process's CPU time beside
them (on PostgreSQL that leaves out the server's share), because a busy
machine stretches the first but hardly the second. The same drafts are then
checked by a naive full scan that reads every row and scores it (text
similarity and the gates) in Python. For large N the naive scan reads a
sample of rows and is extrapolated to N; the output says so. Run by hand, for example:

    .venv/bin/python benchmarks/duplicates_bench.py --n 10000 100000 1000000 \\
        --database sqlite

It uses a scratch database only: a temporary SQLite file, or the PostgreSQL
database named by --pg-name (created at the start); either is removed at the
end.
"""

import argparse
import datetime
import itertools
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import scratch  # noqa: E402 (needs ROOT on the path)

FIRST_DAY = datetime.date(2011, 3, 15)
LAST_DAY = datetime.date(2026, 11, 30)
PLACES = 3000
CHUNK = 10_000
WORDS_EN = [
    *("market", "houses", "school", "hospital", "mosque", "bakery", "road"),
    *("checkpoint", "farm", "camp", "square", "bridge", "convoy", "village"),
]
WORDS_AR = [
    *("سوق", "منازل", "مدرسة", "مشفى", "مسجد", "فرن", "طريق"),
    *("حاجز", "مزرعة", "مخيم", "ساحة", "جسر", "قافلة", "حي"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, nargs="+", default=[10_000], help="register sizes to test"
    )
    scratch.add_arguments(parser, pg_name="bench")
    parser.add_argument("--drafts", type=int, default=200, help="drafts to check")
    parser.add_argument(
        "--naive-drafts", type=int, default=3, help="drafts the naive scan checks"
    )
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=20_000,
        help="rows the naive scan reads at most; beyond it the time is extrapolated",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    return parser.parse_args()


def make_places(rng: random.Random) -> tuple[list[dict], list[float]]:
    """Places and cumulative weights: a few towns see most incidents (Zipf)."""
    from violations.text import normalize_place

    places = []
    for number in range(PLACES):
        place = {
            "location_name_en": f"Town {number}",
            "location_name_ar": f"بلدة {number}",
            "admin_division_en": f"Governorate {number % 14}",
            "latitude": None,
            "longitude": None,
        }
        # bulk_create skips save(), which is where the keys are set.
        place["location_key_en"] = normalize_place(place["location_name_en"])
        place["location_key_ar"] = normalize_place(place["location_name_ar"])
        if rng.random() < 0.5:
            place["latitude"] = round(rng.uniform(32.3, 37.3), 5)
            place["longitude"] = round(rng.uniform(35.7, 42.3), 5)
        places.append(place)
    weights = itertools.accumulate(1 / rank for rank in range(1, PLACES + 1))
    return places, list(weights)


def make_values(rng: random.Random, places: tuple[list[dict], list[float]]) -> dict:
    from violations.choices import PerpetratorAffiliation, ViolationType

    kind = rng.choice(ViolationType.values)
    place = rng.choices(places[0], cum_weights=places[1])[0]
    killed, injured = rng.randint(0, 12), rng.randint(0, 20)
    target_en, target_ar = rng.choice(WORDS_EN), rng.choice(WORDS_AR)
    span = (LAST_DAY - FIRST_DAY).days
    return {
        **place,
        "violation_type": kind,
        "incident_date": FIRST_DAY + datetime.timedelta(days=rng.randint(0, span)),
        "description_en": f"{kind.title()} hit the {target_en} in "
        f"{place['location_name_en']}, killing {killed} and injuring {injured}.",
        "description_ar": f"استهداف {target_ar} في {place['location_name_ar']} "
        f"ومقتل {killed} وإصابة {injured}",
        "perpetrator_affiliation": rng.choice(PerpetratorAffiliation.values),
        "casualties": killed,
        "injured": injured,
        "detained": rng.randint(1, 9) if kind == "DETENTION" else 0,
        "kidnapped": rng.randint(1, 9) if kind == "KIDNAPPING" else 0,
        "displaced": rng.randint(1, 900) if kind == "DISPLACEMENT" else 0,
    }


def top_up(
    target: int, rng: random.Random, places: tuple[list[dict], list[float]]
) -> float:
    """Bulk-loads rows until the table holds ``target``; returns seconds taken."""
    from violations.models import Violation

    started = time.perf_counter()
    missing = target - Violation.objects.count()
    while missing > 0:
        rows = []
        for _ in range(min(CHUNK, missing)):
            rows.append(Violation(**make_values(rng, places)))
        Violation.objects.bulk_create(rows, batch_size=1000)
        missing -= len(rows)
    analyze()
    return time.perf_counter() - started


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def make_drafts(
    count: int, rng: random.Random, places: tuple[list[dict], list[float]]
) -> list[dict]:
    """Half retell a stored violation (reworded, a day later), half are new."""
    from django.db.models import Max

    from violations.models import Violation

    top = Violation.objects.aggregate(top=Max("id"))["top"]
    drafts = []
    for number in range(count):
        if number % 2:
            drafts.append(make_values(rng, places))
            continue
        stored = Violation.objects.filter(id__gte=rng.randint(1, top)).first()
        drafts.append(retelling(stored))
    return drafts


def retelling(stored) -> dict:
    return {
        "violation_type": stored.violation_type,
        "incident_date": stored.incident_date + datetime.timedelta(days=1),
        "location_name_en": stored.location_name_en,
        "location_name_ar": stored.location_name_ar,
        "latitude": stored.latitude,
        "longitude": stored.longitude,
        "description_en": "Reports say " + stored.description_en.lower(),
        "description_ar": stored.description_ar,
        "perpetrator_affiliation": stored.perpetrator_affiliation,
        "casualties": stored.casualties,
        "injured": stored.injured,
        "detained": stored.detained,
        "kidnapped": stored.kidnapped,
        "displaced": stored.displaced,
    }


def time_indexed(drafts: list[dict]) -> dict:
    from violations.duplicates import find_duplicate

    seconds, cpu, compared, found, ranges = [], [], [], 0, []
    for values in drafts:
        started, cpu_started = time.perf_counter(), time.process_time()
        match = find_duplicate(values)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        compared.append(match.compared)
        found += match.is_duplicate()
        ranges.append(index_range_rows(values))
    return {
        "range_mean": statistics.mean(ranges),
        "cpu_median_ms": statistics.median(cpu) * 1000,
        "median_ms": statistics.median(seconds) * 1000,
        "p95_ms": statistics.quantiles(seconds, n=20)[-1] * 1000,
        "compared_mean": statistics.mean(compared),
        "compared_max": max(compared),
        "found": found,
    }


def index_range_rows(values: dict) -> int:
    """Rows of the draft's type and date window: what the index range covers."""
    from violations.models import Violation

    window = datetime.timedelta(days=1)
    return Violation.objects.filter(
        violation_type=values["violation_type"],
        incident_date__range=(
            values["incident_date"] - window,
            values["incident_date"] + window,
        ),
    ).count()


def naive_check(values: dict, limit: int) -> tuple[float | None, int]:
    """Scores every row (up to ``limit``) without the SQL block; best and rows."""
    from violations.duplicates import (
        actor_agreement,
        count_agreement,
        date_agreement,
        place_agreement,
        text_similarity,
    )
    from violations.models import Violation

    best, rows = None, 0
    for violation in Violation.objects.order_by("id")[:limit].iterator(2000):
        rows += 1
        text = text_similarity(values, violation)
        place = place_agreement(values, violation)
        date = date_agreement(values, violation)
        kind = values["violation_type"] == violation.violation_type
        if place is None or date is None or not kind:
            continue
        score = (
            0.55 * text
            + 0.15 * place
            + 0.10 * date
            + 0.10 * actor_agreement(values, violation)
            + 0.10 * count_agreement(values, violation)
        )
        best = score if best is None else max(best, score)
    return best, rows


def time_naive(drafts: list[dict], total: int, sample: int) -> dict:
    seconds, cpu = [], []
    for values in drafts:
        started, cpu_started = time.perf_counter(), time.process_time()
        _, rows = naive_check(values, sample)
        seconds.append((time.perf_counter() - started) * total / rows)
        cpu.append((time.process_time() - cpu_started) * total / rows)
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "cpu_median_ms": statistics.median(cpu) * 1000,
        "rows": total,
        "extrapolated": sample < total,
    }


def main() -> None:
    args = parse_args()
    url = scratch.configure(args, prefix="dupbench")
    rng = random.Random(args.seed)
    places = make_places(rng)
    print(f"database: {args.database} ({url}), {os.cpu_count()} CPUs")
    print(
        "| rows | load s | check median ms (CPU) | check p95 ms | type+date rows "
        "| candidates scored, mean (max) | duplicates found "
        "| naive full scan ms per draft (CPU) | load average |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for target in sorted(args.n):
        load = top_up(target, rng, places)
        drafts = make_drafts(args.drafts, rng, places)
        indexed = time_indexed(drafts)
        naive = time_naive(drafts[: args.naive_drafts], target, args.naive_sample)
        note = f" (extrapolated from {args.naive_sample:,} rows)"
        print(
            f"| {target:,} | {load:.0f} | {indexed['median_ms']:.2f} "
            f"({indexed['cpu_median_ms']:.2f}) | "
            f"{indexed['p95_ms']:.2f} | {indexed['range_mean']:.0f} | "
            f"{indexed['compared_mean']:.1f} "
            f"({indexed['compared_max']}) | {indexed['found']}/{len(drafts)} | "
            f"{naive['median_ms']:,.0f} ({naive['cpu_median_ms']:,.0f})"
            f"{note if naive['extrapolated'] else ''} | "
            f"{os.getloadavg()[0]:.1f} |",
            flush=True,
        )
    scratch.drop(args, url)


if __name__ == "__main__":
    main()

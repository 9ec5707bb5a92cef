"""The bundled sample reports and the extractions recorded for them."""

import datetime
import json
import re
from collections import Counter, defaultdict

import pytest

from reports.importing import import_reports_file
from reports.models import Report
from reports.standin import SAMPLES_DIR, load_sample_reports
from violations.choices import (
    COUNT_FIELDS,
    Certainty,
    PerpetratorAffiliation,
    VictimGender,
    VictimStatus,
    ViolationType,
)
from violations.schema import tool_input_schema
from violations.text import fold_arabic, fold_digits, normalize_text

IMPORT_FIELDS = {
    "text",
    "source_url",
    "channel",
    "message_id",
    "published_at",
    "language",
    "keywords",
    "media_count",
    "forwarded_from",
    "view_count",
    "metadata",
}
# The keys the record_violations tool asks for, item and victim.
ITEM_SCHEMA = tool_input_schema()["properties"]["violations"]["items"]["properties"]
ITEM_FIELDS = set(ITEM_SCHEMA)
VICTIM_FIELDS = set(ITEM_SCHEMA["victims"]["items"]["properties"])
FALL_OF_THE_REGIME = datetime.date(2024, 12, 8)

# Number words as they read after fold_arabic and casefold. Counts in the
# samples are written with these, with digits, or with a dual of a word for
# people; a vague word ("dozens", "عشرات") stands for its least value.
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "nine": 9,
    "واحد": 1,
    "اثنين": 2,
    "ثلاثه": 3,
    "اربعه": 4,
    "خمسه": 5,
    "سبعه": 7,
    "تسعه": 9,
    "dozens": 24,
    "عشرات": 24,
}
PEOPLE_DUALS = {"شابين", "شخصين", "طفلين", "عاملين"}

REPORTS = load_sample_reports()
EXTRACTIONS = json.loads((SAMPLES_DIR / "extractions.json").read_text("utf-8"))
ITEMS = [
    (report, item)
    for report in REPORTS
    for item in EXTRACTIONS[report["source_url"]]["violations"]
]


def item_id(pair):
    report, item = pair
    return f"{report['source_url']}:{item['violation_type']}"


def stated_figures(text: str) -> set[int]:
    folded = fold_arabic(text).casefold()
    figures = {int(found) for found in re.findall(r"\d+", folded.replace(",", ""))}
    for word in re.findall(r"\w+", folded):
        for candidate in (word, word.removeprefix("و")):
            if candidate in NUMBER_WORDS:
                figures.add(NUMBER_WORDS[candidate])
            if candidate in PEOPLE_DUALS:
                figures.add(2)
    return figures


def published(report) -> datetime.date:
    return datetime.datetime.fromisoformat(report["published_at"]).date()


def test_there_are_at_least_forty_reports_in_the_import_format():
    assert len(REPORTS) >= 40
    for report in REPORTS:
        assert set(report) == IMPORT_FIELDS, report["source_url"]
        assert 10 <= len(report["text"]) <= 10_000
        assert report["language"] in {"ar", "en"}
        assert report["source_url"] == (
            f"https://t.me/{report['channel']}/{report['message_id']}"
        )


def test_urls_and_channel_messages_are_unique():
    urls = Counter(report["source_url"] for report in REPORTS)
    messages = Counter((r["channel"], r["message_id"]) for r in REPORTS)

    assert urls.most_common(1)[0][1] == 1
    assert messages.most_common(1)[0][1] == 1


def test_publication_times_are_iso_with_utc_offset_in_2025_or_2026():
    for report in REPORTS:
        moment = datetime.datetime.fromisoformat(report["published_at"])
        assert report["published_at"].endswith("+00:00")
        assert moment.year in (2025, 2026)


def test_every_report_has_exactly_one_recording():
    assert set(EXTRACTIONS) == {report["source_url"] for report in REPORTS}
    for url, recording in EXTRACTIONS.items():
        assert set(recording) == {"violations", "no_violation_reason"}, url
        assert bool(recording["violations"]) != bool(recording["no_violation_reason"])


def test_the_mix_covers_none_several_and_both_languages():
    counts = [len(EXTRACTIONS[r["source_url"]]["violations"]) for r in REPORTS]
    languages = Counter(report["language"] for report in REPORTS)
    texts = " ".join(report["text"] for report in REPORTS)

    assert counts.count(0) >= 6
    assert sum(1 for count in counts if count >= 2) >= 4
    assert 3 in counts
    assert languages["ar"] > languages["en"] >= 8
    assert fold_digits(texts) != texts, "no Arabic-Indic digits anywhere"


def test_the_same_incident_is_reported_by_several_channels():
    accounts = defaultdict(set)
    for report, item in ITEMS:
        key = (item["violation_type"], item["incident_date"], item["location_name_en"])
        accounts[key].add((report["channel"], normalize_text(report["text"])))

    reworded = [key for key, seen in accounts.items() if len({t for _, t in seen}) > 1]
    assert len(reworded) >= 4


def test_one_report_is_an_exact_repost_from_another_channel():
    by_text = defaultdict(list)
    for report in REPORTS:
        by_text[report["text"]].append(report)
    reposts = [group for group in by_text.values() if len(group) > 1]

    assert len(reposts) == 1
    original, repost = sorted(reposts[0], key=lambda r: r["published_at"])
    assert repost["forwarded_from"] == original["channel"]
    assert EXTRACTIONS[repost["source_url"]] == EXTRACTIONS[original["source_url"]]


@pytest.mark.parametrize("pair", ITEMS, ids=item_id)
def test_recorded_item_has_every_key_and_valid_values(pair):
    _, item = pair

    assert set(item) == ITEM_FIELDS
    assert item["violation_type"] in ViolationType.values
    assert item["perpetrator_affiliation"] in PerpetratorAffiliation.values
    assert item["certainty"] in Certainty.values
    assert item["location_name_en"] and item["location_name_ar"]
    assert len(item["description_en"]) >= 10
    for victim in item["victims"]:
        assert set(victim) == VICTIM_FIELDS
        assert victim["gender"] in VictimGender.values
        assert victim["status"] in VictimStatus.values


@pytest.mark.parametrize("pair", ITEMS, ids=item_id)
def test_evidence_is_a_verbatim_quote_of_the_report(pair):
    report, item = pair

    quote = normalize_text(item["evidence"])

    assert quote
    assert f" {quote} " in f" {normalize_text(report['text'])} "


@pytest.mark.parametrize("pair", ITEMS, ids=item_id)
def test_every_count_is_stated_in_the_report(pair):
    report, item = pair
    figures = stated_figures(report["text"])

    for field in COUNT_FIELDS:
        count = item[field]
        # 0 and 1 need no figure: "no casualties", "a child was killed".
        assert count is None or count in (0, 1) or count in figures, field


@pytest.mark.parametrize("pair", ITEMS, ids=item_id)
def test_incident_date_fits_the_post_and_the_affiliation(pair):
    report, item = pair

    incident = datetime.date.fromisoformat(item["incident_date"])

    assert incident <= published(report) + datetime.timedelta(days=1)
    if item["perpetrator_affiliation"] == "assad_regime":
        assert incident < FALL_OF_THE_REGIME
    if item["perpetrator_affiliation"] == "post_8th_december_government":
        assert incident >= FALL_OF_THE_REGIME


def test_stated_figures_read_digits_words_duals_and_vague_words():
    assert stated_figures("مقتل ٣ وإصابة 12") >= {3, 12}
    assert stated_figures("ثلاثة قتلى وخمسة جرحى") >= {3, 5}
    assert stated_figures("مقتل شابين") == {2}
    assert stated_figures("Dozens of people, two of them children") == {24, 2}
    assert stated_figures("a child was killed") == set()


@pytest.mark.django_db
def test_sample_file_imports_whole():
    result = import_reports_file(SAMPLES_DIR / "reports.jsonl")

    assert result.imported == len(REPORTS)
    assert result.skipped == []
    assert Report.objects.count() == len(REPORTS)
    hashes = Counter(Report.objects.values_list("text_hash", flat=True))
    assert hashes.most_common(1)[0][1] == 2

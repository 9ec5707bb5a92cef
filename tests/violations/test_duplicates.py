import datetime

import pytest
from django.db import connection

from tests.factories import ReportFactory, violation_draft
from violations.duplicates import (
    block_keys,
    candidate_block,
    count_agreement,
    find_duplicate,
    lock_candidate_blocks,
    place_core,
    similarity,
)
from violations.models import Violation
from violations.services import create_violations_from_report

pytestmark = pytest.mark.django_db

DAY = datetime.date(2025, 3, 14)


def stored(**overrides) -> Violation:
    """A violation stored from a first report, as the service stores it."""
    result = create_violations_from_report(
        report=ReportFactory(), drafts=[violation_draft(**overrides)]
    )
    assert result.errors == []
    return Violation.objects.get(pk=result.violation_ids[0])


def test_arabic_retelling_with_spelling_variants_is_a_duplicate():
    known = stored()
    retold = violation_draft(
        location_name_en="",
        location_name_ar="كَفرنَبل",
        description_en="Warplanes struck Kafranbel market: 3 civilians dead, "
        "5 wounded.",
        description_ar="غارةٌ جويـة إستهدفت سوق كفرنبل ادت الى مقتل ٣ مدنيين "
        "واصابة ٥ اخرين",
    )

    match = find_duplicate(retold)

    assert match.violation == known
    assert match.is_duplicate()
    assert match.similarity >= 0.85


def test_english_retelling_is_a_duplicate():
    known = stored(description_ar="")
    retold = violation_draft(
        description_ar="",
        description_en="Airstrike on the market in Kafranbel killed three "
        "civilians and injured five others.",
    )

    match = find_duplicate(retold)

    assert match.violation == known
    assert match.is_duplicate()


def test_other_incident_at_the_same_place_and_day_is_not_a_duplicate():
    stored(description_ar="")
    other = violation_draft(
        description_ar="",
        description_en="A second raid on the Kafranbel bakery queue at dawn, "
        "with no casualties reported.",
        casualties=0,
        injured=0,
    )

    match = find_duplicate(other)

    assert match.compared == 1
    assert match.similarity < 0.85
    assert not match.is_duplicate()


# A retelling in other words with an earlier, lower toll (3 killed, not 4).
RETOLD = {
    "description_ar": "",
    "description_en": "Kafranbel: jets bombed the central market, three "
    "people were killed.",
    "casualties": 3,
    "injured": None,
}


def test_retelling_scores_between_a_strict_and_a_lenient_threshold():
    known = stored(description_ar="", casualties=4)

    match = find_duplicate(violation_draft(**RETOLD))

    assert match.violation == known
    assert match.similarity == pytest.approx(0.8070, abs=0.0001)


@pytest.mark.parametrize(
    ("threshold", "merged"), [(0.80, True), (0.81, False), (0.85, False)]
)
def test_the_threshold_setting_decides_the_same_pair(settings, threshold, merged):
    known = stored(description_ar="", casualties=4)
    settings.VIOLATIONS_DUPLICATE_THRESHOLD = threshold

    report = ReportFactory()
    result = create_violations_from_report(
        report=report, drafts=[violation_draft(**RETOLD)]
    )

    assert (result.violations_merged, result.violations_created) == (
        (1, 0) if merged else (0, 1)
    )
    assert Violation.objects.count() == (1 if merged else 2)
    first = known.report_id
    assert known.report_ids == ([first, report.pk] if merged else [first])


@pytest.mark.parametrize(
    "change",
    [
        {"violation_type": "SHELLING"},
        {"incident_date": DAY + datetime.timedelta(days=2)},
        {"incident_date": DAY - datetime.timedelta(days=2)},
        {
            "location_name_en": "Kafr Takharim",
            "location_name_ar": "كفرتخاريم",
            "admin_division_en": "Idlib",
        },
    ],
    ids=["type", "two-days-later", "two-days-earlier", "place"],
)
def test_identical_text_of_another_type_date_or_place_is_never_merged(change):
    stored()

    result = create_violations_from_report(
        report=ReportFactory(), drafts=[violation_draft(**change)]
    )

    assert result.violations_created == 1
    assert result.merged == []
    assert Violation.objects.count() == 2


def test_a_day_apart_is_within_the_default_window():
    known = stored()

    match = find_duplicate(violation_draft(incident_date=DAY + datetime.timedelta(1)))

    assert match.violation == known
    assert match.is_duplicate()


def test_window_setting_of_zero_keeps_a_day_apart_separate(settings):
    stored()
    settings.VIOLATIONS_DUPLICATE_DATE_WINDOW_DAYS = 0

    match = find_duplicate(violation_draft(incident_date=DAY + datetime.timedelta(1)))

    assert match.violation is None
    assert match.compared == 0


def test_nearby_coordinates_match_a_differently_spelled_place():
    known = stored(latitude=35.5736, longitude=36.5614)
    draft = violation_draft(
        location_name_en="Kafr Nabl",
        location_name_ar="كفر نبل",
        latitude=35.5790,
        longitude=36.5650,
    )

    match = find_duplicate(draft)

    assert match.violation == known
    assert match.is_duplicate()


def test_coordinates_beyond_the_radius_are_another_place(settings):
    stored(latitude=35.5736, longitude=36.5614)
    draft = violation_draft(
        location_name_en="Kafr Nabl",
        location_name_ar="كفر نبل",
        latitude=35.5790,
        longitude=36.5650,
    )
    settings.VIOLATIONS_DUPLICATE_RADIUS_KM = 0.5

    match = find_duplicate(draft)

    assert match.violation is None


BURAQ = {
    "violation_type": "KIDNAPPING",
    "location_name_en": "Buraq",
    "location_name_ar": "براق",
    "admin_division_en": "",
    "admin_division_ar": "",
    "description_en": "Unidentified gunmen abducted four travellers from Sweida "
    "near Buraq on the Damascus-Sweida highway.",
    "description_ar": "",
    "casualties": None,
    "injured": None,
    "kidnapped": 4,
}


@pytest.mark.parametrize(
    ("name_en", "name_ar"),
    [("Buraq junction", "مفرق براق"), ("", "مفرق براق"), ("Buraq junction", "")],
    ids=["both", "arabic", "english"],
)
def test_a_place_name_with_a_qualifier_added_is_the_same_place(name_en, name_ar):
    known = stored(**BURAQ)
    draft = violation_draft(
        **{**BURAQ, "location_name_en": name_en, "location_name_ar": name_ar}
    )

    match = find_duplicate(draft)

    assert match.violation == known
    assert match.compared == 1
    assert match.similarity == pytest.approx(0.985)
    assert match.is_duplicate()


@pytest.mark.parametrize(
    "place",
    [
        {
            "location_name_en": "Damascus countryside",
            "location_name_ar": "ريف دمشق",
            "admin_division_en": "Rif Dimashq",
            "admin_division_ar": "ريف دمشق",
        },
        {
            "location_name_en": "Southern Damascus countryside",
            "location_name_ar": "ريف دمشق الجنوبي",
            "admin_division_en": "",
            "admin_division_ar": "",
        },
        {
            "location_name_en": "Damascus city",
            "location_name_ar": "مدينة دمشق",
            "admin_division_en": "Rif Dimashq",
            "admin_division_ar": "ريف دمشق",
        },
    ],
    ids=["countryside", "countryside-no-governorate", "other-governorate"],
)
def test_an_area_around_a_place_or_another_governorate_is_another_place(place):
    stored(
        location_name_en="Damascus",
        location_name_ar="دمشق",
        admin_division_en="Damascus",
        admin_division_ar="دمشق",
    )

    match = find_duplicate(violation_draft(**place))

    assert match.violation is None
    assert match.compared == 0


def test_idlib_countryside_is_not_idlib_city_in_the_same_governorate():
    stored(location_name_en="Idlib", location_name_ar="إدلب")
    draft = violation_draft(
        location_name_en="Idlib countryside", location_name_ar="ريف إدلب"
    )

    assert find_duplicate(draft).violation is None


def test_place_core_drops_qualifiers_at_either_end_only():
    assert place_core("buraq junction") == "buraq"
    assert place_core("مفرق براق") == "براق"
    assert place_core("outskirts of al waer") == "waer"
    assert place_core("damascus countryside") == "damascus countryside"
    assert place_core("bab al hawa crossing") == "bab al hawa crossing"
    assert place_core("city centre") == ""


def test_tolls_that_share_no_count_are_two_incidents_whatever_the_words():
    known = stored(casualties=2, injured=None)
    draft = violation_draft(casualties=None, injured=4)

    match = find_duplicate(draft)

    assert count_agreement(draft, known) == 0.0
    assert match.violation == known
    assert match.similarity == pytest.approx(0.75)
    assert not match.is_duplicate()


def test_a_later_account_adding_the_wounded_agrees_on_the_toll():
    known = stored(casualties=9, injured=None)

    assert count_agreement(violation_draft(casualties=9, injured=22), known) == 1.0
    assert count_agreement(violation_draft(casualties=6, injured=22), known) == (
        pytest.approx(6 / 9)
    )
    assert count_agreement(violation_draft(casualties=None, injured=None), known) == 0


def test_every_candidate_is_scored_and_the_best_wins():
    weaker = stored(
        description_en="Explosion reported near Kafranbel, details unclear.",
        description_ar="",
        casualties=1,
        injured=0,
    )
    stored(
        description_en="Planes bombed a Kafranbel farm, one shepherd killed.",
        description_ar="",
        casualties=1,
        injured=0,
    )
    best = stored(description_ar="")
    draft = violation_draft(description_ar="")

    match = find_duplicate(draft)

    assert match.compared == 3
    assert match.violation == best
    assert match.similarity > similarity(draft, weaker)


def test_different_known_perpetrators_lower_the_score():
    known = stored(perpetrator_affiliation="russia")

    same = similarity(violation_draft(perpetrator_affiliation="russia"), known)
    unknown = similarity(violation_draft(perpetrator_affiliation="unknown"), known)
    other = similarity(violation_draft(perpetrator_affiliation="israel"), known)

    assert same == pytest.approx(1.0)
    assert unknown == pytest.approx(0.95)
    # Word for word the same account, but two actors: never one incident.
    assert other == pytest.approx(0.80)
    assert other < 0.85


def test_candidate_block_is_read_through_a_duplicate_index():
    stored()
    if connection.vendor == "postgresql":
        # On a near-empty table the planner rightly prefers a scan; this asks
        # whether an index serves the query at all.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")

    plan = candidate_block(violation_draft()).explain()

    assert "violation_dup_" in plan
    assert "Seq Scan" not in plan
    assert "SCAN violations_violation\n" not in plan + "\n"


def test_lock_keys_overlap_exactly_when_two_windows_share_a_day():
    def keys(days: int) -> set[int]:
        return set(
            block_keys(violation_draft(incident_date=DAY + datetime.timedelta(days)))
        )

    assert len(keys(0)) == 3
    assert keys(0) & keys(1)
    assert keys(0) & keys(2)
    assert not keys(0) & keys(3)
    assert not keys(0) & set(block_keys(violation_draft(violation_type="SHELLING")))
    assert block_keys(violation_draft(incident_date="not a date")) == []


@pytest.mark.postgres
def test_advisory_locks_are_taken_in_ascending_order():
    drafts = [violation_draft(), violation_draft(incident_date=DAY.replace(day=20))]

    keys = lock_candidate_blocks(drafts)

    assert keys == sorted(keys)
    assert len(keys) == 6
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid()"
        )
        assert cursor.fetchone()[0] == 6

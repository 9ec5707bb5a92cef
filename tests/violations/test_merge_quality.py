"""The bundled samples through the pipeline, compared with their incident labels.

``reports/samples/incidents.json`` says which recorded accounts tell the same
incident; ``benchmarks/merge_quality.py`` is the same measure run by hand.
"""

import pytest

from benchmarks.merge_quality import (
    describe,
    expected_merges,
    load_labels,
    measure,
    merge_scores,
    process_samples,
)
from reports.models import Report

pytestmark = pytest.mark.django_db


@pytest.fixture
def quality(claude_standin):
    process_samples()
    return measure(load_labels())


def test_every_labelled_merge_is_made_and_no_two_incidents_are_merged(quality):
    report = "\n".join(describe(quality))

    assert quality.unstored == [], report
    assert quality.false_merges == [], report
    assert quality.missed_merges == [], report
    assert (quality.precision, quality.recall) == (1.0, 1.0)
    assert quality.true_pairs == quality.stored_pairs == quality.correct_pairs
    assert len(merge_scores()) == expected_merges(quality.accounts)
    assert not Report.objects.exclude(status__in=["processed", "ignored"]).exists()
    # Guards the measure itself: without both kinds of pairs it proves nothing.
    assert expected_merges(quality.accounts) >= 10
    assert quality.true_pairs >= 17
    assert len(quality.kept_apart) >= 3


def test_different_incidents_past_the_gates_stay_clear_of_the_threshold(
    quality, settings
):
    highest = max(score for _, _, score in quality.kept_apart)
    lowest_merge = min(merge_scores())

    assert highest < settings.VIOLATIONS_DUPLICATE_THRESHOLD - 0.05
    assert lowest_merge >= settings.VIOLATIONS_DUPLICATE_THRESHOLD

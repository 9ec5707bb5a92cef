import csv
import datetime
import io
import json

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import ReportFactory, ViolationFactory, ViolationSourceFactory
from violations.models import Violation, ViolationSource

CHANGELIST = reverse("admin:violations_violation_changelist")


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def post_action(client, action: str, violations, **fields):
    data = {"action": action, "_selected_action": [v.pk for v in violations], **fields}
    return client.post(CHANGELIST, data)


MERGED_DRAFT = {
    "violation_type": "AIRSTRIKE",
    "incident_date": "2026-11-30",
    "location_name_en": "Kafranbel",
    "location_name_ar": "كفرنبل",
    "description_en": "An airstrike on Kafranbel killed five civilians.",
    "certainty": "probable",
    "casualties": 5,
}


def merged_violation() -> tuple[Violation, ViolationSource]:
    """A violation created by one report with a second report merged into it."""
    violation = ViolationSourceFactory(figures={"casualties": 3}).violation
    merge = ViolationSourceFactory(
        violation=violation,
        report=ReportFactory(),
        role=ViolationSource.Role.MERGED,
        similarity=0.88,
        figures={"casualties": 5},
        changes={"casualties": [3, 5]},
        draft=MERGED_DRAFT,
    )
    Violation.objects.filter(pk=violation.pk).update(casualties=5)
    return violation, merge


@pytest.mark.django_db
class TestViolationList:
    def test_list_shows_number_of_source_reports(self, staff_client):
        violation, _ = merged_violation()

        response = staff_client.get(CHANGELIST)

        content = response.content.decode()
        assert f"/admin/violations/violation/{violation.pk}/change/" in content
        assert '<td class="field-sources_count">2</td>' in content
        assert "Kafranbel / كفرنبل" in content

    def test_query_count_does_not_grow_with_rows(self, staff_client):
        ViolationSourceFactory.create_batch(3)
        with CaptureQueriesContext(connection) as few:
            staff_client.get(CHANGELIST)

        ViolationSourceFactory.create_batch(30)
        with CaptureQueriesContext(connection) as many:
            response = staff_client.get(CHANGELIST)

        assert len(response.context["cl"].result_list) == 33
        assert len(many) == len(few)

    def test_flagged_filter(self, staff_client):
        flagged = ViolationFactory(flagged=True, flag_reasons=["casualties"])
        ViolationFactory()

        response = staff_client.get(CHANGELIST, {"flagged__exact": "1"})

        assert [v.pk for v in response.context["cl"].result_list] == [flagged.pk]

    def test_search_over_arabic_place_names(self, staff_client):
        wanted = ViolationFactory(location_name_ar="دوما", location_name_en="Douma")
        ViolationFactory()

        response = staff_client.get(CHANGELIST, {"q": "دوما"})

        assert [v.pk for v in response.context["cl"].result_list] == [wanted.pk]


@pytest.mark.django_db
class TestVerify:
    def test_verify_asks_for_the_method(self, staff_client):
        violation = ViolationFactory()

        response = post_action(staff_client, "verify", [violation])

        assert 'name="verification_method"' in response.content.decode()
        violation.refresh_from_db()
        assert violation.verified is False

    def test_verify_without_a_method_is_refused(self, staff_client):
        violation = ViolationFactory()

        response = post_action(
            staff_client, "verify", [violation], post="yes", verification_method=""
        )

        assert "Say how the violations were verified." in response.content.decode()
        violation.refresh_from_db()
        assert violation.verified is False

    def test_verify_marks_violations_with_the_method(self, staff_client):
        first, second = ViolationFactory(), ViolationFactory()

        response = post_action(
            staff_client,
            "verify",
            [first, second],
            post="yes",
            verification_method="Two independent witnesses",
        )

        for violation in (first, second):
            violation.refresh_from_db()
            assert violation.verified is True
            assert violation.verification_method == "Two independent witnesses"
        assert messages_of(response) == [
            "2 violations marked verified (Two independent witnesses)."
        ]

    def test_unverify_clears_the_method(self, staff_client):
        violation = ViolationFactory(verified=True, verification_method="Photos")

        confirmation = post_action(staff_client, "unverify", [violation])
        response = post_action(staff_client, "unverify", [violation], post="yes")

        assert "Unverify violations" in confirmation.content.decode()
        violation.refresh_from_db()
        assert violation.verified is False
        assert violation.verification_method == ""
        assert messages_of(response) == ["1 violation marked unverified."]

    def test_volunteer_sees_no_actions(self, volunteer_client):
        ViolationFactory()

        content = volunteer_client.get(CHANGELIST).content.decode()

        for action in ("verify", "unverify", "export_csv", "export_geojson"):
            assert f'value="{action}"' not in content


@pytest.mark.django_db
class TestExport:
    def test_csv_export_lists_the_selection_with_sources(self, staff_client):
        violation, merge = merged_violation()
        ViolationFactory()

        response = post_action(staff_client, "export_csv", [violation])

        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"].startswith(
            'attachment; filename="violations-'
        )
        body = b"".join(response.streaming_content).decode()
        rows = list(csv.DictReader(io.StringIO(body)))
        assert len(rows) == 1
        assert rows[0]["id"] == str(violation.pk)
        assert rows[0]["location_name_ar"] == "كفرنبل"
        assert rows[0]["casualties"] == "5"
        first_report = violation.sources.get(role="created").report_id
        assert rows[0]["report_ids"] == f"{first_report} {merge.report_id}"

    def test_csv_cells_that_look_like_formulas_are_quoted(self, staff_client):
        violation = ViolationFactory(description_en="=HYPERLINK(1) killed two people")

        response = post_action(staff_client, "export_csv", [violation])

        body = b"".join(response.streaming_content).decode()
        row = next(csv.DictReader(io.StringIO(body)))
        assert row["description_en"] == "'=HYPERLINK(1) killed two people"

    def test_geojson_export_is_a_feature_collection(self, staff_client):
        placed = ViolationFactory(latitude=35.5, longitude=36.6)
        unplaced = ViolationFactory(incident_date=datetime.date(2025, 1, 2))

        response = post_action(staff_client, "export_geojson", [placed, unplaced])

        assert response["Content-Type"] == "application/geo+json"
        data = json.loads(b"".join(response.streaming_content))
        assert data["type"] == "FeatureCollection"
        features = {feature["id"]: feature for feature in data["features"]}
        assert features[placed.pk]["geometry"] == {
            "type": "Point",
            "coordinates": [36.6, 35.5],
        }
        assert features[unplaced.pk]["geometry"] is None
        assert features[unplaced.pk]["properties"]["incident_date"] == "2025-01-02"

    def test_export_needs_its_permission(self, db):
        from tests.admin.conftest import logged_in, make_user

        client = logged_in(
            make_user(
                "viewer", ["violations.view_violation", "violations.verify_violation"]
            )
        )
        violation = ViolationFactory()

        response = post_action(client, "export_csv", [violation])

        assert response.status_code == 302
        assert messages_of(response) == ["No action selected."]


@pytest.mark.django_db
class TestViolationDetail:
    def test_detail_links_every_source_report_and_the_merge(self, staff_client):
        violation, merge = merged_violation()

        content = staff_client.get(
            reverse("admin:violations_violation_change", args=[violation.pk])
        ).content.decode()

        for report_id in violation.report_ids:
            url = reverse("admin:reports_report_change", args=[report_id])
            assert f'href="{url}"' in content
        assert "casualties: 3 &rarr; 5" in content
        split_url = reverse(
            "admin:violations_violation_split", args=[violation.pk, merge.pk]
        )
        assert f'href="{split_url}"' in content

    def test_arabic_fields_are_edited_right_to_left(self, staff_client):
        violation = ViolationFactory()

        content = staff_client.get(
            reverse("admin:violations_violation_change", args=[violation.pk])
        ).content.decode()

        assert (
            '<input type="text" name="location_name_ar" value="كفرنبل" '
            'class="vTextField" maxlength="200" dir="rtl" lang="ar"'
        ) in content

    def test_volunteer_sees_no_split_link(self, volunteer_client):
        violation, merge = merged_violation()
        split_url = reverse(
            "admin:violations_violation_split", args=[violation.pk, merge.pk]
        )

        content = volunteer_client.get(
            reverse("admin:violations_violation_change", args=[violation.pk])
        ).content.decode()

        assert split_url not in content
        assert volunteer_client.post(split_url).status_code == 403
        assert ViolationSource.objects.filter(pk=merge.pk).exists()

    def test_split_moves_the_merged_report_to_a_violation_of_its_own(
        self, staff_client
    ):
        violation, merge = merged_violation()
        split_url = reverse(
            "admin:violations_violation_split", args=[violation.pk, merge.pk]
        )

        confirmation = staff_client.get(split_url)
        response = staff_client.post(split_url)

        assert "Split a source out" in confirmation.content.decode()
        violation.refresh_from_db()
        assert violation.casualties == 3
        assert not violation.sources.filter(report_id=merge.report_id).exists()
        new_link = ViolationSource.objects.get(report_id=merge.report_id)
        assert new_link.violation_id != violation.pk
        assert new_link.violation.casualties == 5
        assert response.status_code == 302
        assert response["Location"] == reverse(
            "admin:violations_violation_change", args=[new_link.violation_id]
        )
        assert messages_of(response) == [
            f"Report {merge.report_id} split out of violation {violation.pk} into "
            f"violation {new_link.violation_id}."
        ]

    def test_verified_is_read_only_without_the_permission(self, db):
        from tests.admin.conftest import logged_in, make_user

        client = logged_in(
            make_user(
                "editor2", ["violations.view_violation", "violations.change_violation"]
            )
        )
        violation = ViolationFactory()

        content = client.get(
            reverse("admin:violations_violation_change", args=[violation.pk])
        ).content.decode()

        assert 'name="verified"' not in content
        assert 'name="verification_method"' not in content

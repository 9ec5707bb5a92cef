import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reports.models import Report
from tests.admin.conftest import STAFF_PERMISSIONS, VOLUNTEER_PERMISSIONS, make_user
from tests.factories import ReportFactory, ViolationSourceFactory

pytestmark = pytest.mark.browser


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", "secret-pass")
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)


def failed_report(**fields) -> Report:
    return ReportFactory(
        status=Report.Status.FAILED,
        attempts=3,
        error_category=Report.ErrorCategory.API_ERROR,
        error_message="API error 500",
        **fields,
    )


def run_action(page, live_server, action: str, reports) -> None:
    page.goto(f"{live_server.url}/admin/reports/report/?status__exact=failed")
    for report in reports:
        page.check(f'input[name="_selected_action"][value="{report.pk}"]')
    page.select_option('select[name="action"]', action)
    page.click('button[name="index"]')


def test_staff_reprocess_two_reports_and_see_them_queued(live_server, page, screenshot):
    make_user("editor", STAFF_PERMISSIONS)
    first, second, untouched = failed_report(), failed_report(), failed_report()

    log_in(page, live_server, "editor")
    screenshot(page, "logged-in")
    run_action(page, live_server, "reprocess", [first, second])

    expect(page.locator("h1")).to_have_text("Reprocess reports")
    expect(page.locator("#selected-reports tbody tr")).to_have_count(2)
    screenshot(page, "confirmation")
    page.click('input[type=submit][value="Reprocess"]')

    expect(page.locator("ul.messagelist")).to_contain_text(
        "2 reports sent back to the queue."
    )
    page.goto(f"{live_server.url}/admin/reports/report/?status__exact=unprocessed")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    screenshot(page, "queued")
    for report in (first, second):
        report.refresh_from_db()
        assert (report.status, report.attempts) == (Report.Status.UNPROCESSED, 0)
    untouched.refresh_from_db()
    assert untouched.status == Report.Status.FAILED


def test_staff_ignore_a_report_with_a_reason(live_server, page, screenshot):
    make_user("editor", STAFF_PERMISSIONS)
    report = failed_report()

    log_in(page, live_server, "editor")
    run_action(page, live_server, "ignore", [report])
    page.fill('textarea[name="reason"]', "إعلان تجاري، لا يصف أي انتهاك")
    screenshot(page, "reason-typed")
    page.click('input[type=submit][value="Ignore"]')

    expect(page.locator("ul.messagelist")).to_contain_text("1 report marked ignored.")
    screenshot(page, "ignored")
    report.refresh_from_db()
    assert report.status == Report.Status.IGNORED
    assert report.ignore_reason == "إعلان تجاري، لا يصف أي انتهاك"


def test_report_page_links_to_its_violation(live_server, page, screenshot):
    make_user("editor", STAFF_PERMISSIONS)
    source = ViolationSourceFactory(report__status=Report.Status.PROCESSED)

    log_in(page, live_server, "editor")
    page.goto(f"{live_server.url}/admin/reports/report/{source.report_id}/change/")
    expect(page.locator(".report-text")).to_have_attribute("dir", "rtl")
    screenshot(page, "report")
    page.click(f"text=Violation {source.violation_id}")

    expect(page).to_have_url(
        f"{live_server.url}/admin/violations/violation/{source.violation_id}/change/"
    )
    expect(page.locator("#violation-sources")).to_contain_text(
        f"Report {source.report_id}"
    )
    screenshot(page, "violation")


def test_dashboard_renders_its_charts(live_server, page, screenshot):
    make_user("editor", STAFF_PERMISSIONS)
    now = timezone.now()
    for hours_ago in range(0, 30, 3):
        ReportFactory(
            status=Report.Status.PROCESSED,
            finished_at=now - datetime.timedelta(hours=hours_ago),
            processing_time_ms=2000 + 300 * hours_ago,
            violations_created=1,
            input_tokens=1500,
            output_tokens=400,
        )
    failed_report(finished_at=now - datetime.timedelta(hours=2))
    ReportFactory.create_batch(2)

    log_in(page, live_server, "editor")
    page.click("text=Processing dashboard")

    expect(page.locator("h1")).to_have_text("Processing dashboard")
    expect(page.locator("svg.chart")).to_have_count(4)
    assert page.locator("svg.chart rect.bar").count() >= 10
    expect(page.locator("#queue")).to_contain_text("Ready to process now")
    screenshot(page, "dashboard")


def test_user_without_the_permission_sees_no_actions(live_server, page, screenshot):
    make_user("volunteer", VOLUNTEER_PERMISSIONS)
    report = failed_report()

    log_in(page, live_server, "volunteer")
    page.goto(f"{live_server.url}/admin/reports/report/")

    report_link = page.locator(f'a[href="/admin/reports/report/{report.pk}/change/"]')
    expect(report_link.first).to_be_visible()
    expect(page.locator('select[name="action"]')).to_have_count(0)
    expect(page.locator("text=Processing dashboard")).to_have_count(0)
    screenshot(page, "no-actions")

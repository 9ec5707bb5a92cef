import json
import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection, models, transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.functional import cached_property
from django.utils.html import format_html

from violations.models import ViolationSource

from .dashboard import STATUS_COLOURS
from .models import Report

ARABIC_LETTERS = re.compile(r"[\u0600-\u06FF]")


# How many selected rows a confirmation page lists one by one; the rest are
# summed up by status, so selecting a million rows still renders quickly.
CONFIRMATION_LIST_LIMIT = 100

REPROCESSABLE = [s for s in Report.Status if s != Report.Status.PROCESSING]
IGNORABLE = [
    Report.Status.UNPROCESSED,
    Report.Status.RETRY_PENDING,
    Report.Status.FAILED,
]


def estimated_count(queryset: QuerySet, *, exact_below: int) -> int:
    """Row count of ``queryset``: the planner's estimate on PostgreSQL when large.

    An exact COUNT(*) over a million reports reads the whole table on every
    page view. PostgreSQL's planner already knows roughly how many rows a
    query returns (from pg_class.reltuples and the column statistics), so
    EXPLAIN gives the figure for free; below ``exact_below`` the exact count is
    cheap and the page links stay exact.
    """
    if connection.vendor != "postgresql":
        return queryset.count()

    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)

    estimate = int(plan[0]["Plan"]["Plan Rows"])
    if estimate < exact_below:
        return queryset.count()
    return estimate


class EstimatedCountPaginator(Paginator):
    """Paginator whose count is an estimate on large PostgreSQL tables."""

    exact_below = 10_000

    @cached_property
    def count(self) -> int:
        return estimated_count(self.object_list, exact_below=self.exact_below)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count} {word}"


def render_confirmation(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    form: forms.Form,
    context: dict[str, Any],
) -> TemplateResponse:
    """The page an action shows before it changes anything.

    It lists the first selected rows and a per-group summary, and posts the
    same selection back with ``post=yes`` and the form's fields.
    """
    opts = model_admin.model._meta
    selected = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
    return TemplateResponse(
        request,
        f"admin/{opts.app_label}/confirm_{action}.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "opts": opts,
            "action": action,
            "form": form,
            "selected_ids": selected,
            "select_across": request.POST.get("select_across", "0"),
            "listed": list(queryset[:CONFIRMATION_LIST_LIMIT]),
            "list_limit": CONFIRMATION_LIST_LIMIT,
            **context,
        },
    )


def status_summary(queryset: QuerySet, eligible: list[str]) -> list[dict[str, Any]]:
    """Selected reports per status, each marked whether the action changes it."""
    rows = queryset.order_by().values("status").annotate(count=Count("pk"))
    return [
        {
            "status": Report.Status(row["status"]).label,
            "count": row["count"],
            "changes": row["status"] in eligible,
        }
        for row in sorted(rows, key=lambda row: row["status"])
    ]


class ReprocessForm(forms.Form):
    now = forms.BooleanField(
        label="Process now in the background",
        required=False,
        help_text="Also queue each report for processing straight away, instead "
        "of waiting for the next scheduled batch.",
    )


class IgnoreForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "dir": "auto"}),
        max_length=2000,
        help_text="Why these reports describe no violation; kept on each report.",
        error_messages={"required": "A reason is required to ignore reports."},
    )


class ChannelFilter(admin.SimpleListFilter):
    """Channels of recent reports.

    A plain field filter runs SELECT DISTINCT channel over every report;
    the newest reports (a primary-key range) name the channels in use.
    """

    title = "channel"
    parameter_name = "channel"
    sample_size = 5000

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        recent = Report.objects.order_by("-pk").values_list("channel", flat=True)
        channels = sorted({c for c in recent[: self.sample_size] if c})
        return [(channel, channel) for channel in channels]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(channel=self.value())
        return queryset


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status_badge",
        "channel",
        "scraped_at",
        "published_at",
        "attempts",
        "violations_count",
        "error_category",
        "processing_time",
    ]
    list_display_links = ["id", "status_badge"]
    list_filter = [
        "status",
        ChannelFilter,
        "error_category",
        "scraped_at",
        "published_at",
        "language",
        "priority",
    ]
    search_fields = ["text", "source_url", "channel"]
    # Newest first by the time the report was scraped, read page by page from
    # the report_newest index (scraped_at DESC, id DESC).
    ordering = ["-scraped_at", "-pk"]
    # Nothing related is shown in the list: the page stays a one-table query.
    list_select_related = []
    show_full_result_count = False
    # "Show counts" would run a COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = ["reprocess", "ignore"]
    change_form_template = "admin/reports/report/change_form.html"
    readonly_fields = [
        "report_text",
        "status",
        "attempts",
        "last_attempt",
        "started_at",
        "finished_at",
        "not_before",
        "processing_time_ms",
        "violations_created",
        "violations_merged",
        "error_category",
        "error_message",
        "error_at",
        "ignore_reason",
        "rejected_drafts",
        "prompt_version",
        "model_name",
        *Report.TOKEN_FIELDS,
        "duplicate_of",
        "created_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "report_text",
                    "source_url",
                    ("channel", "message_id"),
                    ("published_at", "scraped_at"),
                    ("language", "priority"),
                    "keywords",
                    ("media_count", "view_count"),
                    "forwarded_from",
                    "duplicate_of",
                    "metadata",
                ]
            },
        ),
        (
            "Processing",
            {
                "fields": [
                    "status",
                    "attempts",
                    ("last_attempt", "not_before"),
                    ("started_at", "finished_at"),
                    "processing_time_ms",
                    ("violations_created", "violations_merged"),
                    "ignore_reason",
                    "created_at",
                ]
            },
        ),
        (
            "Last error",
            {"fields": ["error_category", "error_at", "error_message"]},
        ),
        (
            "Claude",
            {
                "fields": [
                    ("prompt_version", "model_name"),
                    ("input_tokens", "output_tokens"),
                    ("cache_read_tokens", "cache_write_tokens"),
                    "rejected_drafts",
                ]
            },
        ),
    ]

    # --- list columns -----------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, report: Report) -> str:
        return format_html(
            '<span class="report-status status-{}" style="color: #fff; '
            'background: {}; padding: 1px 6px; border-radius: 3px">{}</span>',
            report.status,
            STATUS_COLOURS.get(report.status, "#555"),
            report.get_status_display(),
        )

    @admin.display(description="violations")
    def violations_count(self, report: Report) -> int:
        # The counts stored when the report was processed: no query per row.
        return report.violations_created + report.violations_merged

    @admin.display(description="processing time", ordering="processing_time_ms")
    def processing_time(self, report: Report) -> str:
        if report.processing_time_ms is None:
            return "-"
        return f"{report.processing_time_ms / 1000:.1f} s"

    # --- detail -----------------------------------------------------------------

    @admin.display(description="text")
    def report_text(self, report: Report) -> str:
        arabic = bool(ARABIC_LETTERS.search(report.text))
        return format_html(
            '<div class="report-text" dir="{}" lang="{}" style="white-space: '
            'pre-wrap; max-width: 60em; font-size: 1.1em">{}</div>',
            "rtl" if arabic else "auto",
            "ar" if arabic else "en",
            report.text,
        )

    @admin.display(description="rejected drafts")
    def rejected_drafts(self, report: Report) -> str:
        if not report.validation_errors:
            return "-"
        return format_html(
            '<pre dir="auto" style="white-space: pre-wrap">{}</pre>',
            json.dumps(report.validation_errors, ensure_ascii=False, indent=2),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        sources = []
        if str(object_id).isdigit():
            sources = list(
                ViolationSource.objects.filter(report_id=object_id)
                .select_related("violation")
                .order_by("created_at", "pk")
            )
        merges = [s for s in sources if s.role != ViolationSource.Role.CREATED]
        extra_context = {**(extra_context or {}), "sources": sources, "merges": merges}
        return super().change_view(request, object_id, form_url, extra_context)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            # Scraped links are https; a bare host typed by hand is taken so too.
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    # --- permissions ------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Reports come from the scrapers through the importer, which checks
        # and fingerprints them; the form here cannot edit their text.
        return False

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reports.reprocess_report")

    def has_ignore_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reports.ignore_report")

    # --- actions ----------------------------------------------------------------

    @admin.action(description="Reprocess selected reports", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet) -> Any:
        from .services import reprocess_reports

        form = ReprocessForm(request.POST if request.POST.get("post") else None)
        if not form.is_bound or not form.is_valid():
            return render_confirmation(
                request,
                self,
                queryset,
                action="reprocess",
                title="Reprocess reports",
                form=form,
                context={"summary": status_summary(queryset, REPROCESSABLE)},
            )

        report_ids = list(queryset.values_list("pk", flat=True))
        now = form.cleaned_data["now"]
        with transaction.atomic():
            changed = reprocess_reports(report_ids=report_ids, now=now)

        message = f"{plural(changed, 'report')} sent back to the queue"
        message += " and queued for processing now." if now else "."
        self.message_user(request, message, messages.SUCCESS)
        self.report_skipped(
            request, len(report_ids) - changed, "they are being processed"
        )
        return None

    @admin.action(description="Ignore selected reports", permissions=["ignore"])
    def ignore(self, request: HttpRequest, queryset: QuerySet) -> Any:
        from .services import ignore_reports

        form = IgnoreForm(request.POST if request.POST.get("post") else None)
        if not form.is_bound or not form.is_valid():
            return render_confirmation(
                request,
                self,
                queryset,
                action="ignore",
                title="Ignore reports",
                form=form,
                context={"summary": status_summary(queryset, IGNORABLE)},
            )

        report_ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():
            changed = ignore_reports(
                report_ids=report_ids, reason=form.cleaned_data["reason"]
            )

        self.message_user(
            request, f"{plural(changed, 'report')} marked ignored.", messages.SUCCESS
        )
        self.report_skipped(
            request,
            len(report_ids) - changed,
            "only unprocessed, retry-pending or failed reports can be ignored",
        )
        return None

    def report_skipped(self, request: HttpRequest, skipped: int, why: str) -> None:
        if skipped:
            verb = "was" if skipped == 1 else "were"
            self.message_user(
                request,
                f"{plural(skipped, 'report')} {verb} left unchanged: {why}.",
                messages.WARNING,
            )

    # --- dashboard --------------------------------------------------------------

    def get_urls(self) -> list:
        from .admin_views import dashboard_view

        dashboard = self.admin_site.admin_view(dashboard_view)
        return [
            path("dashboard/", dashboard, name="reports_dashboard"),
            *super().get_urls(),
        ]

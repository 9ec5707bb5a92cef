from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from reports.admin import EstimatedCountPaginator, plural, render_confirmation

from .export import csv_lines, export_rows, geojson_chunks
from .models import Violation, ViolationSource


class VerifyForm(forms.Form):
    verification_method = forms.CharField(
        label="Verification method",
        max_length=300,
        help_text="How the violations were verified, e.g. 'two independent "
        "witnesses' or 'satellite imagery'; stored on each violation.",
        error_messages={"required": "Say how the violations were verified."},
    )


class ConfirmForm(forms.Form):
    """An action that needs nothing but a yes."""


def source_count() -> Coalesce:
    """Sources per violation as a correlated subquery.

    A JOIN with GROUP BY would aggregate every link before the page's LIMIT;
    the subquery is evaluated only for the rows on the page.
    """
    sources = (
        ViolationSource.objects.filter(violation=OuterRef("pk"))
        .order_by()
        .values("violation")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return Coalesce(Subquery(sources, output_field=IntegerField()), 0)


@admin.register(Violation)
class ViolationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "violation_type",
        "incident_date",
        "place",
        "casualties",
        "injured",
        "kidnapped",
        "detained",
        "displaced",
        "certainty",
        "verified",
        "flagged",
        "sources_count",
    ]
    list_filter = [
        "violation_type",
        "incident_date",
        "admin_division_en",
        "perpetrator_affiliation",
        "certainty",
        "verified",
        "flagged",
    ]
    search_fields = [
        "description_en",
        "description_ar",
        "location_name_en",
        "location_name_ar",
    ]
    ordering = ["-incident_date", "-id"]
    list_select_related = []
    show_full_result_count = False
    # "Show counts" would run a COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = ["verify", "unverify", "export_csv", "export_geojson"]
    change_form_template = "admin/violations/violation/change_form.html"
    readonly_fields = [
        "report",
        "flagged",
        "flag_reasons",
        "created_at",
        "updated_at",
    ]

    # --- list -------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(source_count=source_count())

    @admin.display(description="place", ordering="location_name_en")
    def place(self, violation: Violation) -> str:
        names = [violation.location_name_en, violation.location_name_ar]
        return " / ".join(name for name in names if name) or "-"

    @admin.display(description="source reports", ordering="source_count")
    def sources_count(self, violation: Violation) -> int:
        return violation.source_count

    # --- detail -----------------------------------------------------------------

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None and db_field.name.endswith("_ar"):
            formfield.widget.attrs.update({"dir": "rtl", "lang": "ar"})
        return formfield

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if not self.has_verify_permission(request):
            fields += ["verified", "verification_method"]
        return fields

    def change_view(self, request, object_id, form_url="", extra_context=None):
        sources = []
        if str(object_id).isdigit():
            sources = list(
                ViolationSource.objects.filter(violation_id=object_id)
                .select_related("report")
                .order_by("created_at", "pk")
            )
        extra_context = {
            **(extra_context or {}),
            "sources": sources,
            "can_split": self.has_split_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list:
        split = self.admin_site.admin_view(self.split_view)
        return [
            path(
                "<int:object_id>/split/<int:source_id>/",
                split,
                name="violations_violation_split",
            ),
            *super().get_urls(),
        ]

    def split_view(
        self, request: HttpRequest, object_id: int, source_id: int
    ) -> TemplateResponse | HttpResponseRedirect:
        """Confirms, then undoes the merge of one source into this violation."""
        if not self.has_split_permission(request):
            raise PermissionDenied
        source = get_object_or_404(
            ViolationSource.objects.select_related("violation", "report"),
            pk=source_id,
            violation_id=object_id,
        )
        if request.method == "POST":
            return self.split(request, source)

        context = {
            **self.admin_site.each_context(request),
            "title": "Split a source out",
            "opts": self.model._meta,
            "original": source.violation,
            "source": source,
        }
        return TemplateResponse(
            request, "admin/violations/violation/split_confirmation.html", context
        )

    def split(
        self, request: HttpRequest, source: ViolationSource
    ) -> HttpResponseRedirect:
        from .services import split_source

        violation_id, report_id = source.violation_id, source.report_id
        try:
            with transaction.atomic():
                new_violation = split_source(source)
        except (ValueError, ValidationError) as exc:
            # A link that is not a merge, or a stored draft that no longer
            # passes the rules: nothing was changed (the transaction rolled back).
            reason = "; ".join(exc.messages) if hasattr(exc, "messages") else exc
            self.message_user(request, f"Not split: {reason}", messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:violations_violation_change", args=[violation_id])
            )

        self.message_user(
            request,
            f"Report {report_id} split out of violation {violation_id} into "
            f"violation {new_violation.pk}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse("admin:violations_violation_change", args=[new_violation.pk])
        )

    # --- permissions ------------------------------------------------------------

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("violations.verify_violation")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("violations.export_violation")

    def has_split_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("violations.split_violation")

    # --- actions ----------------------------------------------------------------

    @admin.action(
        description="Mark selected violations verified", permissions=["verify"]
    )
    def verify(self, request: HttpRequest, queryset: QuerySet) -> Any:
        form = VerifyForm(request.POST if request.POST.get("post") else None)
        if not form.is_bound or not form.is_valid():
            return self.confirm(request, queryset, "verify", "Verify violations", form)

        method = form.cleaned_data["verification_method"]
        with transaction.atomic():
            changed = queryset.update(
                verified=True, verification_method=method, updated_at=timezone.now()
            )
        self.message_user(
            request,
            f"{plural(changed, 'violation')} marked verified ({method}).",
            messages.SUCCESS,
        )
        return None

    @admin.action(
        description="Mark selected violations unverified", permissions=["verify"]
    )
    def unverify(self, request: HttpRequest, queryset: QuerySet) -> Any:
        form = ConfirmForm(request.POST if request.POST.get("post") else None)
        if not form.is_bound:
            return self.confirm(
                request, queryset, "unverify", "Unverify violations", form
            )

        with transaction.atomic():
            changed = queryset.update(
                verified=False, verification_method="", updated_at=timezone.now()
            )
        self.message_user(
            request,
            f"{plural(changed, 'violation')} marked unverified.",
            messages.SUCCESS,
        )
        return None

    def confirm(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        action: str,
        title: str,
        form: forms.Form,
    ) -> TemplateResponse:
        summary = [
            {
                "status": "verified" if row["verified"] else "not verified",
                "count": row["count"],
                # Verify stamps the method on every row, even verified ones.
                "changes": action == "verify" or row["verified"],
            }
            for row in queryset.order_by()
            .values("verified")
            .annotate(count=Count("pk"))
            .order_by("verified")
        ]
        return render_confirmation(
            request,
            self,
            queryset,
            action=action,
            title=title,
            form=form,
            context={"summary": summary},
        )

    @admin.action(
        description="Export selected violations as CSV", permissions=["export"]
    )
    def export_csv(self, request: HttpRequest, queryset: QuerySet):
        return self.download(
            csv_lines(export_rows(queryset)), "text/csv; charset=utf-8", "csv"
        )

    @admin.action(
        description="Export selected violations as GeoJSON", permissions=["export"]
    )
    def export_geojson(self, request: HttpRequest, queryset: QuerySet):
        return self.download(
            geojson_chunks(export_rows(queryset)), "application/geo+json", "geojson"
        )

    def download(self, chunks, content_type: str, extension: str):
        response = StreamingHttpResponse(chunks, content_type=content_type)
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = (
            f'attachment; filename="violations-{stamp}.{extension}"'
        )
        return response

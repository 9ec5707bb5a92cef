from django.contrib import admin

from .models import Violation, ViolationSource


class ViolationSourceInline(admin.TabularInline):
    model = ViolationSource
    extra = 0
    can_delete = False
    fields = ["report", "role", "similarity", "figures", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Violation)
class ViolationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "violation_type",
        "incident_date",
        "location_name_en",
        "casualties",
        "injured",
        "detained",
        "certainty",
        "verified",
        "flagged",
    ]
    list_filter = [
        "violation_type",
        "incident_date",
        "admin_division_en",
        "perpetrator_affiliation",
        "verified",
        "flagged",
    ]
    search_fields = [
        "description_en",
        "description_ar",
        "location_name_en",
        "location_name_ar",
    ]
    date_hierarchy = "incident_date"
    show_full_result_count = False
    readonly_fields = ["report", "flag_reasons", "created_at", "updated_at"]
    inlines = [ViolationSourceInline]

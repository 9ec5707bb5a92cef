from django.contrib import admin

from .models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "channel",
        "scraped_at",
        "published_at",
        "attempts",
        "violations_created",
        "violations_merged",
        "error_category",
        "processing_time_ms",
    ]
    list_filter = ["status", "error_category", "language", "priority", "scraped_at"]
    search_fields = ["text", "source_url", "channel"]
    date_hierarchy = "scraped_at"
    ordering = ["-scraped_at", "-id"]
    show_full_result_count = False
    readonly_fields = [
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
        "validation_errors",
        "prompt_version",
        "model_name",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "duplicate_of",
        "created_at",
    ]

import datetime
import hashlib
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MinLengthValidator
from django.db import connection, models, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.lookups import Exact
from django.utils import timezone

from violations.text import normalize_text

TEXT_MIN_LENGTH = 10
TEXT_MAX_LENGTH = 10_000
PUBLISHED_FUTURE_TOLERANCE = datetime.timedelta(hours=1)


def text_fingerprint(text: str) -> str:
    """SHA-256 of the normalised text: equal for reposts that differ only in form."""
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()


def is_expression(value: Any) -> bool:
    return hasattr(value, "resolve_expression")


class ReportQuerySet(models.QuerySet):
    def ready_for_processing(
        self, limit: int | None = None, *, now: datetime.datetime | None = None
    ) -> "ReportQuerySet":
        """Reports a batch may claim now, most urgent first, then newest.

        Fresh ``unprocessed`` reports; ``retry_pending`` ones whose last
        attempt is at least REPORTS_RETRY_DELAY_SECONDS old; ``processing``
        ones started more than REPORTS_STUCK_TIMEOUT_SECONDS ago. Never a
        report that has used all its attempts. A ``not_before`` time (set when
        a rate limit sent a report back) is honoured in every branch.
        """
        now = now or timezone.now()
        queryset = self.filter(ready_condition(now)).order_by(
            "-priority", "-scraped_at", "-id"
        )
        return queryset[:limit] if limit is not None else queryset

    def waiting(self) -> "ReportQuerySet":
        """Reports not yet finished: fresh, waiting for a retry, or in progress."""
        return self.filter(status__in=Report.QUEUE_STATUSES)


def ready_condition(now: datetime.datetime) -> Q:
    retry_cutoff = now - datetime.timedelta(
        seconds=settings.REPORTS_RETRY_DELAY_SECONDS
    )
    stuck_cutoff = now - datetime.timedelta(
        seconds=settings.REPORTS_STUCK_TIMEOUT_SECONDS
    )
    not_deferred = Q(not_before__isnull=True) | Q(not_before__lte=now)
    retry_due = Q(not_before__isnull=True, last_attempt__lte=retry_cutoff) | Q(
        not_before__lte=now
    )
    return Q(attempts__lt=settings.REPORTS_MAX_ATTEMPTS) & (
        (Q(status=Report.Status.UNPROCESSED) & not_deferred)
        | (Q(status=Report.Status.RETRY_PENDING) & retry_due)
        | Q(status=Report.Status.PROCESSING, started_at__lte=stuck_cutoff)
    )


def claim_values(now: datetime.datetime, token: uuid.UUID) -> dict[str, Any]:
    """The columns a claim sets: one more attempt, started now, this token.

    ``previous_attempt`` keeps the last attempt from before the claim, so a
    release can put it back (SQL reads every right-hand side from the old row).
    """
    return {
        "status": Report.Status.PROCESSING,
        "attempts": F("attempts") + 1,
        "previous_attempt": F("last_attempt"),
        "last_attempt": now,
        "started_at": now,
        "not_before": None,
        "claim_token": token,
    }


class ReportManager(models.Manager.from_queryset(ReportQuerySet)):
    def fail_exhausted_stuck(self, *, now: datetime.datetime | None = None) -> int:
        """Stuck reports with no attempts left become ``failed``; returns how many."""
        now = now or timezone.now()
        timeout = settings.REPORTS_STUCK_TIMEOUT_SECONDS
        cutoff = now - datetime.timedelta(seconds=timeout)
        return self.filter(
            status=Report.Status.PROCESSING,
            started_at__lte=cutoff,
            attempts__gte=settings.REPORTS_MAX_ATTEMPTS,
        ).update(
            status=Report.Status.FAILED,
            claim_token=None,
            finished_at=now,
            error_category=Report.ErrorCategory.STUCK,
            error_message=f"No result within {timeout} s on the last allowed attempt.",
            error_at=now,
        )

    def claim(
        self, limit: int, *, now: datetime.datetime | None = None
    ) -> list["Report"]:
        """Moves up to ``limit`` ready reports to ``processing`` and returns them.

        Each claimed report has its attempts raised by one and carries the
        claim's token; two callers at the same moment never receive the same
        report. On PostgreSQL the ready rows are locked with SKIP LOCKED, so a
        concurrent claimer takes the next ones instead of waiting; elsewhere
        the UPDATE repeats the readiness condition, so a row another claimer
        took in between is simply not updated.
        """
        now = now or timezone.now()
        token = uuid.uuid4()
        with transaction.atomic():
            self.fail_exhausted_stuck(now=now)
            ready = self.ready_for_processing(limit, now=now)
            if connection.features.has_select_for_update_skip_locked:
                ready = ready.select_for_update(skip_locked=True, of=("self",))
            candidate_ids = list(ready.values_list("pk", flat=True))
            self.filter(ready_condition(now), pk__in=candidate_ids).update(
                **claim_values(now, token)
            )
            # pk__in keeps this an index lookup; claim_token has no index.
            claimed = self.filter(pk__in=candidate_ids, claim_token=token).order_by(
                "-priority", "-scraped_at", "-id"
            )
            return list(claimed)


class Report(models.Model):
    class Status(models.TextChoices):
        UNPROCESSED = "unprocessed", "Unprocessed"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"
        RETRY_PENDING = "retry_pending", "Retry pending"

    class Language(models.TextChoices):
        ARABIC = "ar", "Arabic"
        ENGLISH = "en", "English"
        MIXED = "mixed", "Mixed"
        UNKNOWN = "unknown", "Unknown"

    class Priority(models.IntegerChoices):
        NORMAL = 0, "Normal"
        HIGH = 10, "High"
        URGENT = 20, "Urgent"

    class ErrorCategory(models.TextChoices):
        RATE_LIMITED = "rate_limited", "Rate limited"
        OVERLOADED = "overloaded", "Overloaded"
        API_ERROR = "api_error", "API error"
        AUTH = "auth", "Authentication"
        SPEND_LIMIT = "spend_limit", "Spend limit reached"
        BAD_REQUEST = "bad_request", "Bad request"
        INVALID_OUTPUT = "invalid_output", "Invalid output"
        VALIDATION = "validation", "Validation"
        STUCK = "stuck", "Stuck in processing"
        INTERNAL = "internal", "Internal error"

    QUEUE_STATUSES = (Status.UNPROCESSED, Status.RETRY_PENDING, Status.PROCESSING)
    # The four token counts the API reports and bills. Every "tokens used" total
    # (results, batch summaries, report_stats, the dashboard) is the sum of all
    # four, so the figures agree with each other.
    TOKEN_FIELDS = (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
    )

    text = models.TextField(
        validators=[
            MinLengthValidator(TEXT_MIN_LENGTH),
            MaxLengthValidator(TEXT_MAX_LENGTH),
        ]
    )
    text_hash = models.CharField(
        max_length=64,
        editable=False,
        db_index=True,
        help_text="Fingerprint of the normalised text, for spotting exact reposts.",
    )
    source_url = models.URLField("source URL", max_length=1000, unique=True)
    channel = models.CharField(max_length=200, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(
        max_length=8, choices=Language.choices, default=Language.UNKNOWN
    )
    scraped_at = models.DateTimeField(default=timezone.now)
    keywords = models.JSONField(
        "keyword matches",
        default=list,
        blank=True,
        help_text="Keywords the scraper matched in the text.",
    )
    media_count = models.PositiveIntegerField(default=0)
    forwarded_from = models.CharField(max_length=200, blank=True)
    view_count = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    priority = models.SmallIntegerField(
        choices=Priority.choices,
        default=Priority.NORMAL,
        help_text="Higher priority reports are processed first.",
    )
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reposts",
        help_text="The processed report whose text this one repeats.",
    )

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.UNPROCESSED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_attempt = models.DateTimeField(null=True, blank=True)
    previous_attempt = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The last attempt before the current claim, restored on release.",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Not claimed before this time (set when a rate limit deferred it).",
    )
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    processing_time_ms = models.PositiveIntegerField(null=True, blank=True)
    violations_created = models.PositiveIntegerField(default=0)
    violations_merged = models.PositiveIntegerField(default=0)
    error_category = models.CharField(
        max_length=16, choices=ErrorCategory.choices, blank=True
    )
    error_message = models.TextField(blank=True)
    error_at = models.DateTimeField(null=True, blank=True)
    ignore_reason = models.TextField(blank=True)
    validation_errors = models.JSONField(
        default=list, blank=True, help_text="Drafts Claude returned that were rejected."
    )

    prompt_version = models.CharField(max_length=40, blank=True)
    model_name = models.CharField("Claude model", max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ReportManager()

    class Meta:
        ordering = ["-scraped_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "message_id"],
                condition=Q(message_id__isnull=False),
                name="one_report_per_channel_message",
            ),
        ]
        indexes = [
            # The queue: small (only unfinished reports), in claim order.
            models.Index(
                F("priority").desc(),
                F("scraped_at").desc(),
                name="report_queue",
                condition=Q(status__in=["unprocessed", "retry_pending", "processing"]),
            ),
            # The default ordering (newest first): the admin's list and any
            # "latest reports" query read one page of it instead of sorting
            # the whole table.
            models.Index(F("scraped_at").desc(), F("id").desc(), name="report_newest"),
            models.Index(fields=["status", "attempts"], name="report_status"),
            models.Index(fields=["last_attempt"], name="report_last_attempt"),
            models.Index(fields=["finished_at"], name="report_finished"),
        ]
        permissions = [
            ("reprocess_report", "Can send reports back for processing"),
            ("ignore_report", "Can mark reports ignored"),
            ("view_dashboard", "Can view the processing dashboard"),
        ]

    def __str__(self) -> str:
        return f"Report {self.pk} ({self.channel or self.source_url})"

    def save(self, *args, **kwargs) -> None:
        self.text_hash = text_fingerprint(self.text)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "text" in update_fields:
            kwargs["update_fields"] = {*update_fields, "text_hash"}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        limit = timezone.now() + PUBLISHED_FUTURE_TOLERANCE
        if self.published_at and self.published_at > limit:
            raise ValidationError(
                {"published_at": "The publication date is more than an hour ahead."}
            )

    # --- lifecycle ------------------------------------------------------------
    # Each transition is one conditional UPDATE naming the state it leaves; a
    # late or repeated call matches no row, changes nothing and returns False.
    # Finishing transitions also require this object's claim token, so a
    # worker whose claim expired (and was re-claimed elsewhere) cannot write.

    def mark_as_processing(self, *, now: datetime.datetime | None = None) -> bool:
        """Claims this one report if it is ready; attempts + 1, times set to now."""
        now = now or timezone.now()
        token = uuid.uuid4()
        return self._transition(ready_condition(now), **claim_values(now, token))

    def mark_as_processed(
        self,
        violation_ids: list[int],
        processing_time_ms: int,
        *,
        violations_merged: int = 0,
        now: datetime.datetime | None = None,
    ) -> bool:
        """Finishes a claimed report whose violations are already linked to it.

        ``violation_ids`` are the violations this report produced or
        corroborated; every one must already be linked, or ValueError is raised.
        """
        ids = set(violation_ids)
        # The link check rides in the UPDATE's WHERE, so the usual case is one
        # query; only a refused update looks at why.
        finished = self._finish(
            self._all_linked(ids),
            status=self.Status.PROCESSED,
            processing_time_ms=processing_time_ms,
            violations_created=len(ids) - violations_merged,
            violations_merged=violations_merged,
            error_category="",
            error_message="",
            error_at=None,
            finished_at=now or timezone.now(),
        )
        if finished:
            return True
        missing = ids - set(self.violation_ids)
        if missing:
            raise ValueError(
                f"Violations {sorted(missing)} are not linked to report {self.pk}."
            )
        return False

    def mark_as_failed(
        self,
        category: str,
        message: str,
        *,
        processing_time_ms: int | None = None,
        final: bool = False,
        now: datetime.datetime | None = None,
    ) -> bool:
        """Stores the error; ``retry_pending`` if attempts remain, else ``failed``.

        ``final`` marks an error that another attempt would meet again (a
        request the API refuses as malformed, an answer cut off at the output
        limit): the report is ``failed`` at once instead of spending its
        remaining attempts on the same outcome.
        """
        now = now or timezone.now()
        exhausted = final or self.attempts >= settings.REPORTS_MAX_ATTEMPTS
        return self._finish(
            status=self.Status.FAILED if exhausted else self.Status.RETRY_PENDING,
            error_category=self.ErrorCategory(category),
            error_message=message[:5000],
            error_at=now,
            processing_time_ms=processing_time_ms,
            finished_at=now,
        )

    def mark_as_ignored(
        self,
        reason: str,
        *,
        processing_time_ms: int | None = None,
        now: datetime.datetime | None = None,
    ) -> bool:
        """Marks a report that describes no violation.

        Leaves ``processing`` (with this object's claim), or, when staff
        ignore it by hand, any status that produced no violations yet.
        """
        if not reason.strip():
            raise ValueError("A reason is required to ignore a report.")
        by_hand = Q(
            status__in=[
                self.Status.UNPROCESSED,
                self.Status.RETRY_PENDING,
                self.Status.FAILED,
            ]
        )
        claimed = Q(status=self.Status.PROCESSING, claim_token=self.claim_token)
        return self._transition(
            by_hand | claimed if self.claim_token else by_hand,
            status=self.Status.IGNORED,
            ignore_reason=reason.strip(),
            processing_time_ms=processing_time_ms,
            finished_at=now or timezone.now(),
            claim_token=None,
        )

    def release(
        self,
        *,
        not_before: datetime.datetime | None = None,
        error_category: str = "",
        error_message: str = "",
        now: datetime.datetime | None = None,
    ) -> bool:
        """Gives a claimed report back untouched: the attempt is not spent.

        Used when the report was never worked on (the batch stopped) or the
        API refused the call for reasons not the report's own (rate, load, the
        account). The attempt count and last attempt go back to what they were
        before the claim, and the status to ``unprocessed`` (no attempt spent
        yet) or ``retry_pending``. With ``error_category`` the refusal is
        stored as the report's error (category, message, time); without it
        the error fields are left as they were.
        """
        back_to = (
            self.Status.RETRY_PENDING if self.attempts > 1 else self.Status.UNPROCESSED
        )
        error = {}
        if error_category:
            error = {
                "error_category": self.ErrorCategory(error_category),
                "error_message": error_message[:5000],
                "error_at": now or timezone.now(),
            }
        return self._finish(
            status=back_to,
            attempts=F("attempts") - 1,
            last_attempt=F("previous_attempt"),
            started_at=None,
            not_before=not_before,
            **error,
        )

    def reset_for_reprocessing(self) -> bool:
        """Staff send a finished report back to the queue with attempts reset."""
        return self._transition(
            ~Q(status=self.Status.PROCESSING),
            status=self.Status.UNPROCESSED,
            attempts=0,
            not_before=None,
            ignore_reason="",
            claim_token=None,
        )

    def _finish(self, condition: Q | None = None, **values: Any) -> bool:
        values.setdefault("claim_token", None)
        if self.claim_token is None:
            return False
        claimed = Q(status=self.Status.PROCESSING, claim_token=self.claim_token)
        return self._transition(claimed & (condition or Q()), **values)

    def _transition(self, condition: Q, **values: Any) -> bool:
        changed = type(self).objects.filter(condition, pk=self.pk).update(**values)
        if not changed:
            return False
        # Plain values are known; only expressions (F("attempts") - 1) need
        # the row read back.
        computed = [name for name, value in values.items() if is_expression(value)]
        for name, value in values.items():
            if name not in computed:
                setattr(self, name, value)
        if computed:
            self.refresh_from_db(fields=computed)
        return True

    def _all_linked(self, violation_ids: set[int]) -> Q | None:
        """True in SQL when every id in ``violation_ids`` is linked to this report."""
        if not violation_ids:
            return None
        links = self.violation_links.model.objects.filter(
            report=OuterRef("pk"), violation_id__in=violation_ids
        )
        linked = links.values("report").annotate(n=Count("violation_id", distinct=True))
        count = Subquery(linked.values("n"), output_field=models.IntegerField())
        return Q(Exact(count, len(violation_ids)))

    # --- derived views ----------------------------------------------------------

    @property
    def violation_ids(self) -> list[int]:
        """Every violation this report produced or corroborated."""
        return sorted(self.violation_links.values_list("violation_id", flat=True))

    @property
    def error_details(self) -> dict[str, Any] | None:
        if not self.error_category:
            return None
        return {
            "category": self.error_category,
            "message": self.error_message,
            "at": self.error_at.isoformat() if self.error_at else None,
        }

    @property
    def processing_metadata(self) -> dict[str, Any]:
        """The processing state under the names the original system used."""
        return {
            "attempts": self.attempts,
            "last_attempt": self.last_attempt,
            "processing_time_ms": self.processing_time_ms,
            "violations_created": self.violations_created,
            "error_details": self.error_details,
            "started_at": self.started_at,
        }


class Lease(models.Model):
    """A named hold on a shared resource, taken by one holder until it expires.

    Rows are the slots of the global Claude-call limit and the batch lock
    (see reports.limits). The expiry frees the hold of a process that died
    without giving it back.
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.holder or 'free'})"

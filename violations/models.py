from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
)
from django.db import models
from django.utils import timezone

from .choices import Certainty, PerpetratorAffiliation, ViolationType
from .rules import rule_errors
from .text import normalize_place


class Violation(models.Model):
    violation_type = models.CharField(
        "type", max_length=32, choices=ViolationType.choices
    )
    incident_date = models.DateField()
    reported_date = models.DateField(null=True, blank=True)

    location_name_en = models.CharField("place (English)", max_length=200, blank=True)
    location_name_ar = models.CharField("place (Arabic)", max_length=200, blank=True)
    admin_division_en = models.CharField(
        "governorate (English)", max_length=200, blank=True
    )
    admin_division_ar = models.CharField(
        "governorate (Arabic)", max_length=200, blank=True
    )
    longitude = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
    )
    latitude = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
    )
    # Normalised place names, kept in columns so the duplicate lookup is an
    # index seek rather than a scan; set by save().
    location_key_en = models.CharField(max_length=200, blank=True, editable=False)
    location_key_ar = models.CharField(max_length=200, blank=True, editable=False)

    description_en = models.TextField(
        "description (English)",
        validators=[MinLengthValidator(10), MaxLengthValidator(2000)],
    )
    description_ar = models.TextField("description (Arabic)", blank=True)
    source_en = models.TextField("source (English)", blank=True)
    source_ar = models.TextField("source (Arabic)", blank=True)
    source_urls = models.JSONField(default=list, blank=True)
    evidence = models.TextField(
        blank=True, help_text="Verbatim quote from the first report that supports it."
    )

    perpetrator_en = models.CharField(
        "perpetrator (English)", max_length=300, blank=True
    )
    perpetrator_ar = models.CharField(
        "perpetrator (Arabic)", max_length=300, blank=True
    )
    perpetrator_affiliation = models.CharField(
        max_length=40,
        choices=PerpetratorAffiliation.choices,
        default=PerpetratorAffiliation.UNKNOWN,
    )

    certainty = models.CharField(
        max_length=16, choices=Certainty.choices, default=Certainty.POSSIBLE
    )
    verified = models.BooleanField(default=False)
    verification_method = models.CharField(max_length=300, blank=True)

    casualties = models.PositiveIntegerField("deaths", default=0)
    injured = models.PositiveIntegerField(default=0)
    kidnapped = models.PositiveIntegerField(default=0)
    detained = models.PositiveIntegerField(default=0)
    displaced = models.PositiveIntegerField(default=0)
    victims = models.JSONField(
        default=list,
        blank=True,
        help_text="List of {name, age, gender, status, group_affiliation, death_date}.",
    )
    media_links = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)

    flagged = models.BooleanField(
        default=False,
        help_text="A figure or place could not be found in the source text; "
        "needs review before publication.",
    )
    flag_reasons = models.JSONField(default=list, blank=True)

    report = models.ForeignKey(
        "reports.Report",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="first_violations",
        help_text="The report that first produced this violation.",
    )
    reports = models.ManyToManyField(
        "reports.Report",
        through="ViolationSource",
        related_name="violations",
        blank=True,
    )

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-incident_date", "-id"]
        indexes = [
            # Duplicate candidates: same type, a date window, then the place.
            models.Index(
                fields=["violation_type", "incident_date", "location_key_en"],
                name="violation_dup_en",
            ),
            models.Index(
                fields=["violation_type", "incident_date", "location_key_ar"],
                name="violation_dup_ar",
            ),
        ]
        permissions = [
            ("verify_violation", "Can mark violations verified or unverified"),
            ("split_violation", "Can split a merged source back out"),
            ("export_violation", "Can export violations"),
        ]

    def __str__(self) -> str:
        place = self.location_name_en or self.location_name_ar or "unknown place"
        return f"{self.get_violation_type_display()} in {place} on {self.incident_date}"

    def save(self, *args, **kwargs) -> None:
        self.location_key_en = normalize_place(self.location_name_en)
        self.location_key_ar = normalize_place(self.location_name_ar)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {
                *update_fields,
                "location_key_en",
                "location_key_ar",
                "updated_at",
            }
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        if not (self.location_name_en or self.location_name_ar):
            raise ValidationError(
                {"location_name_en": "A place name, English or Arabic, is required."}
            )
        errors = rule_errors(self.__dict__, today=timezone.localdate())
        if errors:
            raise ValidationError(errors)

    def link_to_report(self, report, *, role: str = "created", **details) -> bool:
        """Records ``report`` as a source of this violation.

        The first report becomes ``report`` (``report_id``) and stays so; any
        later one is added as a further source. Returns False when the report
        was already linked (nothing changes then).
        """
        if self.report_id is None:
            type(self).objects.filter(pk=self.pk, report__isnull=True).update(
                report=report
            )
            self.refresh_from_db(fields=["report"])
        _, created = ViolationSource.objects.get_or_create(
            violation=self, report=report, defaults={"role": role, **details}
        )
        return created

    @property
    def report_ids(self) -> list[int]:
        """Every report behind this violation, first one first."""
        return list(
            self.sources.order_by("created_at", "id").values_list(
                "report_id", flat=True
            )
        )


class ViolationSource(models.Model):
    """One report's account of a violation: the link both ways, and the merge record."""

    class Role(models.TextChoices):
        CREATED = "created", "Created it"
        MERGED = "merged", "Merged into it"
        REPOST = "repost", "Exact repost"

    violation = models.ForeignKey(
        Violation, on_delete=models.CASCADE, related_name="sources"
    )
    report = models.ForeignKey(
        "reports.Report", on_delete=models.PROTECT, related_name="violation_links"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    similarity = models.FloatField(
        null=True, blank=True, help_text="Score that matched it to the violation."
    )
    figures = models.JSONField(
        default=dict, blank=True, help_text="The counts this source itself reported."
    )
    description = models.TextField(blank=True)
    draft = models.JSONField(
        default=dict, blank=True, help_text="The validated draft this source gave."
    )
    changes = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the merge changed on the violation: {field: [before, after]}.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["violation", "report"], name="one_link_per_report"
            )
        ]
        indexes = [models.Index(fields=["report", "violation"], name="source_report")]

    def __str__(self) -> str:
        return f"report {self.report_id} -> violation {self.violation_id} ({self.role})"

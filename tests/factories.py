"""factory-boy factories for every model the tests create."""

import copy
import datetime

import factory
from django.utils import timezone

from reports.models import Report
from violations.choices import Certainty, PerpetratorAffiliation, ViolationType
from violations.models import Violation, ViolationSource


class ReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Report

    text = factory.Sequence(
        lambda n: f"قصف جوي على بلدة كفرنبل أدى إلى مقتل 3 مدنيين، رسالة رقم {n}"
    )
    source_url = factory.Sequence(lambda n: f"https://t.me/syria_news/{n}")
    channel = "syria_news"
    message_id = factory.Sequence(lambda n: n)
    language = Report.Language.ARABIC
    published_at = factory.LazyFunction(
        lambda: timezone.now() - datetime.timedelta(hours=2)
    )
    scraped_at = factory.LazyFunction(timezone.now)


class ViolationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Violation

    violation_type = ViolationType.AIRSTRIKE
    incident_date = factory.LazyFunction(
        lambda: timezone.localdate() - datetime.timedelta(days=1)
    )
    location_name_en = "Kafranbel"
    location_name_ar = "كفرنبل"
    admin_division_en = "Idlib"
    admin_division_ar = "إدلب"
    description_en = "An airstrike on Kafranbel killed three civilians."
    perpetrator_affiliation = PerpetratorAffiliation.UNKNOWN
    certainty = Certainty.PROBABLE
    casualties = 3


class ViolationSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ViolationSource

    violation = factory.SubFactory(ViolationFactory)
    report = factory.SubFactory(ReportFactory)
    role = ViolationSource.Role.CREATED


def violation_draft(**overrides) -> dict:
    """A validated draft as ``ViolationDraft.violation_fields()`` returns it."""
    values = {
        "violation_type": ViolationType.AIRSTRIKE,
        "incident_date": datetime.date(2025, 3, 14),
        "reported_date": None,
        "location_name_en": "Kafranbel",
        "location_name_ar": "كفرنبل",
        "admin_division_en": "Idlib",
        "admin_division_ar": "إدلب",
        "longitude": None,
        "latitude": None,
        "description_en": "An airstrike hit the market in Kafranbel, killing "
        "three civilians and injuring five others.",
        "description_ar": "غارة جوية استهدفت سوق كفرنبل أدت إلى مقتل ثلاثة "
        "مدنيين وإصابة خمسة آخرين",
        "perpetrator_en": "",
        "perpetrator_ar": "",
        "perpetrator_affiliation": PerpetratorAffiliation.UNKNOWN,
        "certainty": Certainty.PROBABLE,
        "casualties": 3,
        "injured": 5,
        "kidnapped": None,
        "detained": None,
        "displaced": None,
        "victims": [],
        "media_links": [],
        "tags": ["market"],
        "evidence": "قصف جوي على سوق كفرنبل",
        "flagged": False,
        "flag_reasons": [],
    }
    values.update(overrides)
    return values


def violation_item(**overrides) -> dict:
    """One item of Claude's ``record_violations`` input, English, grounded.

    The defaults describe the report text ``incident_text()`` returns.
    """
    item = {
        "violation_type": "AIRSTRIKE",
        "incident_date": (timezone.now() - datetime.timedelta(hours=2))
        .date()
        .isoformat(),
        "location_name_en": "Kafranbel",
        "location_name_ar": "",
        "admin_division_en": "Idlib",
        "admin_division_ar": "",
        "latitude": None,
        "longitude": None,
        "description_en": "An airstrike on Kafranbel killed 3 civilians.",
        "description_ar": "",
        "perpetrator_en": "Unknown",
        "perpetrator_ar": "",
        "perpetrator_affiliation": "unknown",
        "certainty": "probable",
        "casualties": 3,
        "injured": None,
        "kidnapped": None,
        "detained": None,
        "displaced": None,
        "victims": [],
        "tags": ["airstrike"],
        "evidence": "An airstrike on Kafranbel in Idlib this morning killed 3",
    }
    item.update(overrides)
    return item


def shelling_item(**overrides) -> dict:
    """One item of Claude's ``record_violations`` input, Arabic and English.

    It describes the Kafr Nabl shelling of 14 March 2025 (three killed, five
    injured) as the Arabic report texts of the extraction and schema tests
    tell it; keys not given here are ``violation_item``'s.
    """
    shelling = {
        "violation_type": "SHELLING",
        "incident_date": "2025-03-14",
        "location_name_en": "Kafr Nabl",
        "location_name_ar": "كفرنبل",
        "admin_division_ar": "إدلب",
        "description_en": "Artillery shelling killed three civilians.",
        "description_ar": "قصف مدفعي أدى إلى مقتل ثلاثة مدنيين.",
        "perpetrator_en": "",
        "injured": 5,
        "tags": ["shelling"],
        "evidence": "استشهاد 3 مدنيين وإصابة 5 آخرين",
    }
    return violation_item(**{**shelling, **overrides})


def tool_input(*items: dict, reason: str = "") -> dict:
    """Claude's whole ``record_violations`` input: copies of ``items``, a reason."""
    return {
        "violations": [copy.deepcopy(item) for item in items],
        "no_violation_reason": reason,
    }


def incident_text(place: str = "Kafranbel", killed: int = 3) -> str:
    return (
        f"An airstrike on {place} in Idlib this morning killed {killed} "
        "civilians, local medics said."
    )


def incident_tool_input(place: str = "Kafranbel", killed: int = 3) -> dict:
    """The tool input Claude returns for ``incident_text(place, killed)``."""
    item = violation_item(
        location_name_en=place,
        description_en=f"An airstrike on {place} killed {killed} civilians.",
        casualties=killed,
        evidence=f"An airstrike on {place} in Idlib this morning killed {killed}",
    )
    return tool_input(item)

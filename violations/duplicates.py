"""Finding the known violation a new account describes, if any.

A draft is compared only with its *candidate block*: violations of the same
type, with an incident date within VIOLATIONS_DUPLICATE_DATE_WINDOW_DAYS, at
the same place. The block comes from one indexed query
(``violation_type`` + ``incident_date`` range lead both duplicate indexes), so
its size depends on how many incidents share a type and a few days, not on
the size of the register.

Same place means the normalised English or Arabic place name is equal; or one
name is the other with PLACE_QUALIFIERS added at either end ("Buraq" and
"Buraq junction", "براق" and "مفرق براق") and the two governorates do not
differ (stated on both sides and unequal); or both accounts carry coordinates
within VIOLATIONS_DUPLICATE_RADIUS_KM (a bounding box in SQL, then the exact
great-circle distance here). Words for an area around a place are not
qualifiers, so "Damascus countryside" (Rif Dimashq) never meets "Damascus",
nor "Idlib countryside" the city of Idlib. Type, date window and place are
hard gates: like conflict-event datasets such as ACLED, an account of another
type, day or place is another incident however similar its wording.

Every candidate in the block is scored and the highest score wins; it is a
duplicate when the score reaches VIOLATIONS_DUPLICATE_THRESHOLD. The score is
a weighted sum of parts in [0, 1]::

    score = 0.30 text + 0.25 counts + 0.20 actor + 0.15 place + 0.10 date

- text: rapidfuzz similarity of the normalised descriptions, the mean of
  ``token_set_ratio`` (word overlap, forgiving of one account saying more)
  and ``token_sort_ratio`` (penalises what only one side says), taken per
  language where both sides have a description; the best language counts.
- counts: over the counts both sides state, the mean of min / max ("3
  killed" and "4 killed" agree at 0.75; a count only one side states is left
  out, as later accounts add the wounded); 0 when each side states counts but
  none in common ("2 killed" and "4 wounded"); NO_COUNTS (0.75) when neither
  states any.
- actor: 1 for the same perpetrator affiliation, UNKNOWN_ACTOR (0.75) when
  either side is unknown, 0 when two different known actors are named.
- place: 1 when a place name matches, QUALIFIED_PLACE (0.9) for a name with
  qualifiers, else 1 - distance / radius.
- date: 1 on the same day, falling linearly to 1 / (window + 1) at the edge.

As in ACLED's coding, an account of the same type, day, place, actor and toll
is the same event, so the wording is a tie-breaker: with everything else
agreeing it must reach 0.5 (0.54 when neither side states a count, 0.67
a day apart or with an unknown actor).
Disagreement is carried by the structured parts: two different known actors
cap the score at 0.80 and tolls that share no count at 0.75, below the default
threshold of 0.85 whatever the wording. On the bundled samples
(``benchmarks/merge_quality.py``) this finds all 10 labelled merges with no
false merge; the formula before it (0.55 text, 0.15 place, 0.10 each for date,
actor and counts, equal names only) found 4.
"""

import dataclasses
import datetime
import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from rapidfuzz import fuzz

from .choices import COUNT_FIELDS, PerpetratorAffiliation
from .models import Violation
from .text import normalize_place, normalize_text

WEIGHTS = {"text": 0.30, "counts": 0.25, "actor": 0.20, "place": 0.15, "date": 0.10}
# Agreement given when the evidence is missing rather than contrary: one side
# names no actor, or neither side states any count.
UNKNOWN_ACTOR = 0.75
NO_COUNTS = 0.75
# A place name with one of these words added still names the same place: "Buraq
# junction" is at Buraq. Words for an area around a place ("countryside",
# "ريف", "governorate") are left out on purpose: "Damascus countryside" is
# another governorate than Damascus, and "Idlib countryside" is not Idlib city.
PLACE_QUALIFIERS = frozenset(
    {
        *("junction", "crossroads", "roundabout", "entrance", "outskirts"),
        *("centre", "center", "city", "town", "village"),
        *("neighbourhood", "neighborhood", "of", "the"),
        *("مفرق", "دوار", "مدخل", "اطراف", "وسط", "مدينه", "بلده", "قريه", "حي"),
    }
)
QUALIFIED_PLACE = 0.9
EARTH_RADIUS_KM = 6371.0
KM_PER_DEGREE = 111.2


@dataclasses.dataclass(frozen=True)
class Match:
    """The best candidate for a draft, its score, and how many were compared."""

    violation: Violation | None
    similarity: float
    compared: int

    def is_duplicate(self) -> bool:
        """True when the best score reaches the threshold configured now."""
        threshold = settings.VIOLATIONS_DUPLICATE_THRESHOLD
        return self.violation is not None and self.similarity >= threshold


def find_duplicate(
    values: Mapping[str, Any], *, exclude_ids: Iterable[int] = ()
) -> Match:
    """Scores every violation in the draft's block; returns the best one.

    ``values`` are Violation field values (a draft). The returned Match has no
    violation when the block is empty; check ``is_duplicate()`` for the
    threshold. Reads only.
    """
    best: Violation | None = None
    best_score = 0.0
    compared = 0
    for candidate in candidate_block(values).exclude(pk__in=list(exclude_ids)):
        score = similarity(values, candidate)
        if score is None:
            continue
        compared += 1
        # The block is read oldest first, so on a tie the older violation wins.
        if score > best_score:
            best, best_score = candidate, score
    return Match(best, round(best_score, 4), compared)


def lock_candidate_blocks(drafts: Iterable[Mapping[str, Any]]) -> list[int]:
    """Serialises writers that could match the same incident; returns the keys.

    On PostgreSQL this takes a transaction-level advisory lock per (type,
    day) for every day in each draft's date window, all at once and in
    ascending order, so two writers never deadlock on each other. Two drafts
    whose windows share a day (the only ones that can meet in one block) wait
    for each other, and the second one's lookup sees the first one's commit.
    The key leaves the place out on purpose: "same place" includes a radius
    around coordinates, which does not cut the map into disjoint keys.
    Must run inside a transaction; the locks last until it ends. SQLite needs
    nothing: its immediate transactions already admit one writer at a time.
    """
    if connection.vendor != "postgresql":
        return []
    keys = sorted({key for values in drafts for key in block_keys(values)})
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    return keys


def candidate_block(values: Mapping[str, Any]) -> Any:
    """Violations of the draft's type, date window and place, oldest first.

    The place condition is only a pre-filter for coordinates (a bounding box);
    ``similarity`` applies the exact distance.
    """
    incident = _as_date(values["incident_date"])
    window = datetime.timedelta(days=settings.VIOLATIONS_DUPLICATE_DATE_WINDOW_DAYS)
    place = _place_condition(values)
    if place is None:
        return Violation.objects.none()
    return Violation.objects.filter(
        place,
        violation_type=values["violation_type"],
        incident_date__range=(incident - window, incident + window),
    ).order_by("id")


def similarity(values: Mapping[str, Any], violation: Violation) -> float | None:
    """The weighted score in [0, 1], or None when a hard gate fails."""
    place = place_agreement(values, violation)
    date = date_agreement(values, violation)
    if place is None or date is None:
        return None
    if values["violation_type"] != violation.violation_type:
        return None
    parts = {
        "text": text_similarity(values, violation),
        "place": place,
        "date": date,
        "actor": actor_agreement(values, violation),
        "counts": count_agreement(values, violation),
    }
    return sum(WEIGHTS[name] * part for name, part in parts.items())


def text_similarity(values: Mapping[str, Any], violation: Violation) -> float:
    """Best per-language similarity of the normalised descriptions, 0 to 1."""
    scores = []
    for field in ("description_en", "description_ar"):
        ours = normalize_text(values.get(field) or "")
        theirs = normalize_text(getattr(violation, field) or "")
        if ours and theirs:
            set_ratio = fuzz.token_set_ratio(ours, theirs)
            sort_ratio = fuzz.token_sort_ratio(ours, theirs)
            scores.append((set_ratio + sort_ratio) / 200)
    return max(scores, default=0.0)


def place_agreement(values: Mapping[str, Any], violation: Violation) -> float | None:
    """How surely two accounts name one place, or None when they are apart.

    1 for an equal place name, QUALIFIED_PLACE for a name that is the other
    plus qualifiers (in governorates that do not differ), less for nearby
    coordinates.
    """
    for language in ("en", "ar"):
        key = normalize_place(values.get(f"location_name_{language}") or "")
        if key and key == getattr(violation, f"location_key_{language}"):
            return 1.0
    if _qualified_match(values, violation):
        return QUALIFIED_PLACE
    distance = _distance_km(values, violation)
    radius = settings.VIOLATIONS_DUPLICATE_RADIUS_KM
    if distance is None or distance > radius:
        return None
    return 1.0 - distance / radius if radius else 1.0


def date_agreement(values: Mapping[str, Any], violation: Violation) -> float | None:
    """1 on the same day, lower across the window, None outside it."""
    window = settings.VIOLATIONS_DUPLICATE_DATE_WINDOW_DAYS
    days = abs((_as_date(values["incident_date"]) - violation.incident_date).days)
    if days > window:
        return None
    return 1.0 - days / (window + 1)


def actor_agreement(values: Mapping[str, Any], violation: Violation) -> float:
    """1 for one actor, UNKNOWN_ACTOR when a side names none, 0 for two actors."""
    ours = values.get("perpetrator_affiliation") or PerpetratorAffiliation.UNKNOWN
    theirs = violation.perpetrator_affiliation
    if ours == theirs:
        return 1.0
    if PerpetratorAffiliation.UNKNOWN in (ours, theirs):
        return UNKNOWN_ACTOR
    return 0.0


def count_agreement(values: Mapping[str, Any], violation: Violation) -> float:
    """How well the tolls agree, 0 to 1.

    Only counts both sides state are compared (min / max, averaged): a later
    account often adds the wounded to the same dead ("9 killed" and "9 killed,
    22 wounded"). Tolls that share no count ("2 killed" and "4 wounded") are
    0, two different events. NO_COUNTS when neither side states any. A stored
    0 reads as "not stated", because a draft's missing count is stored as 0.
    """
    ours = {field: values.get(field) or 0 for field in COUNT_FIELDS}
    theirs = {field: getattr(violation, field) or 0 for field in COUNT_FIELDS}
    shared = [field for field in COUNT_FIELDS if ours[field] and theirs[field]]
    if shared:
        ratios = [min(ours[f], theirs[f]) / max(ours[f], theirs[f]) for f in shared]
        return sum(ratios) / len(ratios)
    if any(ours.values()) or any(theirs.values()):
        return 0.0
    return NO_COUNTS


def place_core(key: str) -> str:
    """A normalised place name without PLACE_QUALIFIERS at either end.

    "buraq junction" and "مفرق براق" give "buraq" and "براق"; a name made only
    of qualifiers gives "".
    """
    words = key.split()
    while words and words[0] in PLACE_QUALIFIERS:
        words.pop(0)
    while words and words[-1] in PLACE_QUALIFIERS:
        words.pop()
    return normalize_place(" ".join(words))


def _qualified_match(values: Mapping[str, Any], violation: Violation) -> bool:
    """One place name is the other plus qualifiers, and no governorate differs.

    A governorate stated on one side only does not differ: reports of a road
    junction often name no governorate.
    """
    if _governorates_differ(values, violation):
        return False
    for language in ("en", "ar"):
        ours = normalize_place(values.get(f"location_name_{language}") or "")
        theirs = getattr(violation, f"location_key_{language}") or ""
        core = place_core(ours)
        if core and core == place_core(theirs):
            return True
    return False


def _governorates_differ(values: Mapping[str, Any], violation: Violation) -> bool:
    compared = []
    for language in ("en", "ar"):
        field = f"admin_division_{language}"
        ours = normalize_place(values.get(field) or "")
        theirs = normalize_place(getattr(violation, field) or "")
        if ours and theirs:
            compared.append(ours == theirs)
    return bool(compared) and not any(compared)


def _place_condition(values: Mapping[str, Any]) -> Q | None:
    condition = Q()
    matched = False
    for language in ("en", "ar"):
        key = normalize_place(values.get(f"location_name_{language}") or "")
        if key:
            condition |= Q(**{f"location_key_{language}": key})
            matched = True
        core = place_core(key)
        if core:
            # A superset of the qualified names ("buraq" is in "buraq
            # junction"); place_agreement keeps the true ones. It only filters
            # the rows the type + date range of the index has already chosen.
            condition |= Q(**{f"location_key_{language}__contains": core})
    box = _bounding_box(values)
    if box is not None:
        condition |= box
        matched = True
    return condition if matched else None


def _bounding_box(values: Mapping[str, Any]) -> Q | None:
    latitude, longitude = values.get("latitude"), values.get("longitude")
    if latitude is None or longitude is None:
        return None
    radius = settings.VIOLATIONS_DUPLICATE_RADIUS_KM
    lat_span = radius / KM_PER_DEGREE
    # A degree of longitude shrinks towards the poles; the floor keeps the box
    # finite at a pole (a wider box only admits more rows to the exact check).
    lon_span = radius / (KM_PER_DEGREE * max(math.cos(math.radians(latitude)), 0.01))
    return Q(
        latitude__range=(latitude - lat_span, latitude + lat_span),
        longitude__range=(longitude - lon_span, longitude + lon_span),
    )


def _distance_km(values: Mapping[str, Any], violation: Violation) -> float | None:
    """Great-circle (haversine) distance, or None when either side has no point."""
    points = (
        values.get("latitude"),
        values.get("longitude"),
        violation.latitude,
        violation.longitude,
    )
    if any(value is None for value in points):
        return None
    lat1, lon1, lat2, lon2 = (math.radians(value) for value in points)
    half = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(half, 1.0)))


def block_keys(values: Mapping[str, Any]) -> list[int]:
    """Advisory-lock keys for each day of the draft's window (none if unreadable)."""
    try:
        incident = _as_date(values["incident_date"])
        kind = str(values["violation_type"])
    except (KeyError, TypeError, ValueError):
        # Such a draft fails validation before it can match or create anything.
        return []
    window = settings.VIOLATIONS_DUPLICATE_DATE_WINDOW_DAYS
    days = (incident + datetime.timedelta(days=n) for n in range(-window, window + 1))
    return [_lock_key(f"violation-block:{kind}:{day.isoformat()}") for day in days]


def _lock_key(name: str) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _as_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value))

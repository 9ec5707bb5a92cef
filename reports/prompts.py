"""The instructions Claude extracts violations with, and the tool it answers through.

``PROMPT_VERSION`` is stored on every processed report. Change it with any
change to the prompt, the tool schema or the vague-quantity figures, so a
difference in results can be traced to the prompt that produced it.
"""

import datetime
from typing import Any

from django.utils import timezone

from violations.schema import tool_input_schema

PROMPT_VERSION = "2026-12-03.1"
TOOL_NAME = "record_violations"

SYSTEM_PROMPT = """\
You extract human-rights violations in Syria from one short post (Telegram or \
news, Arabic or English) for a documentation team that publishes the figures. \
Record every violation the post reports by calling record_violations once.

Rules:
- Never invent. Every number, place, date and perpetrator must come from the \
post. A figure the post does not state is null; a perpetrator it does not name \
is empty with affiliation "unknown"; coordinates only if the post gives them.
- One violation per distinct incident: an airstrike on two towns is two; the \
dead and injured of one attack are one violation.
- Counts are people, not events: casualties (killed), injured, kidnapped, \
detained, displaced. Count each person once, in the field that fits.
- A vague quantity takes its least figure: several, a few, عدة, بضع, بضعة = 3; a \
dozen = 12; dozens, عشرات = 24; hundreds, مئات = 200; thousands, آلاف = 2000.
- Dates as YYYY-MM-DD. A month alone means its first day; a range, its first \
day; "yesterday", "today", "last night" count from the post's date. No date in \
the post: use the post's date.
- Keep place names in both languages: Arabic as the post writes it (or the \
usual Arabic name), English in its common spelling. Add the governorate when \
it is known.
- evidence: a short quote copied character for character from the post, in \
its language, that supports the violation. Do not translate or paraphrase it.
- certainty: "confirmed" when the post states it as fact from a named or \
first-hand source; "probable" when stated without a source; "possible" when \
it is a claim, rumour or unconfirmed report.
- No violation (news analysis, political statements, adverts, military \
movements without harm): return an empty list and say why in \
no_violation_reason.

Types:
- AIRSTRIKE: bombing from aircraft or drones.
- CHEMICAL_ATTACK: chemical or toxic agents used on people.
- DETENTION: arrest or holding by a state or de facto authority.
- DISPLACEMENT: people forced from their homes.
- EXECUTION: killing of a captive or a summary killing by an armed party.
- SHELLING: artillery, mortar, rocket or tank fire.
- SIEGE: encirclement cutting people off from food, medicine or movement.
- TORTURE: torture or cruel treatment, including deaths in custody.
- MURDER: a deliberate killing not covered by a more specific type.
- SHOOTING: people shot by gunfire, sniping or at checkpoints.
- HOME_INVASION: raids, looting or seizure of homes.
- EXPLOSION: car bombs, IEDs and other explosive devices.
- AMBUSH: a surprise armed attack on people or vehicles.
- KIDNAPPING: abduction by a non-state group or unknown persons.
- LANDMINE: landmines and unexploded ordnance.
- OTHER: a violation that fits none of the above.

perpetrator_affiliation:
- assad_regime: Syrian government forces and their militias before 8 December \
2024 (the fall of the Assad government).
- post_8th_december_government: the government's forces and security services \
from 8 December 2024 on. Decide by the incident date.
- isis, sdf, israel, turkey, russia: the named state or group and forces it \
directs; Turkish-backed Syrian factions count as turkey.
- druze_militias, bedouins, iran_shia_militias, international_coalition: as \
named.
- various_armed_groups: other armed factions, or several groups together.
- unknown: the post does not say who, or says "unknown gunmen"."""


def record_violations_tool() -> dict[str, Any]:
    """The one tool Claude must call; ``strict`` makes the API enforce its schema."""
    return {
        "name": TOOL_NAME,
        "description": "Record the violations reported in the post.",
        "input_schema": tool_input_schema(),
        "strict": True,
    }


def build_user_message(report: Any) -> str:
    """The report with the context the model needs: channel, URL and date."""
    return (
        f"Channel: {report.channel or 'unknown'}\n"
        f"Source URL: {report.source_url}\n"
        f"Post date: {_post_date(report)}\n"
        "\n"
        f"<post>\n{report.text.strip()}\n</post>"
    )


def _post_date(report: Any) -> str:
    published = report.published_at or report.scraped_at
    if published is None:
        return "unknown"
    if isinstance(published, datetime.datetime) and timezone.is_aware(published):
        published = timezone.localtime(published)
    return published.date().isoformat()


def report_date(report: Any) -> datetime.date | None:
    """The date relative days in the report are counted from."""
    value = _post_date(report)
    return None if value == "unknown" else datetime.date.fromisoformat(value)

"""Checks that a draft says only what its report says.

Claude may misread or invent; the register publishes figures. Three checks
compare a draft with the report's own text, all on text normalised by
``violations.text`` (diacritics, letter variants, digits of any script, case,
punctuation and spacing folded away):

Evidence quote (rejects)
    The draft's ``evidence`` must occur in the report, word for word after
    normalising. A quote elided with "..." or "…" must have every piece in the
    report. A draft whose quote is not there is rejected: nothing ties it to
    the report.

Figures (flags)
    Each count (casualties, injured, kidnapped, detained, displaced) must be a
    figure the report states:

    - digits in any script, Arabic-Indic and Persian included ("٣" is 3;
      "1,200" and "١٬٢٠٠" are 1200);
    - an English or Arabic number word or compound: "three", "twenty-five",
      "two hundred", "ثلاثة", "خمسة وعشرون", "ثلاثة عشر", "مئتان", "ألف";
    - an Arabic dual of a word for people ("شابين", "طفلان"), which states 2;
    - a vague quantity, which states only its conservative figure, the least
      number the word can mean: "several", "a few", "عدة", "بضعة" -> 3;
      "a dozen" -> 12; "dozens", "عشرات" -> 24 (two dozen); "hundreds",
      "مئات" -> 200; "thousands", "آلاف" -> 2000. A vague word grounds that one
      figure, not a range: "dozens" and a figure of 40 is an estimate the report
      does not make.
    - 1 is always grounded: a singular noun ("a child was killed", "استشهاد
      طفل") states one person without writing the number.

    A figure the report does not state is kept but the draft is flagged, with
    a reason naming the field and the figure, so staff review it before it is
    published. Rejecting it instead would lose incidents whose figures are sums
    of numbers stated apart ("a man and his two sons" is 3), which review can
    confirm. The check is necessary, not sufficient: a figure that happens to
    appear elsewhere in the text (a date's day, another incident's toll) passes.

Place (flags)
    The English or the Arabic place name must occur in the report as a word
    (an Arabic name may carry one attached preposition or conjunction, as in
    "بحلب" or "وحلب"). A report in one language names a place in that language
    only, so one of the two is enough. If neither occurs the draft is flagged.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .choices import COUNT_FIELDS
from .text import fold_arabic, normalize_place, normalize_text

# Elision marks inside a quote: three dots or the ellipsis character.
_ELISION = re.compile(r"\.\.\.+|…")
# Digits with optional thousands separators (comma, Arabic thousands sign).
_NUMBER = re.compile(r"\d+(?:[,\u066c]\d{3})*")
_WORD = re.compile(r"\w+", re.UNICODE)

ENGLISH_UNITS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
ENGLISH_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
ENGLISH_SCALES = {"hundred": 100, "thousand": 1000}

# Arabic number words, with both case endings where they differ; the tables
# are folded (alef and yeh forms, teh marbuta) once below, like the text.
ARABIC_UNITS = {
    "واحد": 1,
    "واحده": 1,
    "اثنان": 2,
    "اثنين": 2,
    "اثنتان": 2,
    "اثنتين": 2,
    "ثلاث": 3,
    "ثلاثه": 3,
    "اربع": 4,
    "اربعه": 4,
    "خمس": 5,
    "خمسه": 5,
    "ست": 6,
    "سته": 6,
    "سبع": 7,
    "سبعه": 7,
    "ثمان": 8,
    "ثماني": 8,
    "ثمانيه": 8,
    "تسع": 9,
    "تسعه": 9,
}
ARABIC_TEN = {"عشر": 10, "عشره": 10}
# "احد عشر" is 11 and "اثنا عشر" 12; alone, "احد" means "one of".
ARABIC_TEEN_HEADS = {"احد": 1, "احدي": 1, "اثنا": 2, "اثني": 2}
ARABIC_TENS = {
    "عشرون": 20,
    "عشرين": 20,
    "ثلاثون": 30,
    "ثلاثين": 30,
    "اربعون": 40,
    "اربعين": 40,
    "خمسون": 50,
    "خمسين": 50,
    "ستون": 60,
    "ستين": 60,
    "سبعون": 70,
    "سبعين": 70,
    "ثمانون": 80,
    "ثمانين": 80,
    "تسعون": 90,
    "تسعين": 90,
}
ARABIC_HUNDREDS = {
    "مئه": 100,
    "مائه": 100,
    "مئتان": 200,
    "مئتين": 200,
    "مائتان": 200,
    "مائتين": 200,
    "الف": 1000,
    "الفان": 2000,
    "الفين": 2000,
}
# After a unit: "ثلاثة آلاف" is 3000, "خمس مئة" 500.
ARABIC_MULTIPLIERS = {"مئه": 100, "مائه": 100, "الف": 1000, "الاف": 1000}
# Duals of words for people: the ending itself says "two". Plurals that are
# spelled like a dual (مدنيين, مواطنين) are left out on purpose.
ARABIC_PEOPLE_DUALS = {
    "شخصين",
    "شخصان",
    "طفلين",
    "طفلان",
    "شابين",
    "شابان",
    "رجلين",
    "رجلان",
    "امراتين",
    "امراتان",
    "سيدتين",
    "فتاتين",
    "طفلتين",
    "شقيقين",
    "شقيقان",
    "اخوين",
    "شهيدين",
    "شهيدان",
    "قتيلين",
    "قتيلان",
    "جريحين",
    "جريحان",
    "عنصرين",
}
VAGUE_QUANTITIES = {
    "several": 3,
    "few": 3,
    "عده": 3,
    "بضعه": 3,
    "بضع": 3,
    "dozen": 12,
    "dozens": 24,
    "عشرات": 24,
    "hundreds": 200,
    "مئات": 200,
    "thousands": 2000,
    "الاف": 2000,
}


def _folded(words: dict[str, int] | set[str]) -> Any:
    """The table with its words spelled as fold_arabic leaves them."""
    if isinstance(words, set):
        return {fold_arabic(word) for word in words}
    return {fold_arabic(word): value for word, value in words.items()}


ARABIC_UNITS = _folded(ARABIC_UNITS)
ARABIC_TEN = _folded(ARABIC_TEN)
ARABIC_TEEN_HEADS = _folded(ARABIC_TEEN_HEADS)
ARABIC_TENS = _folded(ARABIC_TENS)
ARABIC_HUNDREDS = _folded(ARABIC_HUNDREDS)
ARABIC_MULTIPLIERS = _folded(ARABIC_MULTIPLIERS)
ARABIC_PEOPLE_DUALS = _folded(ARABIC_PEOPLE_DUALS)
VAGUE_QUANTITIES = _folded(VAGUE_QUANTITIES)

# The Arabic conjunction "و" joins the parts of a compound number, attached
# to the next word ("خمسة وعشرون").
_CONJUNCTION = "و"


@dataclass
class Grounding:
    """What the report does not support: ``errors`` reject, ``flags`` flag."""

    errors: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def check_draft(values: dict[str, Any], report_text: str) -> Grounding:
    """Grounding of one draft's values (plain field values) in ``report_text``."""
    text = normalize_text(report_text)
    result = Grounding()

    evidence = values.get("evidence") or ""
    if not quote_in_text(evidence, text):
        result.errors.append(
            f"evidence: the quote {evidence[:120]!r} does not occur in the report."
        )

    figures = stated_figures(report_text)
    for name in COUNT_FIELDS:
        count = values.get(name)
        if count and count != 1 and count not in figures:
            result.flags.append(
                f"{name}: the figure {count} does not appear in the report."
            )

    if not place_in_text(values, text):
        place = values.get("location_name_en") or values.get("location_name_ar")
        result.flags.append(f"location: {place!r} is not named in the report.")
    return result


def quote_in_text(quote: str, normalized_text: str) -> bool:
    """True when every elided piece of ``quote`` occurs as whole words."""
    pieces = [normalize_text(piece) for piece in _ELISION.split(quote)]
    pieces = [piece for piece in pieces if piece]
    haystack = f" {normalized_text} "
    return bool(pieces) and all(f" {piece} " in haystack for piece in pieces)


def place_in_text(values: dict[str, Any], normalized_text: str) -> bool:
    """True when the English or Arabic place name occurs in the text."""
    for name in (values.get("location_name_en"), values.get("location_name_ar")):
        key = normalize_place(name or "")
        if key and _word_pattern(key).search(normalized_text):
            return True
    return False


def _word_pattern(key: str) -> re.Pattern:
    # One attached Arabic proclitic is allowed: و/ف (and), ب/ل/ك (in, to, as).
    return re.compile(rf"(?:^|\s)[وف]?[بلك]?{re.escape(key)}(?:\s|$)")


def stated_figures(report_text: str) -> set[int]:
    """Every figure the text states, in digits, number words or vague words."""
    folded = fold_arabic(report_text).casefold()
    figures = {
        int(re.sub(r"[,\u066c]", "", found)) for found in _NUMBER.findall(folded)
    }
    words = _WORD.findall(folded.replace("-", " "))
    figures.update(_english_numbers(words))
    figures.update(_arabic_numbers(words))
    for word in words:
        for candidate in _with_and_without_conjunction(word):
            if candidate in VAGUE_QUANTITIES:
                figures.add(VAGUE_QUANTITIES[candidate])
            if candidate in ARABIC_PEOPLE_DUALS:
                figures.add(2)
    return figures


def _english_numbers(words: list[str]) -> Iterable[int]:
    """Numbers written as English words, alone or compound ("two hundred five")."""
    total = current = 0
    in_number = False
    for word in [*words, ""]:
        if word in ENGLISH_UNITS or word in ENGLISH_TENS:
            current += ENGLISH_UNITS.get(word) or ENGLISH_TENS[word]
            in_number = True
        elif word in ENGLISH_SCALES and in_number:
            total, current = _apply_scale(total, current, ENGLISH_SCALES[word])
        elif word == "and" and in_number:
            continue
        elif in_number:
            yield total + current
            total = current = 0
            in_number = False
        elif word in ENGLISH_SCALES:
            # "a hundred", "a thousand"
            yield ENGLISH_SCALES[word]


def _arabic_numbers(words: list[str]) -> Iterable[int]:
    """Numbers written as Arabic words: units, teens, "خمسة وعشرون", hundreds."""
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else ""
        if word in ARABIC_TEEN_HEADS and following in ARABIC_TEN:
            yield ARABIC_TEEN_HEADS[word] + 10
        value = _arabic_word_value(word)
        if value is None:
            continue
        yield value
        joined = following[1:] if following.startswith(_CONJUNCTION) else ""
        if value < 10 and following in ARABIC_TEN:
            yield value + 10
        if value < 10 and joined in ARABIC_TENS:
            yield value + ARABIC_TENS[joined]
        if value < 10 and following in ARABIC_MULTIPLIERS:
            yield value * ARABIC_MULTIPLIERS[following]


def _arabic_word_value(word: str) -> int | None:
    """The value of one Arabic number word, with or without a leading "و"."""
    for candidate in _with_and_without_conjunction(word):
        for table in (ARABIC_UNITS, ARABIC_TEN, ARABIC_TENS, ARABIC_HUNDREDS):
            if candidate in table:
                return table[candidate]
    return None


def _with_and_without_conjunction(word: str) -> list[str]:
    if word.startswith(_CONJUNCTION) and len(word) > 2:
        return [word, word[1:]]
    return [word]


def _apply_scale(total: int, current: int, scale: int) -> tuple[int, int]:
    if scale == 1000:
        return (total + max(current, 1)) * 1000, 0
    return total, max(current, 1) * scale

"""Text normalisation shared by repost detection, grounding and duplicate matching.

Arabic posts about the same incident differ in ways that carry no meaning:
diacritics, tatweel, the several written forms of alef, yeh and teh marbuta,
and Arabic-Indic or Persian digits. These are folded away before any
comparison, so two spellings of one place or one number compare equal.
"""

import re
import unicodedata

# Harakat, tanween, shadda, sukun, superscript alef and Quranic marks.
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_TATWEEL = "\u0640"
_LETTER_FOLDS = str.maketrans(
    {
        "\u0622": "\u0627",  # alef with madda -> alef
        "\u0623": "\u0627",  # alef with hamza above -> alef
        "\u0625": "\u0627",  # alef with hamza below -> alef
        "\u0671": "\u0627",  # alef wasla -> alef
        "\u0649": "\u064a",  # alef maksura -> yeh
        "\u06cc": "\u064a",  # Persian yeh -> yeh
        "\u0629": "\u0647",  # teh marbuta -> heh
        "\u0624": "\u0648",  # waw with hamza -> waw
        "\u0626": "\u064a",  # yeh with hamza -> yeh
        "\u06a9": "\u0643",  # keheh -> kaf
    }
)
_DIGITS = str.maketrans(
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
    "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9",
    "0123456789" * 2,
)
_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def fold_digits(text: str) -> str:
    """Arabic-Indic and Persian digits written as ASCII digits."""
    return text.translate(_DIGITS)


def fold_arabic(text: str) -> str:
    """Diacritics and tatweel removed, letter variants folded, digits made ASCII."""
    text = unicodedata.normalize("NFKC", text)
    text = _DIACRITICS.sub("", text).replace(_TATWEEL, "")
    return fold_digits(text.translate(_LETTER_FOLDS))


def normalize_text(text: str) -> str:
    """Folded, case-insensitive, punctuation-free text with single spaces.

    Two texts that differ only in spelling variants, punctuation, case or
    spacing normalise to the same string.
    """
    text = fold_arabic(text).casefold()
    text = _PUNCTUATION.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def normalize_place(name: str) -> str:
    """A place name reduced to a key for exact comparison (may be empty)."""
    key = normalize_text(name)
    # "al-Bab", "Al Bab" and "البابُ" should meet; the Arabic article "ال"
    # stays, because it is part of how most Arabic place names are written.
    key = re.sub(r"^(al|el) ", "", key)
    return key

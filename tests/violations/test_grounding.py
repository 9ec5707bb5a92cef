import pytest

from violations.grounding import check_draft, stated_figures

ARABIC_REPORT = (
    "عاجل | استشهاد ٣ مدنيين وإصابةُ خمسةٍ وعشرين آخرين جراء قصفٍ مدفعي "
    "على أطراف مدينة كفرنبل، ونزوح عشرات العائلات."
)
ENGLISH_REPORT = (
    "BREAKING: Twenty-five people were injured and 1,200 displaced after "
    "shelling on al-Bab; dozens remain missing."
)


def draft(**values):
    base = {
        "evidence": "استشهاد 3 مدنيين",
        "location_name_en": "Kafr Nabl",
        "location_name_ar": "كفرنبل",
        "casualties": 3,
        "injured": None,
        "kidnapped": None,
        "detained": None,
        "displaced": None,
    }
    return {**base, **values}


@pytest.mark.parametrize(
    ("text", "figure"),
    [
        ("استشهاد ٣ مدنيين", 3),
        ("نزوح ١٬٢٠٠ شخص", 1200),
        ("نزوح ۱۵ عائلة", 15),
        ("اعتقال 1,200 شخص", 1200),
        ("إصابة خمسة وعشرين شخصاً", 25),
        ("مقتل ثلاثةَ عشرَ مدنياً", 13),
        ("مقتل أحد عشر مدنياً", 11),
        ("اعتقال اثنا عشر شاباً", 12),
        ("نزوح مئتين عائلة", 200),
        ("نزوح ثلاثة آلاف شخص", 3000),
        ("مقتل شابين في درعا", 2),
        ("ونزوح عشرات العائلات", 24),
        ("اعتقال عدة أشخاص", 3),
        ("Twenty-five people were injured", 25),
        ("two hundred and five families fled", 205),
        ("three thousand five hundred displaced", 3500),
        ("a dozen men were detained", 12),
        ("dozens were killed", 24),
        ("several civilians were hurt", 3),
        ("hundreds displaced", 200),
    ],
)
def test_figure_is_stated_in_digits_words_or_vague_quantities(text, figure):
    assert figure in stated_figures(text)


def test_vague_quantity_states_only_its_conservative_figure():
    figures = stated_figures("dozens were killed")

    assert figures == {24}


def test_one_alone_does_not_state_eleven():
    # "أحد المدنيين" is "one of the civilians", not the first half of 11.
    assert 11 not in stated_figures("مقتل أحد المدنيين")


def test_grounded_arabic_draft_has_no_errors_or_flags():
    result = check_draft(draft(injured=25, displaced=24), ARABIC_REPORT)

    assert result.errors == []
    assert result.flags == []


def test_evidence_matches_after_diacritics_letter_variants_and_digits():
    # The report has "٣", "إصابةُ" and "خمسةٍ"; the quote has none of those forms.
    quote = "استشهاد 3 مدنيين واصابه خمسه وعشرين"

    result = check_draft(draft(evidence=quote), ARABIC_REPORT)

    assert result.errors == []


def test_quote_not_in_report_is_an_error():
    result = check_draft(draft(evidence="استشهاد 4 مدنيين"), ARABIC_REPORT)

    assert result.errors == [
        "evidence: the quote 'استشهاد 4 مدنيين' does not occur in the report."
    ]


def test_quote_must_match_whole_words():
    result = check_draft(draft(evidence="شهاد"), ARABIC_REPORT)

    assert len(result.errors) == 1


def test_elided_quote_needs_every_piece_in_the_report():
    good = check_draft(draft(evidence="استشهاد ٣ مدنيين … ونزوح عشرات"), ARABIC_REPORT)
    bad = check_draft(draft(evidence="استشهاد ٣ مدنيين ... ونزوح مئات"), ARABIC_REPORT)

    assert good.errors == []
    assert len(bad.errors) == 1


def test_empty_quote_is_an_error():
    assert check_draft(draft(evidence="  "), ARABIC_REPORT).errors


def test_ungrounded_figures_are_flagged_by_field_and_figure():
    result = check_draft(draft(casualties=4, displaced=30), ARABIC_REPORT)

    assert result.errors == []
    assert result.flags == [
        "casualties: the figure 4 does not appear in the report.",
        "displaced: the figure 30 does not appear in the report.",
    ]


def test_a_single_person_needs_no_written_number():
    result = check_draft(draft(casualties=1), ARABIC_REPORT)

    assert result.flags == []


def test_english_report_grounds_words_digits_and_place():
    values = draft(
        evidence="Twenty-five people were injured and 1,200 displaced",
        location_name_en="Al Bab",
        location_name_ar="الباب",
        casualties=None,
        injured=25,
        displaced=1200,
        kidnapped=24,
    )

    result = check_draft(values, ENGLISH_REPORT)

    assert result.errors == []
    assert result.flags == []


def test_place_named_in_neither_language_is_flagged():
    values = draft(location_name_en="Maarat al-Numan", location_name_ar="معرة النعمان")

    result = check_draft(values, ARABIC_REPORT)

    assert result.flags == ["location: 'Maarat al-Numan' is not named in the report."]


def test_arabic_place_with_attached_preposition_is_found():
    result = check_draft(
        draft(
            location_name_en="", location_name_ar="حلب", evidence="قصف", casualties=None
        ),
        "قصف بحلب اليوم",
    )

    assert result.flags == []

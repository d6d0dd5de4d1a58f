"""Heuristic filters: datatrove's rules through our typed configs, run in-process."""

import pytest

from transferlab.config import ConfigError, validate
from transferlab.curation import (
    FILTERS,
    C4QualityConfig,
    CurationConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)
from transferlab.data.sources import TextDocument

CLEAN = (
    "The history of the river valley is long and varied. Farmers settled along the banks "
    "and built small villages with stone houses. Over the centuries, the villages grew into "
    "towns, and the towns became a city that traded with the coast. Merchants brought salt, "
    "cloth and iron, and they took grain and wool back to the sea. Today the valley is known "
    "for its orchards and for the old bridge that still carries traffic across the water."
)
SHORT = "The cat sat on the mat and then it went to sleep."
REPEATED_LINES = "\n".join(["Click here to subscribe to our newsletter today."] * 4 + [CLEAN])
NAVIGATION = "Home\nAbout us\nContact\n" + CLEAN
MENU = "\n".join(["Home", "Products", "Shop now", "Contact us", "Sign in", "Cart", CLEAN])
NO_REPETITION_RULES = {
    "dup_line_frac": None,
    "dup_para_frac": None,
    "dup_line_char_frac": None,
    "dup_para_char_frac": None,
    "top_n_grams": [],
    "dup_n_grams": [],
}


def outcome(cfg, text):
    result = cfg.build()(TextDocument("doc", text, "test"))
    return result.kept, result.reason


@pytest.mark.parametrize(
    "cfg",
    [GopherQualityConfig(), GopherRepetitionConfig(), C4QualityConfig(), FineWebQualityConfig()],
)
def test_every_filter_keeps_a_clean_english_paragraph_unchanged(cfg):
    result = cfg.build()(TextDocument("doc", CLEAN, "test"))
    assert (result.kept, result.reason, result.text) == (True, None, CLEAN)


def test_gopher_quality_removes_a_short_document_unless_the_minimum_is_lowered():
    assert outcome(GopherQualityConfig(), SHORT) == (False, "gopher_short_doc")
    assert outcome(GopherQualityConfig(min_doc_words=5), SHORT) == (True, None)


def test_gopher_quality_removes_code_of_short_words_and_numbers():
    code = "x = f(a, b)\ny = [1, 2, 3]\nz = {k: v for k, v in d.items()}\n" * 10
    assert outcome(GopherQualityConfig(min_doc_words=5), code) == (
        False,
        "gopher_below_avg_threshold",
    )
    numbers = "12 34 56 78 90 and the of 11 22 33 44 55 66 77 88 99 1234 5678"
    assert outcome(GopherQualityConfig(min_doc_words=5, min_avg_word_length=1), numbers) == (
        False,
        "gopher_below_alpha_threshold",
    )


def test_gopher_repetition_removes_repeated_lines_and_its_rules_can_be_turned_off():
    assert outcome(GopherRepetitionConfig(), REPEATED_LINES) == (False, "dup_line_frac")
    assert outcome(GopherRepetitionConfig(dup_line_frac=0.9), REPEATED_LINES)[0] is False
    assert outcome(GopherRepetitionConfig(**NO_REPETITION_RULES), REPEATED_LINES) == (True, None)


def test_gopher_repetition_removes_a_repeated_phrase():
    assert outcome(GopherRepetitionConfig(), "buy now " * 100) == (False, "top_2_gram")


def test_c4_drops_lines_without_terminal_punctuation_and_keeps_the_rest():
    result = C4QualityConfig().build()(TextDocument("doc", NAVIGATION, "test"))
    assert (result.kept, result.text) == (True, CLEAN)


def test_c4_sentence_minimum_and_curly_brackets():
    text = "Items\nfoo\nbar\nThe first sentence is here. Then a second one."
    assert outcome(C4QualityConfig(), text) == (False, "too_few_sentences")
    kept = C4QualityConfig(min_num_sentences=2).build()(TextDocument("doc", text, "test"))
    assert (kept.kept, kept.text) == (True, "The first sentence is here. Then a second one.")
    assert outcome(C4QualityConfig(), CLEAN + " function f() { return 1; }.") == (
        False,
        "curly_bracket",
    )


def test_c4_reports_a_document_it_empties_as_removed():
    result = C4QualityConfig(min_num_sentences=-1).build()(TextDocument("d", "no punctuation", "t"))
    assert (result.kept, result.reason) == (False, "empty_after_filter")


def test_fineweb_removes_a_menu_of_short_lines_unless_thresholds_allow_it():
    assert outcome(FineWebQualityConfig(), MENU) == (False, "short_line_ratio")
    assert outcome(FineWebQualityConfig(short_line_thr=0.9), MENU) == (True, None)
    assert outcome(FineWebQualityConfig(line_punct_thr=0.5, short_line_thr=0.9), MENU) == (
        False,
        "line_punct_ratio",
    )


def test_fineweb_stop_chars_are_configurable():
    text = "\n".join(f"clause number {i} of a long list of clauses;" for i in range(8))
    assert outcome(FineWebQualityConfig(), text) == (False, "line_punct_ratio")
    assert outcome(FineWebQualityConfig(stop_chars=[";"]), text) == (True, None)


def test_filters_are_registered_by_name_and_parsed_from_mappings():
    assert FILTERS.names() == [
        "c4_quality",
        "fineweb_quality",
        "gopher_quality",
        "gopher_repetition",
        "language",
    ]
    cfg = validate(
        CurationConfig,
        {"filters": ["gopher_quality", {"name": "c4_quality", "min_num_sentences": 3}]},
    )
    assert [type(f) for f in cfg.filters] == [GopherQualityConfig, C4QualityConfig]
    assert cfg.filters[1].min_num_sentences == 3
    assert validate(CurationConfig, cfg.to_dict()) == cfg


def test_bad_filter_configs_fail_in_one_line():
    with pytest.raises(ConfigError, match=r"unknown filter 'gopher'; expected one of"):
        validate(CurationConfig, {"filters": ["gopher"]})
    with pytest.raises(ConfigError, match=r"filters.0.min_words: unknown field"):
        validate(CurationConfig, {"filters": [{"name": "gopher_quality", "min_words": 3}]})
    with pytest.raises(ConfigError, match=r"'gopher_quality' appears more than once; give each"):
        validate(CurationConfig, {"filters": ["gopher_quality", "gopher_quality"]})


def test_labels_let_one_filter_kind_run_twice():
    cfg = validate(
        CurationConfig,
        {"filters": ["gopher_quality", {"name": "gopher_quality", "label": "strict"}]},
    )
    assert [f.stage_name for f in cfg.filters] == ["gopher_quality", "strict"]

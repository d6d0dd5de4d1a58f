"""Language identification (py3langid, offline), the ``language`` curation filter and source
option, and heuristic filters that split words and count stop words per language."""

from __future__ import annotations

import json

import pytest

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.curation import (
    CurationConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    LanguageFilterConfig,
)
from transferlab.curation.words import stop_words
from transferlab.data.language import identify, language_codes
from transferlab.data.prepare import prepare_data
from transferlab.data.sources import JsonlConfig, TextDocument

SENTENCES = {
    "en": [
        "The weather was cold this morning, so we stayed inside and read books by the fire.",
        "She walked to the station and waited for the train that would take her home.",
        "Our neighbours have planted apple trees in the garden behind their house.",
        "The committee will meet again next week to discuss the new budget for the school.",
    ],
    "de": [
        "Heute Morgen war es sehr kalt, deshalb sind wir zu Hause geblieben und haben gelesen.",
        "Sie ging zum Bahnhof und wartete auf den Zug, der sie nach Hause bringen sollte.",
        "Unsere Nachbarn haben im Garten hinter ihrem Haus mehrere Apfelbäume gepflanzt.",
        "Der Ausschuss trifft sich nächste Woche wieder, um über den neuen Haushalt zu sprechen.",
    ],
    "es": [
        "Esta mañana hacía mucho frío, así que nos quedamos en casa leyendo junto al fuego.",
        "Ella caminó hasta la estación y esperó el tren que la llevaría de vuelta a su casa.",
        "Nuestros vecinos han plantado manzanos en el jardín que está detrás de su casa.",
        "El comité se reunirá otra vez la próxima semana para hablar del nuevo presupuesto.",
    ],
    "it": [
        "Stamattina faceva molto freddo, quindi siamo rimasti a casa a leggere vicino al fuoco.",
        "Lei è andata alla stazione e ha aspettato il treno che l'avrebbe riportata a casa.",
        "I nostri vicini hanno piantato alcuni meli nel giardino dietro la loro casa.",
        "Il comitato si riunirà di nuovo la prossima settimana per discutere il nuovo bilancio.",
    ],
    "fr": [
        "Ce matin il faisait très froid, alors nous sommes restés à la maison pour lire.",
        "Elle a marché jusqu'à la gare et a attendu le train qui devait la ramener chez elle.",
        "Nos voisins ont planté des pommiers dans le jardin derrière leur maison.",
        "Le comité se réunira de nouveau la semaine prochaine pour discuter du nouveau budget.",
    ],
}
# 83 words of German prose: it passes every Gopher rule once its stop words are German ones.
GERMAN = (
    "Die Geschichte des Flusstals ist lang und abwechslungsreich. Bauern siedelten sich an den "
    "Ufern an und bauten kleine Dörfer mit Häusern aus Stein. Im Laufe der Jahrhunderte wuchsen "
    "die Dörfer zu Städten, und die Städte wurden zu einer Stadt, die mit der Küste Handel "
    "trieb. Kaufleute brachten Salz, Stoffe und Eisen, und sie nahmen Getreide und Wolle mit "
    "zurück ans Meer. Heute ist das Tal für seine Obstgärten bekannt und für die alte Brücke, "
    "die noch immer den Verkehr über das Wasser trägt."
)
JAPANESE = "今朝はとても寒かったので、私たちは家にいて、暖炉のそばで本を読みました。"


def doc(text: str, doc_id: str = "doc", metadata: dict | None = None) -> TextDocument:
    return TextDocument(doc_id, text, "test", metadata or {})


def _mixed_jsonl(path) -> dict[str, list[str]]:
    """Every sentence as one line, languages interleaved; the ids of each language's lines."""
    ids: dict[str, list[str]] = {lang: [] for lang in SENTENCES}
    lines = [(lang, s[i]) for i in range(4) for lang, s in SENTENCES.items()]
    with open(path, "w", encoding="utf-8") as f:
        for number, (lang, sentence) in enumerate(lines, start=1):
            f.write(json.dumps({"text": sentence}, ensure_ascii=False) + "\n")
            ids[lang].append(f"{path.name}:{number}")
    return ids


def _in_file_order(ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda doc_id: int(doc_id.rsplit(":", 1)[1]))


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_every_sentence_is_identified_in_its_language(lang):
    for sentence in SENTENCES[lang]:
        code, confidence = identify(sentence)
        assert code == lang
        assert 0.9 < confidence <= 1.0
        assert identify(sentence) == (code, confidence)  # deterministic


def test_candidates_restrict_identification_to_the_languages_given():
    sentence = SENTENCES["es"][1]
    assert identify(sentence)[1] < identify(sentence, ("de", "es", "it"))[1]
    assert identify(sentence, ("de", "it"))[0] in {"de", "it"}  # es is not a candidate


def test_the_filter_keeps_wanted_languages_tags_them_and_names_the_others():
    filt = LanguageFilterConfig(keep=["de", "es", "it"]).build()
    for lang, sentences in SENTENCES.items():
        for sentence in sentences:
            outcome = filt(doc(sentence))
            if lang in ("de", "es", "it"):
                assert (outcome.kept, outcome.reason, outcome.text) == (True, None, sentence)
                assert outcome.metadata == {
                    "language": lang,
                    "language_confidence": identify(sentence)[1],
                }
            else:
                assert (outcome.kept, outcome.reason) == (False, f"language:{lang}")
                assert outcome.metadata == {}


def test_min_confidence_removes_a_kept_language_identified_with_less():
    sentence = SENTENCES["es"][3]
    confidence = identify(sentence)[1]
    assert confidence < 0.99
    strict = LanguageFilterConfig(keep="es", min_confidence=0.99).build()
    assert strict(doc(sentence)).reason == "language_uncertain:es"
    loose = LanguageFilterConfig(keep="es", min_confidence=confidence).build()
    assert loose(doc(sentence)).kept


def test_curation_removes_with_reasons_and_writes_the_tags(tmp_path):
    ids = _mixed_jsonl(tmp_path / "mixed.jsonl")
    source = JsonlConfig(path=str(tmp_path / "mixed.jsonl"))
    cfg = validate(CurationConfig, {"filters": [{"name": "language", "keep": ["de", "it"]}]})
    result = cfg.run(source.iter_documents(), tmp_path / "out", tmp_path / "scores")
    kept = list(result.documents())
    assert [d.id for d in kept] == _in_file_order(ids["de"] + ids["it"])
    assert {d.metadata["language"] for d in kept} == {"de", "it"}
    assert all(d.metadata["path"] == "mixed.jsonl" for d in kept)  # source metadata kept too
    assert result.report.stage("language").reasons == {
        "language:en": 4,
        "language:es": 4,
        "language:fr": 4,
    }


def test_a_source_language_option_reads_exactly_that_languages_documents(tmp_path):
    ids = _mixed_jsonl(tmp_path / "mixed.jsonl")
    path = str(tmp_path / "mixed.jsonl")
    for lang in SENTENCES:
        docs = list(validate(JsonlConfig, {"path": path, "language": lang}).iter_documents())
        assert [d.id for d in docs] == ids[lang]
        assert [d.text for d in docs] == SENTENCES[lang]
        assert all(d.metadata["language"] == lang for d in docs)
    both = validate(JsonlConfig, {"path": path, "language": ["de", "fr"], "limit": 5})
    assert [d.id for d in both.iter_documents()] == _in_file_order(ids["de"] + ids["fr"])[:5]


def test_a_mixed_jsonl_becomes_a_mixture_of_language_domains(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    _mixed_jsonl(tmp_path / "mixed.jsonl")
    path = str(tmp_path / "mixed.jsonl")
    data = {
        "seq_len": 16,
        "val_fraction": 0.25,
        "sources": [
            {"name": "jsonl", "path": path, "label": lang, "language": lang}
            for lang in ("de", "es", "it")
        ],
        "mixture": {"weights": {"de": 2, "es": 1, "it": 1}},
    }
    prepared = prepare_data(validate(RunConfig, {"tokenizer": {"kind": "word"}, "data": data}))
    info = json.loads((prepared.root / "info.json").read_text())
    assert [d["name"] for d in info["domains"]] == ["de", "es", "it"]
    # Four documents per language, one held out for validation in each.
    assert info["validation"]["domains"] == [
        {"name": lang, "docs": 1} for lang in ("de", "es", "it")
    ]
    assert [d["docs"] for d in info["domains"]] == [3, 3, 3]


def test_an_unset_language_option_leaves_the_config_and_its_key_unchanged():
    assert "language" not in JsonlConfig(path="a.jsonl").to_dict()
    assert "language" not in GopherQualityConfig().to_dict()
    assert GopherQualityConfig(language="de").to_dict()["language"] == "de"


def test_unknown_language_code_is_a_one_line_error_naming_the_valid_codes():
    for bad, code in (
        ({"filters": [{"name": "language", "keep": ["de", "xx"]}]}, "'xx'"),
        ({"filters": [{"name": "gopher_quality", "language": "deutsch"}]}, "'deutsch'"),
    ):
        with pytest.raises(ConfigError) as raised:
            validate(CurationConfig, bad)
        message = str(raised.value)
        assert f"unknown language code(s) {code}; use ISO 639 codes" in message
        assert message.endswith(", ".join(language_codes()))
        assert "\n" not in message
    with pytest.raises(ConfigError, match="unknown language code"):
        validate(JsonlConfig, {"path": "a.jsonl", "language": "english"})


def test_keep_outside_the_candidates_is_refused():
    with pytest.raises(ConfigError, match="'de', not among candidates"):
        validate(LanguageFilterConfig, {"keep": ["de"], "candidates": ["es", "it"]})


def test_german_passes_gophers_stop_word_rule_in_german_and_fails_it_in_english():
    english = GopherQualityConfig().build()(doc(GERMAN))
    assert (english.kept, english.reason) == (False, "gopher_enough_stop_words")
    german = GopherQualityConfig(language="de").build()(doc(GERMAN))
    assert (german.kept, german.reason) == (True, None)
    # The rule is what differs: with English rules but German stop words, it passes too.
    with_list = GopherQualityConfig(stop_words=list(stop_words("de"))).build()(doc(GERMAN))
    assert with_list.kept


def test_stop_words_are_gophers_in_english_and_spacys_elsewhere():
    assert stop_words("en") == ("the", "be", "to", "of", "and", "that", "have", "with")
    for lang in ("de", "es", "it", "fr"):
        assert len(stop_words(lang)) > 100
    assert {"und", "der", "die"} <= set(stop_words("de"))
    assert {"y", "el", "que"} <= set(stop_words("es"))


def test_datatrove_filters_get_the_configured_language():
    assert GopherRepetitionConfig(language="it").make_filter("it").language == "it"
    assert GopherQualityConfig(language="fr").make_filter("fr").stop_words == set(stop_words("fr"))


def test_auto_judges_each_document_in_its_tagged_or_identified_language():
    auto = GopherQualityConfig(language="auto").build()
    assert auto(doc(GERMAN)).kept  # identified as German
    # A tag wins over identification: tagged English, the German text has no stop words.
    tagged = auto(doc(GERMAN, metadata={"language": "en"}))
    assert (tagged.kept, tagged.reason) == (False, "gopher_enough_stop_words")
    # Japanese needs packages transferlab does not install: removed, with the reason.
    japanese = auto(doc(JAPANESE))
    assert (japanese.kept, japanese.reason) == (
        False,
        "gopher_quality_unsupported_language:ja",
    )


def test_a_language_without_offline_support_is_refused_at_validation():
    with pytest.raises(ConfigError, match="no offline word splitting for 'ja'"):
        validate(GopherQualityConfig, {"language": "ja"})
    with pytest.raises(ConfigError, match="no stop-word list for 'bs'.*min_stop_words: null"):
        validate(GopherQualityConfig, {"language": "bs"})
    # Without the stop-word rule, Bosnian is judged (with datatrove's Serbian word splitting).
    assert GopherQualityConfig(language="bs", min_stop_words=None).language == "bs"

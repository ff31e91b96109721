"""Deduplication: exact, near (MinHash and the short-text passes), conflicts, leakage."""

from __future__ import annotations

import json

import polars as pl
import pytest

from curatune.config import Config
from curatune.curate.dedup import NearPairs, is_word_edit_copy, leader_clusters
from curatune.curate.pipeline import run_curation

LONG = ("customer: hello, I ordered a pair of running shoes three weeks ago and they still have not arrived, "
        "the tracking page has not changed since last monday and I need them for a race this weekend\n"
        "agent: I am sorry to hear that, let me look into the shipment for you right away")


def curate(tmp_path, df: pl.DataFrame, embedding: bool = True, **dedup) -> pl.DataFrame:
    src = tmp_path / "d.parquet"
    df.write_parquet(src)
    cfg = Config()
    cfg.curate.steps = ["dedup"]
    cfg.curate.dedup.embedding = embedding
    for k, v in dedup.items():
        setattr(cfg.curate.dedup, k, v)
    cfg.data.id_col = "id"
    run_curation(cfg, tmp_path / "out", [str(src)])
    return pl.read_parquet(tmp_path / "out" / "ledger.parquet").sort("row_id")


def fate(ledger: pl.DataFrame, rid: str) -> dict:
    return ledger.filter(pl.col("row_id") == rid).row(0, named=True)


def test_exact_after_normalisation_keeps_first(tmp_path):
    df = pl.DataFrame({"id": ["a", "b", "c", "d"],
                       "text": ["Where is my ORDER?", "where is my order", "Ｗhere  is my order!!", "new text"],
                       "label": ["ship"] * 4})
    led = curate(tmp_path, df, embedding=False)
    assert fate(led, "a")["fate"] == "kept"
    for rid in ("b", "c"):
        row = fate(led, rid)
        assert row["fate"] == "dropped"
        assert row["reasons"] == ["exact_duplicate"]
        assert row["duplicate_of"] == "a"
    assert fate(led, "d")["fate"] == "kept"


def test_case_folding_equates_letters_whose_capitals_are_written_otherwise(tmp_path):
    """Lower-casing alone kept "Straße" and "STRASSE" apart, and a word-final sigma from a sigma."""
    df = pl.DataFrame({"id": ["a", "b", "c", "d"],
                       "text": ["Straße gesperrt", "STRASSE GESPERRT", "ΟΔΟΣ ΚΛΕΙΣΤΗ", "οδοσ κλειστη"]})
    led = curate(tmp_path, df, embedding=False)
    assert fate(led, "b")["duplicate_of"] == "a" and fate(led, "d")["duplicate_of"] == "c"
    assert fate(led, "b")["reasons"] == fate(led, "d")["reasons"] == ["exact_duplicate"]


def test_conflicting_labels_reported(tmp_path):
    df = pl.DataFrame({"id": ["a", "b"], "text": ["cancel my plan", "Cancel my plan."], "label": ["cancel", "refund"]})
    led = curate(tmp_path, df, embedding=False)
    assert fate(led, "b")["reasons"] == ["conflicting_label_duplicate"]
    # The survivor is flagged too: one of the two labels is wrong.
    a = fate(led, "a")
    assert a["fate"] == "kept" and a["reasons"] == ["conflicting_label_duplicate"]


def test_exact_copies_that_disagree_keep_the_label_most_share_and_score_by_agreement(tmp_path):
    # The first row's label survived even as the minority, and the flagged survivor scored 1.0, as a clean row.
    df = pl.DataFrame({"id": ["a", "b", "c", "d"], "text": ["card declined"] * 4,
                       "label": ["refund", "declined_card", "declined_card", "declined_card"]})
    led = curate(tmp_path, df, embedding=False)
    kept = led.filter(pl.col("fate") == "kept")
    assert kept["row_id"].to_list() == ["b"] and kept["reasons"].to_list() == [["conflicting_label_duplicate"]]
    assert kept["dedup_score"].to_list() == [0.75]
    assert fate(led, "a")["reasons"] == ["conflicting_label_duplicate"]
    assert [fate(led, r)["reasons"] for r in "cd"] == [["exact_duplicate"]] * 2


def test_a_near_copy_with_another_label_is_kept_and_flagged_with_its_representative(tmp_path):
    # Dropped, it took with it the example that tells two intents apart; unflagged, no reviewer saw the pair.
    edited = LONG.replace("three weeks ago", "three weeks ago now")
    df = pl.DataFrame({"id": ["a", "b", "c", "d"], "text": [LONG, edited, edited, LONG + " thanks"],
                       "label": ["refund", "delivery", "refund", None]})
    led = curate(tmp_path, df, embedding=False)
    b, c, d = fate(led, "b"), fate(led, "c"), fate(led, "d")
    assert b["fate"] == "kept" and b["reasons"] == ["conflicting_label_duplicate"]
    assert b["duplicate_of"] is None and b["dedup_cluster"] == "a"
    # c copies b exactly but is named a copy of a, whose label it shares; an unlabelled copy contradicts nothing.
    assert c["fate"] == "dropped" and c["reasons"] == ["near_duplicate"] and c["duplicate_of"] == "a"
    assert d["fate"] == "dropped" and d["reasons"] == ["near_duplicate"]
    a = fate(led, "a")
    assert a["fate"] == "kept" and a["reasons"] == ["conflicting_label_duplicate"]
    # Its score is the lower of the label agreement (2 of 3) and 1 - similarity to its closest copy (d).
    assert a["dedup_score"] == pytest.approx(d["dedup_score"]) and a["dedup_score"] < 2 / 3
    # b's label is 1 of the cluster's 3.
    assert b["dedup_score"] <= 1 / 3


def test_a_one_word_edit_that_changes_the_intent_keeps_both_rows(tmp_path):
    df = pl.DataFrame({"id": ["a", "b", "c", "d", "e"],
                       "text": ["How do I order a card?", "How do I order a virtual card?", "how do I order a card",
                                "how do I order a VIRTUAL card", "How do I order a virtual card?"],
                       "label": ["order_physical_card", "getting_virtual_card", "order_physical_card",
                                 "getting_virtual_card", "order_physical_card"]})
    led = curate(tmp_path, df, embedding=True)
    assert [fate(led, r)["fate"] for r in "abcde"] == ["kept", "kept", "dropped", "dropped", "dropped"]
    assert fate(led, "a")["reasons"] == fate(led, "b")["reasons"] == ["conflicting_label_duplicate"]
    assert fate(led, "c")["reasons"] == ["exact_duplicate"] and fate(led, "c")["duplicate_of"] == "a"
    # The kept copy's own exact copy with its label is a plain copy of it, not a second row to keep.
    d = fate(led, "d")
    assert d["reasons"] == ["exact_duplicate"] and d["duplicate_of"] == "b" and d["dedup_score"] == 0.0
    # The same text as b with a's label: a near copy of a whose label agrees, so a near duplicate.
    assert fate(led, "e")["reasons"] == ["near_duplicate"] and fate(led, "e")["duplicate_of"] == "a"
    steps = json.loads((tmp_path / "out" / "manifest.json").read_text())["steps"]
    summary = next(s for s in steps if s["name"] == "dedup")["summary"]
    assert summary["label_conflicts_kept"] == 1
    assert summary["dropped_by_reason"] == {"exact_duplicate": 2, "near_duplicate": 1}


def test_exact_copies_with_two_labels_are_a_conflict_when_another_text_leads_their_cluster(tmp_path):
    """Both copies of one text with two labels were kept (each label kept its own "first" row)."""
    edited = LONG.replace("three weeks ago", "three weeks ago now")
    df = pl.DataFrame({"id": ["a", "b", "c", "d"], "text": [LONG, edited, edited, edited],
                       "label": ["ship", "refund", "billing", "refund"]})
    led = curate(tmp_path, df, embedding=False)
    a, b, c, d = (fate(led, r) for r in "abcd")
    assert (a["fate"], b["fate"]) == ("kept", "kept")
    assert a["reasons"] == b["reasons"] == ["conflicting_label_duplicate"]
    # One text, two labels: the later copy is dropped as the conflict it is, naming the copy kept.
    assert (c["fate"], c["reasons"], c["duplicate_of"]) == ("dropped", ["conflicting_label_duplicate"], "b")
    assert (d["fate"], d["reasons"], d["duplicate_of"]) == ("dropped", ["exact_duplicate"], "b")
    assert c["dedup_score"] == d["dedup_score"] == 0.0


def test_near_duplicate_long_text_by_minhash(tmp_path):
    edited = LONG.replace("three weeks ago", "three weeks ago now").replace("right away", "away right")
    df = pl.DataFrame({"id": ["a", "b", "c"], "text": [LONG, edited, LONG.replace("running shoes", "a laptop bag")
                                                        .replace("race", "trip").replace("monday", "friday")
                                                        .replace("weekend", "month")],
                       "label": ["x", "x", "x"]})
    led = curate(tmp_path, df, embedding=False)
    b = fate(led, "b")
    assert b["fate"] == "dropped" and b["reasons"] == ["near_duplicate"] and b["duplicate_of"] == "a"
    assert 0 < b["dedup_score"] < 0.2  # 1 - estimated Jaccard
    assert fate(led, "c")["fate"] == "kept"


def test_short_text_word_edits_found_paraphrase_kept(tmp_path):
    df = pl.DataFrame({
        "id": ["a", "b", "c", "d"],
        "text": ["How do I top up my card?", "how do I just top up my card", "How do I top up my account?",
                 "I would like to close my account"],
        "label": ["top_up"] * 3 + ["close"],
    })
    led = curate(tmp_path, df, embedding=True)
    assert fate(led, "b")["duplicate_of"] == "a"
    assert fate(led, "b")["reasons"] == ["near_duplicate"]
    # One content word replaced in place is a paraphrase, not a copy.
    assert fate(led, "c")["fate"] == "kept"
    assert fate(led, "d")["fate"] == "kept"


def test_leakage_drops_the_train_copy(tmp_path):
    df = pl.DataFrame({"id": ["tr", "te", "va", "tr2"],
                       "text": ["my parcel is late again", "My parcel is late again!", "reset my password",
                                "Reset my password."],
                       "split": ["train", "test", "validation", "train"], "label": ["s", "s", "p", "p"]})
    led = curate(tmp_path, df, embedding=False)
    assert fate(led, "te")["fate"] == "kept"
    tr = fate(led, "tr")
    assert tr["fate"] == "dropped" and tr["reasons"] == ["leakage"] and tr["duplicate_of"] == "te"
    tr2 = fate(led, "tr2")
    assert tr2["reasons"] == ["leakage"] and tr2["duplicate_of"] == "va"


def test_invisible_format_characters_do_not_hide_a_copy(tmp_path):
    """NFKC keeps a zero-width space, a soft hyphen or a BOM pasted into a copy: it had another key, and
    the word-edit check of short texts read the word holding it as another word, so the test text leaked."""
    df = pl.DataFrame({"id": ["te", "tr", "tr2", "tr3"],
                       "text": ["refund not received", "\u200brefund not re\u00adceived\ufeff", "👍", "\u200b👍"],
                       "split": ["test", "train", "train", "train"], "label": ["r", "r", "ok", "ok"]})
    led = curate(tmp_path, df, embedding=False)
    tr = fate(led, "tr")
    assert tr["fate"] == "dropped" and tr["reasons"] == ["leakage"] and tr["duplicate_of"] == "te"
    tr3 = fate(led, "tr3")  # a text of symbols alone is keyed by its symbols, without them too
    assert tr3["reasons"] == ["exact_duplicate"] and tr3["duplicate_of"] == "tr2"


def test_without_the_leakage_check_each_split_is_deduplicated_on_its_own(tmp_path):
    # With leakage = false the train copy of a test row was still dropped, as an exact_duplicate of the test row.
    df = pl.DataFrame({"id": ["tr", "te", "tr2", "te2"],
                       "text": ["where is my refund", "Where is my refund?", "where is my refund!", LONG],
                       "split": ["train", "test", "train", "test"], "label": ["refund"] * 3 + ["ship"]})
    led = curate(tmp_path, df, embedding=False, leakage=False)
    assert [fate(led, r)["fate"] for r in ("tr", "te", "tr2", "te2")] == ["kept", "kept", "dropped", "kept"]
    assert fate(led, "tr2")["reasons"] == ["exact_duplicate"] and fate(led, "tr2")["duplicate_of"] == "tr"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert next(s for s in manifest["steps"] if s["name"] == "dedup")["summary"]["leakage_checked"] is False


def test_every_dropped_row_names_a_representative_it_was_compared_with(tmp_path):
    # Texts: A = a/c ("how do I just top up my card"), B = b (A less one word), M = m (A plus two words;
    # three edits from B). The test row b is the best row, so B leads and takes A, its near copy. Before,
    # A led (it holds the first row) and took B and M, while b still represented the cluster: m was dropped
    # as a copy of b, a text it was never compared with and is not a near copy of.
    df = pl.DataFrame({"id": ["a", "b", "m", "c"],
                       "text": ["how do I just top up my card", "How do I top up my card?",
                                "how do I just top up my card today please", "how do I just top up my card"],
                       "split": ["train", "test", "train", "test"], "label": ["top_up"] * 4})
    led = curate(tmp_path, df, embedding=True)
    got = {r: (fate(led, r)["fate"], fate(led, r)["reasons"], fate(led, r)["duplicate_of"]) for r in "abcm"}
    assert got == {"a": ("dropped", ["leakage"], "b"), "b": ("kept", [], None),
                   "c": ("dropped", ["near_duplicate"], "b"), "m": ("kept", [], None)}


def test_no_text_in_ledger(tmp_path):
    df = pl.DataFrame({"id": ["a", "b"], "text": ["secret words here", "secret words here"], "label": ["x", "x"]})
    led = curate(tmp_path, df, embedding=False)
    assert not any("secret" in str(v) for row in led.iter_rows() for v in row)


@pytest.mark.parametrize(("a", "b", "ok"), [
    ("where is my card", "where is my new card", True),
    ("where is my card", "is where my card", True),
    ("top up my card", "top up my account", False),
    ("why havent i gotten my payment yet", "why havent i gotten my again yet", True),
    ("a b c d e f", "a c e f", True),
    ("a b c d e f", "c e f", False),
    # A negation added or left out turns the message round (Banking77: card_arrival vs card_not_arrived).
    ("my card has arrived", "my card has not arrived", False),
    ("i want to cancel my transfer", "i do not want to cancel my transfer", False),
    # A content word exchanged elsewhere in the text is a paraphrase, as one exchanged in place.
    ("cancel my card now", "my card now frozen", False),
])
def test_word_edit_copy(a, b, ok):
    assert is_word_edit_copy(a, b, 2) is ok


def test_texts_that_normalise_to_nothing_are_not_one_text(tmp_path):
    # Normalising drops symbols: every emoji-only or "???" message was one text, dropped as conflicting copies.
    df = pl.DataFrame({"id": ["a", "b", "c", "d", "e"], "text": ["👍", "👎", "???", "!!!", "👍"],
                       "label": ["happy", "unhappy", "confused", "angry", "happy"]})
    led = curate(tmp_path, df, embedding=False)
    assert [fate(led, r)["fate"] for r in "abcde"] == ["kept", "kept", "kept", "kept", "dropped"]
    assert fate(led, "e")["reasons"] == ["exact_duplicate"] and fate(led, "a")["reasons"] == []


def test_texts_that_normalise_to_nothing_are_copies_when_they_differ_only_in_form_case_or_spacing(tmp_path):
    # Keyed by the raw text, " 👍 " was no copy of "👍", nor a full-width "？？？" of "???".
    df = pl.DataFrame({"id": list("abcdefgh"), "text": ["👍", " 👍 ", "👍\t", "？？？", "???", "👎", "🙂", "🙂  "],
                       "label": ["happy", "happy", "happy", "confused", "confused", "unhappy", "happy", "unhappy"]})
    led = curate(tmp_path, df, embedding=False)
    assert [fate(led, r)["fate"] for r in "abcdefgh"] == ["kept", "dropped", "dropped", "kept", "dropped", "kept",
                                                          "kept", "dropped"]
    assert [fate(led, r)["duplicate_of"] for r in "bceh"] == ["a", "a", "d", "g"]
    assert [fate(led, r)["reasons"] for r in "bce"] == [["exact_duplicate"]] * 3
    # One text with two labels: the copy is dropped and its representative flagged, as for any text.
    assert fate(led, "h")["reasons"] == fate(led, "g")["reasons"] == ["conflicting_label_duplicate"]
    assert fate(led, "f")["reasons"] == []


def test_a_test_row_leads_a_bucket_of_hundreds_of_near_copies(tmp_path):
    """Over 200 near-identical texts share an LSH bucket, which is linked to one member only; that
    member was the alphabetically first text, not the test row, and 284 of 600 train copies of the
    test row were kept (the rest dropped as near_duplicate, not leakage)."""
    # Over 64 words: copies of a short text that differ in a number are not copies (one content word
    # exchanged for another), and this is about the bucket, not about that rule.
    texts = [f"{LONG} and I have asked about it twice already this week, my order number is {900000 - i}"
             for i in range(600)]
    df = pl.DataFrame({"id": [f"r{i:03d}" for i in range(600)], "text": texts, "label": ["ship"] * 600,
                       "split": ["test"] + ["train"] * 599})
    led = curate(tmp_path, df, embedding=False)
    assert fate(led, "r000")["fate"] == "kept"
    rest = led.filter(pl.col("row_id") != "r000")
    assert rest["fate"].unique().to_list() == ["dropped"] and rest["duplicate_of"].unique().to_list() == ["r000"]
    assert rest["reasons"].list.first().unique().to_list() == ["leakage"]


def test_without_the_leakage_check_a_bucket_of_hundreds_led_by_a_test_row_still_dedups_train(tmp_path):
    """Searched over all splits at once, the bucket of 600 was linked to its test member only, those links
    were thrown away as crossing splits, and 5 of the 599 train copies were kept (one named another leader)."""
    texts = [f"{LONG} and I have asked about it twice already this week, my order number is {900000 - i}"
             for i in range(600)]
    df = pl.DataFrame({"id": [f"r{i:03d}" for i in range(600)], "text": texts, "label": ["ship"] * 600,
                       "split": ["test"] + ["train"] * 599})
    led = curate(tmp_path, df, embedding=False, leakage=False)
    assert fate(led, "r000")["fate"] == fate(led, "r001")["fate"] == "kept"
    dropped = led.filter(pl.col("fate") == "dropped")
    assert dropped.height == 598 and dropped["split"].unique().to_list() == ["train"]
    assert dropped["reasons"].list.first().unique().to_list() == ["near_duplicate"]
    assert dropped["duplicate_of"].unique().to_list() == ["r001"]


def test_a_step_listed_twice_is_refused():
    from curatune.config import config_from_dict
    from curatune.errors import CuratuneError

    with pytest.raises(CuratuneError, match="^\\[curate\\] steps: 'dedup' is listed more than once"):
        config_from_dict({"curate": {"steps": ["dedup", "anonymise", "dedup"]}})


def test_leader_clusters_do_not_chain():
    # 0~1 and 1~2, but 0 and 2 are not near duplicates: 2 must not join 0's cluster.
    import numpy as np

    pairs = NearPairs(left=np.array([0, 1]), right=np.array([1, 2]), similarity=np.ones(2), source=np.array(["m", "m"]))
    clusters = leader_clusters(3, pairs, np.array([0, 1, 2]))
    assert clusters[1] == clusters[0]
    assert clusters[2] != clusters[0]


def test_near_pairs_of_several_passes_concatenate():
    import numpy as np

    a = NearPairs(np.array([0]), np.array([1]), np.array([0.9]), np.array(["minhash"]))
    b = NearPairs(np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0, dtype=object))
    c = NearPairs(np.array([2, 3]), np.array([4, 5]), np.ones(2), np.array(["word_set"] * 2))
    both = NearPairs.concat([a, b, c])
    assert both.left.tolist() == [0, 2, 3] and both.right.tolist() == [1, 4, 5]
    assert both.similarity.tolist() == [0.9, 1.0, 1.0] and both.source.tolist() == ["minhash", "word_set", "word_set"]
    empty = NearPairs.concat([])
    assert empty.left.size == empty.right.size == 0 and empty.left.dtype == np.int64


def test_a_labelled_copy_represents_an_unlabelled_one_and_no_conflict_is_reported(tmp_path):
    df = pl.DataFrame({"id": ["a", "b", "c"], "text": ["freeze my card", "Freeze my card!", "unfreeze it"],
                       "label": [None, "freeze", None]})
    led = curate(tmp_path, df, embedding=False)
    a, b = fate(led, "a"), fate(led, "b")
    assert (b["fate"], b["reasons"]) == ("kept", [])
    assert (a["fate"], a["reasons"], a["duplicate_of"]) == ("dropped", ["exact_duplicate"], "b")


# A 31-word message: long enough that a one-word edit keeps its character 5-gram Jaccard above 0.8.
ARRIVAL = ("hello, I ordered a new debit card three weeks ago and my card has not arrived yet, the app "
           "says it was sent and I need it for a trip next week")


@pytest.mark.parametrize("embedding", [True, False])
def test_minhash_pairs_of_short_texts_are_confirmed_by_the_word_edit_check(tmp_path, embedding):
    # MinHash over character 5-grams merged a negation left out, and a content word exchanged, in a message
    # of 20-64 words: both stay above the 0.8 threshold, and only the other candidate passes were confirmed.
    df = pl.DataFrame({"id": ["a", "b", "c", "d"],
                       "text": [ARRIVAL, ARRIVAL.replace("has not arrived", "has arrived"),
                                ARRIVAL.replace("for a trip", "for a wedding"),
                                ARRIVAL.replace("ordered a new", "ordered just a new")],
                       "label": ["card_arrival"] * 4})
    led = curate(tmp_path, df, embedding=embedding)
    assert [fate(led, r)["fate"] for r in "abcd"] == ["kept", "kept", "kept", "dropped"]
    assert [fate(led, r)["reasons"] for r in "bc"] == [[], []]
    d = fate(led, "d")
    assert (d["reasons"], d["duplicate_of"]) == (["near_duplicate"], "a")
    steps = json.loads((tmp_path / "out" / "manifest.json").read_text())["steps"]
    summary = next(s for s in steps if s["name"] == "dedup")["summary"]
    # Each of b and c is a MinHash candidate of a and d; b and c are one of each other.
    assert summary["minhash_pairs_rejected"] == 5 and summary["minhash_pairs"] == 1


@pytest.mark.parametrize("words", [64, 93])
def test_a_negation_is_not_a_copy_s_edit_in_a_long_message_either(tmp_path, words):
    # 64 words, then 65 with "not": one side counted as long, and the pair was taken unchecked; two long
    # messages (93 and 94 words) were never checked at all.
    base = ARRIVAL.replace("has not arrived", "has arrived")
    text = " ".join([base] * 2 + ["thanks"] * (words - 62) if words == 64 else [base] * 3)
    assert len(text.split()) == words
    longer = " ".join([base] * 3 + ["thanks"] * 3)  # a copy with words added, still one of the pair kept
    df = pl.DataFrame({"id": ["a", "b", "c"], "text": [text, text.replace("has arrived", "has not arrived", 1),
                                                       longer if words == 93 else text + " please"],
                       "label": ["card_arrival"] * 3})
    led = curate(tmp_path, df, embedding=False)
    assert [fate(led, r)["fate"] for r in "abc"] == ["kept", "kept", "dropped"]
    assert fate(led, "c")["duplicate_of"] == "a"


def test_a_near_copy_of_a_kept_label_conflict_in_a_later_split_is_leakage(tmp_path):
    # x2 (test) is a near copy of x1 (test) with another label, so it is kept; y (train) is a near copy of
    # x2 but not of x1 (two word insertions, one edit allowed). x1 leads and takes x2, so y led a cluster of
    # its own and was kept: a near copy of a kept test row left in train.
    df = pl.DataFrame({"id": ["x1", "x2", "y"],
                       "text": ["how do I top up my card", "how do I top up my virtual card",
                                "how do I quickly top up my virtual card"],
                       "split": ["test", "test", "train"],
                       "label": ["top_up_card", "top_up_virtual_card", "top_up_virtual_card"]})
    led = curate(tmp_path, df, embedding=True, max_word_edits=1)
    x1, x2, y = (fate(led, r) for r in ("x1", "x2", "y"))
    assert (x1["fate"], x2["fate"]) == ("kept", "kept")
    assert x2["reasons"] == ["conflicting_label_duplicate"] and x2["dedup_cluster"] == "x1"
    # Named a copy of x2, the text it was compared with, not of x1, which leads x2's cluster.
    assert (y["fate"], y["reasons"], y["duplicate_of"]) == ("dropped", ["leakage"], "x2")
    steps = json.loads((tmp_path / "out" / "manifest.json").read_text())["steps"]
    summary = next(s for s in steps if s["name"] == "dedup")["summary"]
    assert summary["dropped_by_reason"] == {"leakage": 1} and summary["label_conflicts_kept"] == 1


def dedup_summary(tmp_path) -> dict:
    steps = json.loads((tmp_path / "out" / "manifest.json").read_text())["steps"]
    return next(s for s in steps if s["name"] == "dedup")["summary"]


def test_the_texts_a_leak_led_are_clustered_again_until_no_leak_is_left(tmp_path):
    # The table above, where the leak y leads a cluster of its own. Two edits allowed: x2 is x1 plus two words,
    # z is x2 plus "quickly", y is z plus "today" (x2 plus two), y2 is y's text, w is z plus "right now" and
    # v is y plus "thanks"; w exchanges content words with y and v, so is a copy of neither. y leads y2, z and
    # v; w leads alone. Before, only y was dropped as leakage: y2, z and v stayed dropped as copies of y, a
    # dropped row, and z, a near copy of the test row x2 as well, was not called leakage. Now y's text leaves
    # the clustering: z leads, takes w and v, and then leaks to x2 itself; its text leaves in turn, and w
    # and v, near copies of no row left, are kept.
    z = "how do I quickly top up my new virtual card"
    df = pl.DataFrame({"id": ["x1", "x2", "y", "y2", "z", "w", "v"],
                       "text": ["how do I top up my card", "how do I top up my new virtual card", z + " today",
                                "How do I quickly top up my new virtual card today?", z, z + " right now",
                                z + " today thanks"],
                       "split": ["test", "test"] + ["train"] * 5,
                       "label": ["top_up_card"] + ["top_up_virtual_card"] * 6})
    led = curate(tmp_path, df, embedding=True)
    got = {r: (fate(led, r)["fate"], fate(led, r)["reasons"], fate(led, r)["duplicate_of"]) for r in df["id"]}
    conflict = ["conflicting_label_duplicate"]
    assert got == {"x1": ("kept", conflict, None), "x2": ("kept", conflict, None),
                   "y": ("dropped", ["leakage"], "x2"), "y2": ("dropped", ["leakage"], "x2"),
                   "z": ("dropped", ["leakage"], "x2"), "w": ("kept", [], None), "v": ("kept", [], None)}
    assert dedup_summary(tmp_path)["dropped_by_reason"] == {"leakage": 3}
    # Each leaked text, led by y or by z, joins x2's cluster (its label not judged with the cluster's); before,
    # y and y2 were a cluster of their own (named y) and z none.
    assert [fate(led, r)["dedup_cluster"] for r in ("y", "y2", "z", "w")] == ["x1", "x1", "x1", None]
    assert dedup_summary(tmp_path)["clusters"] == 1


def test_a_leaked_text_and_its_exact_copies_join_the_cluster_of_the_row_they_copy(tmp_path):
    # The table of the first leakage test above, and y2, an exact copy of the leak y. y led y2, so y and y2 were
    # a cluster of their own: dedup_cluster named y, and the summary counted two clusters, while a train copy
    # found inside x1's cluster names x1. duplicate_of names x2, the row y was compared with.
    df = pl.DataFrame({"id": ["x1", "x2", "y", "y2"],
                       "text": ["how do I top up my card", "how do I top up my virtual card",
                                "how do I quickly top up my virtual card", "How do I quickly top up my virtual card?"],
                       "split": ["test", "test", "train", "train"],
                       "label": ["top_up_card", "top_up_virtual_card", "top_up_virtual_card", "top_up_virtual_card"]})
    led = curate(tmp_path, df, embedding=True, max_word_edits=1)
    got = {r: (fate(led, r)["reasons"], fate(led, r)["duplicate_of"], fate(led, r)["dedup_cluster"]) for r in df["id"]}
    conflict = ["conflicting_label_duplicate"]
    assert got == {"x1": (conflict, None, "x1"), "x2": (conflict, None, "x1"),
                   "y": (["leakage"], "x2", "x1"), "y2": (["leakage"], "x2", "x1")}
    summary = dedup_summary(tmp_path)
    assert summary["clusters"] == 1 and summary["conflicting_label_groups"] == 1
    assert summary["dropped_by_reason"] == {"leakage": 2}


@pytest.mark.parametrize("another_label", [False, True])
def test_a_representative_flagged_for_the_label_of_a_leak_is_flagged_no_more(tmp_path, another_label):
    # The table above, and r, a near copy of the leak k with another label, leads it (r comes first): k was
    # kept as r's label conflict and r flagged for it. k is dropped as leakage, so r's cluster holds one
    # label and r was still flagged; with s, a near copy of r alone with a third label, r stays flagged.
    y = "how do I quickly top up my virtual card"
    ids, texts = ["x1", "x2", "r", "k"], ["how do I top up my card", "how do I top up my virtual card", y + " now", y]
    labels = ["top_up_card", "top_up_virtual_card", "top_up_card", "top_up_virtual_card"]
    if another_label:
        ids, texts, labels = ids + ["s"], texts + [y + " now please"], labels + ["card_linking"]
    df = pl.DataFrame({"id": ids, "text": texts, "split": ["test", "test"] + ["train"] * (len(ids) - 2),
                       "label": labels})
    led = curate(tmp_path, df, embedding=True, max_word_edits=1)
    got = {r: (fate(led, r)["fate"], fate(led, r)["reasons"], fate(led, r)["duplicate_of"]) for r in ids}
    conflict = ["conflicting_label_duplicate"]
    want = {"x1": ("kept", conflict, None), "x2": ("kept", conflict, None),
            "r": ("kept", conflict if another_label else [], None), "k": ("dropped", ["leakage"], "x2")}
    if another_label:
        want["s"] = ("kept", conflict, None)
    assert got == want
    assert fate(led, "r")["dedup_cluster"] == ("r" if another_label else None)
    score = fate(led, "r")["dedup_score"]
    assert (score < 1) if another_label else (score == 1.0)
    summary = dedup_summary(tmp_path)
    assert summary["conflicting_label_groups"] == 1 + another_label
    assert summary["label_conflicts_kept"] == 1 + another_label


def test_knn_on_hnsw_returns_the_same_neighbours_every_run(monkeypatch):
    # faiss builds an HNSW graph in parallel in an order that depends on thread timing, so the graph,
    # and the near pairs read from it, could differ between two runs on the same vectors.
    import faiss
    import numpy as np

    from curatune.curate import dedup

    monkeypatch.setattr(dedup, "EXACT_KNN_MAX", 100)
    vecs = np.random.default_rng(0).standard_normal((3000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        runs = [dedup.knn(vecs, 10) for _ in range(3)]
        assert faiss.omp_get_max_threads() == 2  # the caller's setting is restored
    finally:
        faiss.omp_set_num_threads(threads)
    for dist, nbr in runs[1:]:
        assert np.array_equal(nbr, runs[0][1]) and np.array_equal(dist, runs[0][0])


def test_the_truth_links_dedup_scores_are_the_ones_loading_reads_as_ids():
    # The pipeline kept its own copy of the tuple: a link added to one was scored but not read as an id.
    from curatune.curate import pipeline
    from curatune.curate.dedup import TRUTH_LINKS, dedup_truth_scores

    assert pipeline.TRUTH_LINKS is TRUTH_LINKS
    truth = pl.DataFrame({"row_id": ["a", "b"], **{c: [None, "a"] for c in TRUTH_LINKS}})
    rows = pl.DataFrame({"row_id": ["a", "b"], "dedup_cluster": ["a", "a"], "duplicate_of": [None, "a"],
                         "reason": [None, "exact_duplicate"]})
    scores = dedup_truth_scores(rows, truth)
    assert [scores[c.replace("_of", "_recall")] for c in TRUTH_LINKS] == [1.0] * len(TRUTH_LINKS)

from __future__ import annotations

import polars as pl
import pytest

from curatune.errors import CuratuneError
from curatune.train.data import IGNORE, holdout_validation, load_train_data
from tests.train.conftest import make_rows, write_curated


def test_holdout_is_stratified_seeded_and_leaves_train_rows(tmp_path):
    rows = make_rows(300, 0, "train", "r") + [
        {"row_id": "rare:0", "text": "x", "label": "rare", "split": "train", "channel": "chat"}]
    df = pl.DataFrame(rows)
    mask = holdout_validation(df, 0.1, seed=3)
    again = holdout_validation(df, 0.1, seed=3)
    other = holdout_validation(df, 0.1, seed=4)
    assert (mask == again).all() and not (mask == other).all()
    held = df.filter(pl.Series(mask))
    assert held["label"].value_counts().sort("label").rows() == [("card", 10), ("login", 10), ("refund", 10)]
    # A label with a single row keeps it for training.
    assert "rare" not in held["label"].to_list()


def test_load_holds_out_validation_and_records_it(tmp_path):
    d = write_curated(tmp_path, make_rows(90, 0, "train", "a") + make_rows(9, 1, "test", "t"))
    data = load_train_data(d, seed=0)
    assert data.validation_held_out and data.counts["validation_held_out_from_train"]
    assert (data.train.height, data.validation.height, data.test.height) == (81, 9, 9)
    assert data.labels == ["card", "login", "refund"]
    assert set(data.splits["split"].unique()) == {"train", "validation", "test"}
    held = data.splits.filter(pl.col("split") == "validation")
    assert set(held["source_split"]) == {"train"}
    assert not set(held["row_id"]) & set(data.train["row_id"])


def test_existing_validation_split_is_used_and_unknown_labels_are_ignored(tmp_path):
    rows = make_rows(30, 0, "train", "a") + make_rows(6, 1, "validation", "v")
    rows.append({"row_id": "v:new", "text": "something else", "label": "brand_new", "split": "validation",
                 "channel": "chat"})
    data = load_train_data(write_curated(tmp_path, rows), seed=0)
    assert not data.validation_held_out and data.train.height == 30 and data.validation.height == 7
    assert data.counts["unseen_label_rows"]["validation"] == 1
    assert data.label_ids("validation")[-1] == IGNORE


@pytest.mark.parametrize("given", [None, "brand_new"])
def test_a_validation_split_the_model_cannot_score_is_kept_beside_a_held_out_one(tmp_path, given):
    # Unlabelled validation rows, or rows whose labels train never has: 10% of train is held out to
    # choose the checkpoint, and the given rows stay in validation, predicted but never scored.
    rows = make_rows(90, 0, "train", "a") + [
        {"row_id": f"v:{i}", "text": f"a question {i}", "label": given, "split": "validation", "channel": "chat"}
        for i in range(4)]
    data = load_train_data(write_curated(tmp_path, rows), seed=0)
    assert data.validation_held_out and (data.train.height, data.validation.height) == (81, 13)
    ids = data.validation["row_id"].to_list()
    assert ids[-4:] == ["v:0", "v:1", "v:2", "v:3"] and (data.label_ids("validation")[-4:] == IGNORE).all()
    assert (data.label_ids("validation")[:9] != IGNORE).all()
    kept = data.splits.filter(pl.col("row_id").str.starts_with("v:"))
    assert kept["split"].to_list() == ["validation"] * 4 and kept["source_split"].to_list() == ["validation"] * 4


def test_bad_curated_tables_are_user_errors(tmp_path):
    with pytest.raises(CuratuneError, match="no curated.parquet"):
        load_train_data(tmp_path / "missing", seed=0)
    one = write_curated(tmp_path / "one", [{"row_id": "a", "text": "t", "label": "x", "split": "train"}] * 1)
    with pytest.raises(CuratuneError, match="at least two labels"):
        load_train_data(one, seed=0)
    bad = write_curated(tmp_path / "bad", [{"row_id": "a", "text": "t", "label": "x", "split": "holdout2"}])
    with pytest.raises(CuratuneError, match="split is not train, validation or test .*split 'holdout2'"):
        load_train_data(bad, seed=0)
    nolab = write_curated(tmp_path / "nolab", [{"row_id": "a", "text": "t", "label": None, "split": "train"}])
    with pytest.raises(CuratuneError, match="no labelled training rows"):
        load_train_data(nolab, seed=0)
    nocol = write_curated(tmp_path / "nocol", [{"row_id": "a", "body": "t", "label": "x", "split": "train"}])
    with pytest.raises(CuratuneError, match="curated table lacks a required column") as err:
        load_train_data(nocol, seed=0)
    assert err.value.column == "text"


@pytest.mark.parametrize(("change", "message", "column"), [
    ({"row_id": None}, "row without a row_id \\(a null row_id", "row_id"),
    ({"row_id": "r0"}, "row_id appears more than once \\(row_id 'r0'", "row_id"),
    ({"text": None}, "row without text \\(row_id 'r3', text null\\)", "text"),
    ({"split": None}, "split is not train, validation or test \\(row_id 'r3', split null\\)", "split"),
])
def test_a_hand_made_curated_table_is_checked_row_by_row(tmp_path, change, message, column):
    """Curate never writes such rows; a table made by hand can, and each would vanish or be ambiguous."""
    rows = [{"row_id": f"r{i}", "text": f"text {i}", "label": "ab"[i % 2], "split": "train"} for i in range(8)]
    rows[3] = {**rows[3], **change}
    d = write_curated(tmp_path / "c", rows)
    with pytest.raises(CuratuneError, match=message) as err:
        load_train_data(d, seed=0)
    assert err.value.row == 4 and err.value.column == column


@pytest.mark.parametrize(("column", "values", "message"), [
    ("text", [7, 8], "column must hold text \\(strings\\), not Int64"),
    ("text", [["a"], ["b"]], "column must hold text \\(strings\\), not List"),
    ("label", [["x"], ["y"]], "column must hold one value per row, not List"),
])
def test_a_hand_made_table_with_columns_of_the_wrong_kind_is_a_user_error(tmp_path, column, values, message):
    # The tokenizer's ValueError, or polars' cast error, was a traceback.
    rows = [{"row_id": f"r{i}", "text": f"text {i}", "label": "ab"[i % 2], "split": "train"} for i in range(2)]
    d = write_curated(tmp_path / "c", [{**r, column: v} for r, v in zip(rows, values, strict=True)])
    with pytest.raises(CuratuneError, match=message) as err:
        load_train_data(d, seed=0)
    assert err.value.column == column


def test_a_hand_made_table_s_cell_values_are_not_repeated_when_they_may_be_personal_data(tmp_path):
    rows = [{"row_id": f"r{i}", "text": f"text {i}", "label": "ab"[i % 2], "split": "train"} for i in range(4)]
    rows[2] = {**rows[2], "row_id": "jane.doe@example.com", "split": "Hi, I'm Jane Doe"}
    d = write_curated(tmp_path / "c", rows)
    with pytest.raises(CuratuneError) as err:
        load_train_data(d, seed=0)
    assert "Jane" not in str(err.value) and "jane" not in str(err.value)
    assert "split is not train, validation or test (row_id (value not shown" in str(err.value)


def test_a_damaged_curated_table_is_a_user_error(tmp_path):
    d = write_curated(tmp_path / "c", [{"row_id": "a", "text": "t", "label": "x", "split": "train"}])
    (d / "curated.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(CuratuneError, match="cannot read Parquet table"):
        load_train_data(d, seed=0)


@pytest.mark.parametrize(("labels", "order"), [
    ([1, 2, 10], ["1", "2", "10"]),  # an integer label column
    (["10", "9", "-1", "+2"], ["-1", "+2", "9", "10"]),
    (["10", "9", "b", "a"], ["10", "9", "a", "b"]),  # not all integers: as strings sort
])
def test_integer_labels_are_numbered_in_numeric_order(tmp_path, labels, order):
    rows = [{**r, "label": labels[i % len(labels)]} for i, r in enumerate(make_rows(40, 0, "train", "a"))]
    data = load_train_data(write_curated(tmp_path, rows), seed=0)
    assert data.labels == order


def _ledger(rows: list[dict], relabelled: set[str], reviewed: set[str] = frozenset()) -> pl.DataFrame:
    """The ledger columns load_train_data reads, as curation writes them."""
    return pl.DataFrame({
        "row_id": [r["row_id"] for r in rows],
        "fate": ["relabelled" if r["row_id"] in relabelled else "kept" for r in rows],
        "reasons": [["label_issue"] + (["human_review"] if r["row_id"] in reviewed else [])
                    if r["row_id"] in relabelled else [] for r in rows],
        "original_label": ["old" if r["row_id"] in relabelled else r["label"] for r in rows],
        "final_label": [r["label"] for r in rows],
    }, schema_overrides={"reasons": pl.List(pl.String)})


def test_rows_a_model_relabelled_are_never_held_out_to_score_the_model(tmp_path):
    # With policy "relabel" and no validation split, the held-out rows choose the checkpoint and give
    # the headline: a label the model wrote there would grade the model on its own opinion.
    rows = make_rows(90, 0, "train", "a") + make_rows(9, 1, "test", "t")
    relabelled = {r["row_id"] for r in rows[:90] if int(r["row_id"].split(":")[1]) % 2}
    by_person = {"a:1", "a:3", "a:5"}  # a reviewer settled these: their labels are a person's
    d = write_curated(tmp_path, rows)
    _ledger(rows, relabelled, by_person).write_parquet(d / "ledger.parquet")
    data = load_train_data(d, seed=0)
    held = set(data.validation["row_id"].to_list())
    assert data.validation.height == 9 and not held & (relabelled - by_person)
    assert data.counts["relabelled_rows_not_held_out"] == len(relabelled - by_person) == 42
    assert data.train.height == 81 and (relabelled - by_person) <= set(data.train["row_id"].to_list())
    # A curated table written by hand with integer ids: read as the ledger's text ids.
    numeric = [{**r, "row_id": i} for i, r in enumerate(rows)]
    write_curated(tmp_path / "numeric", numeric)
    _ledger([{**r, "row_id": str(i)} for i, r in enumerate(rows)],
            {str(i) for i, r in enumerate(rows) if r["row_id"] in relabelled}).write_parquet(
        tmp_path / "numeric" / "ledger.parquet")
    held = set(load_train_data(tmp_path / "numeric", seed=0).validation["row_id"].cast(pl.String).to_list())
    assert len(held) == 9 and not held & {str(i) for i, r in enumerate(rows) if r["row_id"] in relabelled}
    # Without the ledger's relabelled rows the draw is the one every earlier run made.
    (d / "ledger.parquet").unlink()
    plain = load_train_data(d, seed=0)
    _ledger(rows, set()).write_parquet(d / "ledger.parquet")
    assert load_train_data(d, seed=0).validation["row_id"].to_list() == plain.validation["row_id"].to_list()

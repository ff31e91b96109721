"""The dataset contract: formats, column mapping, row ids, turn aggregation, bad input."""

from __future__ import annotations

import json

import polars as pl
import pytest

from curatune.config import DataConfig
from curatune.dataset import load_dataset
from curatune.errors import CuratuneError


def test_csv_jsonl_parquet_same_rows(tmp_path):
    df = pl.DataFrame({"body": ["a b", "c d"], "intent": ["x", "y"], "channel": ["chat", "email"]})
    df.write_csv(tmp_path / "d.csv")
    df.write_ndjson(tmp_path / "d.jsonl")
    df.write_parquet(tmp_path / "d.parquet")
    cfg = DataConfig(text_col="body", label_col="intent", group_cols=["channel"])
    for name in ("d.csv", "d.jsonl", "d.parquet"):
        rows = load_dataset([tmp_path / name], cfg).rows
        assert rows["text"].to_list() == ["a b", "c d"]
        assert rows["label"].to_list() == ["x", "y"]
        assert rows["channel"].to_list() == ["chat", "email"]
        assert rows["row_id"].to_list() == ["d:0", "d:1"]
        assert rows["split"].to_list() == ["train", "train"]


def test_source_ids_and_duplicates_keep_distinct_ids(tmp_path):
    pl.DataFrame({"id": ["a", "b", "c"], "text": ["same", "same", "other"]}).write_csv(tmp_path / "d.csv")
    rows = load_dataset([tmp_path / "d.csv"], DataConfig(id_col="id")).rows
    assert rows["row_id"].to_list() == ["a", "b", "c"]


def test_duplicate_source_id_is_an_error(tmp_path):
    pl.DataFrame({"id": ["a", "a"], "text": ["x", "y"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError, match="row id 'a' occurs more than once"):
        load_dataset([tmp_path / "d.csv"], DataConfig(id_col="id"))


def test_turns_aggregated_in_order(tmp_path):
    rows = [
        {"conversation_id": "c1", "turn": 2, "speaker": "agent", "text": "Sure.", "label": "refund", "region": "EU"},
        {"conversation_id": "c1", "turn": 1, "speaker": "customer", "text": "Refund please", "label": "refund",
         "region": "EU"},
        {"conversation_id": "c2", "turn": 1, "speaker": "customer", "text": "Where is it", "label": "shipping",
         "region": "NA"},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = DataConfig(conversation_col="conversation_id", group_cols=["region"])
    out = load_dataset([tmp_path / "t.jsonl"], cfg).rows
    assert out["row_id"].to_list() == ["c1", "c2"]
    assert out["text"][0] == "customer: Refund please\nagent: Sure."
    assert out["turns"][0].to_list() == [{"speaker": "customer", "text": "Refund please"},
                                         {"speaker": "agent", "text": "Sure."}]
    assert out["region"].to_list() == ["EU", "NA"]


def test_split_aliases(tmp_path):
    pl.DataFrame({"text": ["a", "b", "c"], "split": ["dev", "TEST", None]}).write_csv(tmp_path / "d.csv")
    rows = load_dataset([tmp_path / "d.csv"], DataConfig()).rows
    assert rows["split"].to_list() == ["validation", "test", "train"]


def test_null_and_empty_text_go_to_unusable(tmp_path):
    pl.DataFrame({"text": ["ok", None, "   ", "fine"]}).write_parquet(tmp_path / "d.parquet")
    loaded = load_dataset([tmp_path / "d.parquet"], DataConfig())
    assert loaded.rows["row_id"].to_list() == ["d:0", "d:3"]
    assert loaded.unusable["row_id"].to_list() == ["d:1", "d:2"]
    assert set(loaded.unusable["reason"]) == {"empty_text"}
    assert loaded.n_input == 4


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "empty.csv", "input file is empty"),
        (b"text\n", "header_only.csv", "input file has no rows"),
        (b"text\nok\n\xff\xfe bad\n", "latin.csv", "line 3 is not valid UTF-8"),
        (b"body\nhello\n", "nocol.csv", "missing text column"),
        (b"text\nhello\n", "data.xlsx", "unsupported file type"),
        (b"{not json\n", "broken.jsonl", "cannot read file"),
    ],
)
def test_bad_input_one_line_error(tmp_path, content, name, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(CuratuneError) as err:
        load_dataset([p], DataConfig())
    text = str(err.value)
    assert message in text
    assert str(p) in text
    assert "\n" not in text


def test_missing_file(tmp_path):
    with pytest.raises(CuratuneError, match="input file not found"):
        load_dataset([tmp_path / "nope.csv"], DataConfig())


def test_directory_input_is_an_error(tmp_path):
    (tmp_path / "exports").mkdir()
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "exports"], DataConfig())
    assert str(err.value) == f"{tmp_path / 'exports'}: input is a directory, expected a .csv, .jsonl or .parquet file"


def test_empty_source_id_names_its_row(tmp_path):
    pl.DataFrame({"id": ["a", None, "c"], "text": ["x", "y", "z"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], DataConfig(id_col="id"))
    assert str(err.value) == f"{tmp_path / 'd.csv'}, row 2, column 'id': id is empty"


def test_missing_label_column_when_required(tmp_path):
    pl.DataFrame({"text": ["a"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError, match="missing label column"):
        load_dataset([tmp_path / "d.csv"], DataConfig(), require_label=True)


def test_missing_group_column(tmp_path):
    pl.DataFrame({"text": ["a"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError, match="missing group column"):
        load_dataset([tmp_path / "d.csv"], DataConfig(group_cols=["region"]))


def test_reserved_column_clash(tmp_path):
    pl.DataFrame({"body": ["a"], "text": ["b"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError, match="clashes with a reserved column"):
        load_dataset([tmp_path / "d.csv"], DataConfig(text_col="body"))


def test_bad_turn_order(tmp_path):
    # The bad row also has an empty speaker cell: the row number must still be its own.
    pl.DataFrame({"conversation_id": ["c", "c", "c"], "turn": ["0", "1", "second"],
                  "speaker": ["customer", "agent", None], "text": ["x", "y", "z"]}).write_csv(tmp_path / "t.csv")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "t.csv"], DataConfig(conversation_col="conversation_id"))
    assert str(err.value) == f"{tmp_path / 't.csv'}, row 3, column 'turn': turn order must be an integer"

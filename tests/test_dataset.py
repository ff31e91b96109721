"""The dataset contract: formats, column mapping, row ids, turn aggregation, bad input."""

from __future__ import annotations

import csv
import json
import re
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from curatune import dataset
from curatune.config import DataConfig, config_from_dict
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


def test_duplicate_source_id_is_an_error_naming_the_file_and_row(tmp_path):
    pl.DataFrame({"id": ["a", "b", "a"], "text": ["x", "y", "z"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], DataConfig(id_col="id"))
    assert str(err.value).startswith(f"{tmp_path / 'd.csv'}, row 3, column 'id': row id 'a' occurs more than once")
    pl.DataFrame({"id": ["a"], "text": ["x"]}).write_csv(tmp_path / "d.csv")
    pl.DataFrame({"id": ["c", "a"], "text": ["x", "y"]}).write_csv(tmp_path / "e.csv")
    with pytest.raises(CuratuneError, match="row id 'a' is in both d.csv and e.csv"):
        load_dataset([tmp_path / "d.csv", tmp_path / "e.csv"], DataConfig(id_col="id"))


@pytest.mark.parametrize("value", ["maria.g@example.com", "Maria Gonzalez called", "4111111111111111",
                                   "415-555-0132", "+44.20.7946.0958"])
def test_error_messages_do_not_repeat_a_cell_that_may_be_personal_data(tmp_path, value):
    """Messages reach terminals and CI logs; a misconfigured column (the text as the id or split) holds text."""
    pl.DataFrame({"id": [value, value], "text": ["x", "y"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError, match="row id \\(value not shown: it may hold personal data\\) occurs") as err:
        load_dataset([tmp_path / "d.csv"], DataConfig(id_col="id"))
    assert value not in str(err.value)
    pl.DataFrame({"text": ["a", "b"], "split": ["train", value]}).write_csv(tmp_path / "s.csv")
    with pytest.raises(CuratuneError, match="split \\(value not shown: it may hold personal data\\) is not") as err:
        load_dataset([tmp_path / "s.csv"], DataConfig())
    assert value.lower() not in str(err.value).lower() and err.value.row == 2


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
        (b"{not json\n", "broken.jsonl", "line 1 is not valid JSON"),
        # Polars named no line or row for these, or read them without a word.
        (b'{"text": "a"}\n{"text": "b"}\n{"text": "c",\n{"text": "d"}\n', "midway.jsonl", "line 3 is not valid JSON"),
        (b"text,label\nhello,greet\nhi,greet,extra\n", "long_row.csv", "row 2 has 3 fields, the header 2"),
        (b"text,label\nhello,greet\nhi\nbye,bye\n", "short_row.csv", "row 2 has 1 field, the header 2"),
        (b"id,text,text,label\n1,a,b,x\n", "twice.csv", "column 'text' appears twice in the header"),
        # A value that opens a quote and never closes it: the message must not quote the cell.
        (b'text\tlabel\n"Maria Gonzalez 415 555 0134\tcard\nhello\tgreet\n', "open_quote.tsv",
         "row 1 has 1 field, the header 2"),
        # Polars stopped at these naming no row ("CSV malformed"), or read the CR-ended lines as one header.
        (b'text,label\nhello,a\nMaria has a 27" monitor,hw\nok,c\n', "inch.csv",
         "row 2 has a '\"' inside a value that is not quoted; quote the value and write each '\"' in it twice"),
        (b"text,label\rhello,a\rbye,b\r", "cr.csv", "lines end in a carriage return alone"),
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
    assert "\n" not in text and "Maria" not in text


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
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], DataConfig(group_cols=["region"]))
    # The CLI has no --group-col flag: the message named one.
    assert str(err.value).endswith("missing group column (columns are: text); map it with config [data]")


def test_a_missing_column_shows_only_the_names_no_personal_data_can_be_in(tmp_path):
    """A file without a header row: its first row was the column names, and the error printed them, the
    first transcript with its customer's name and card number."""
    (tmp_path / "d.csv").write_text("r0,My name is Zebulon Okonkwo card 4111 1111 1111 1111,refund\n"
                                    "r1,where is my parcel,delivery\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], DataConfig())
    assert str(err.value).endswith("missing text column (columns are: r0, refund and 1 more not shown (they may hold "
                                   "personal data: has the file a header row?)); map it with config [data] or "
                                   "curate's --text-col flag")


@pytest.mark.parametrize(("config", "message"), [
    ({"conversation_col": "conv"}, "missing conversation column (columns are: text); map it with config [data]"),
    ({"conversation_col": "text", "turn_col": "turn"},
     "missing turn column (columns are: text); map it with config [data]"),
    ({"label_col": "intent"}, "missing label column (columns are: text); map it with config [data] or curate's "
                              "--label-col flag"),
])
def test_a_missing_column_names_a_flag_only_where_one_exists(tmp_path, config, message):
    # "missing turn column ...; map it with config [data] or a --turn-col flag": there is no such flag.
    pl.DataFrame({"text": ["a"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], DataConfig(**config), require_label="label_col" in config)
    assert str(err.value).endswith(message)


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


def _turns_file(tmp_path, rows: list[dict]):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_an_empty_conversation_id_is_refused_not_merged_into_one_row_with_a_null_id(tmp_path):
    path = _turns_file(tmp_path, [
        {"conversation_id": "c1", "turn": 1, "speaker": "customer", "text": "hello"},
        {"conversation_id": None, "turn": 1, "speaker": "customer", "text": "my email is jane@example.com"},
        {"conversation_id": " ", "turn": 2, "speaker": "agent", "text": "thanks"}])
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(conversation_col="conversation_id"))
    assert str(err.value) == f"{path}, row 2, column 'conversation_id': conversation id is empty"


def test_a_turn_without_speaker_keeps_its_text_and_blank_turns_say_nothing(tmp_path):
    path = _turns_file(tmp_path, [
        {"conversation_id": "c1", "turn": 1, "speaker": "customer", "text": "hello there"},
        {"conversation_id": "c1", "turn": 2, "speaker": None, "text": "[chat transferred]"},
        {"conversation_id": "c1", "turn": 3, "speaker": "agent", "text": "   "},
        {"conversation_id": "c2", "turn": 1, "speaker": "customer", "text": "  "},
        {"conversation_id": "c2", "turn": 2, "speaker": "agent", "text": ""}])
    loaded = load_dataset([path], DataConfig(conversation_col="conversation_id"))
    c1 = loaded.rows.row(0, named=True)
    assert c1["text"] == "customer: hello there\n[chat transferred]"
    assert c1["turns"] == [{"speaker": "customer", "text": "hello there"},
                           {"speaker": None, "text": "[chat transferred]"}]
    # A conversation of blank turns is empty text, dropped with its reason like any other.
    assert loaded.unusable["row_id"].to_list() == ["c2"] and loaded.unusable["reason"].to_list() == ["empty_text"]


@pytest.mark.parametrize("column", ["reason", "active", "reasons", "dropped_by", "duplicate_of", "original_label",
                                    "fate", "turns"])
def test_input_columns_curation_would_overwrite_are_refused_by_name(tmp_path, column):
    pl.DataFrame({"text": ["a"], column: ["x"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], DataConfig())
    assert str(err.value) == (f"{tmp_path / 'd.csv'}, column '{column}': input column '{column}' clashes with a "
                              "column curation adds; rename it")


def test_a_reserved_name_mapped_onto_a_role_is_fine(tmp_path):
    pl.DataFrame({"reason": ["refund please"], "fate": ["refund"]}).write_csv(tmp_path / "d.csv")
    rows = load_dataset([tmp_path / "d.csv"], DataConfig(text_col="reason", label_col="fate")).rows
    assert rows.select("text", "label").row(0) == ("refund please", "refund")


def test_a_row_id_column_is_used_only_when_named_as_the_id(tmp_path):
    pl.DataFrame({"row_id": ["t-1", "t-2"], "text": ["a", "b"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], DataConfig())
    assert "input column 'row_id' would be replaced by curatune's own ids" in str(err.value)
    assert 'id_col = "row_id"' in str(err.value)
    assert load_dataset([tmp_path / "d.csv"], DataConfig(id_col="row_id")).rows["row_id"].to_list() == ["t-1", "t-2"]


def test_blank_split_is_train_and_an_unknown_split_is_refused_at_load(tmp_path):
    pl.DataFrame({"text": ["a", "b", "c"], "split": [" ", "VAL", "Test"]}).write_csv(tmp_path / "ok.csv")
    assert load_dataset([tmp_path / "ok.csv"], DataConfig()).rows["split"].to_list() == ["train", "validation", "test"]
    pl.DataFrame({"text": ["a", "b"], "split": ["train", "Training"]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], DataConfig())
    assert str(err.value).startswith(f"{tmp_path / 'd.csv'}, row 2, column 'split': split 'training' is not train, "
                                     "validation or test (also read: val = validation,")
    path = _turns_file(tmp_path, [{"conversation_id": "c9", "turn": 1, "speaker": "customer", "text": "hi",
                                   "split": "holdout2"}])
    with pytest.raises(CuratuneError, match="split 'holdout2' \\(conversation 'c9'\\) is not train"):
        load_dataset([path], DataConfig(conversation_col="conversation_id"))


@pytest.mark.parametrize(("record", "column", "kind"), [({"text": "hi", "label": ["card", "refund"]}, "label", "list"),
                                                      ({"text": {"a": 1}, "label": "x"}, "text", "object")])
def test_a_list_or_object_among_plain_json_values_is_refused_with_its_line(tmp_path, record, column, kind):
    """Polars read '["card", "refund"]' among string labels as the string, a class of its own."""
    import gzip

    lines = json.dumps({"text": "hello", "label": "greet"}) + "\n" + json.dumps(record) + "\n"
    (tmp_path / "d.jsonl").write_text(lines)
    (tmp_path / "g.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    for path in (tmp_path / "d.jsonl", tmp_path / "g.jsonl.gz"):
        with pytest.raises(CuratuneError) as err:
            load_dataset([path], DataConfig())
        assert str(err.value) == (f"{path}, column '{column}': line 2 holds a JSON {kind} where a plain value belongs "
                                  "(for a list of messages: one row per turn with [data] conversation_col)")


@pytest.mark.parametrize("role", ["text", "label", "split"])
def test_a_duration_column_where_text_is_read_is_refused_by_column(tmp_path, role):
    """Polars has no text form for a duration: the cast stopped with a traceback."""
    import datetime

    path = tmp_path / "d.parquet"
    pl.DataFrame({"text": ["hello there", "bye now"], "label": ["x", "y"],
                  role: [datetime.timedelta(minutes=3)] * 2}).write_parquet(path)
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    assert str(err.value) == (f"{path}, column '{role}': {role} column holds durations (Duration(time_unit='us')), "
                              "which have no text form here; write it as text or numbers")


def test_nested_text_or_label_values_are_refused_by_column(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": ["hi", "there"], "label": "x"}) + "\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(text_col="messages"))
    assert str(err.value).startswith(f"{path}, column 'messages': text column holds List(String) values")
    path.write_text(json.dumps({"text": "hi", "label": {"a": 1}}) + "\n")
    with pytest.raises(CuratuneError, match="column 'label': label column holds Struct"):
        load_dataset([path], DataConfig())


def test_a_csv_field_longer_than_the_csv_modules_limit_is_read(tmp_path):
    """The shape check's csv module stops at a 128 KiB field: a long transcript read as an unclosed quote."""
    path = tmp_path / "d.csv"
    long_text = "word " * 40_000
    path.write_text(f'text,label\n"{long_text}",x\nshort,y\n')
    rows = load_dataset([path], DataConfig()).rows
    assert rows["text"].str.len_chars().to_list() == [len(long_text), 5]
    assert csv.field_size_limit() == 131072  # the process-wide limit is put back


def test_a_csv_row_the_csv_module_cannot_read_is_refused_by_row(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "CSV_FIELD_LIMIT", 10)
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhi,x\nsomething longer,y\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    assert str(err.value) == f"{path}, row 2: row 2 cannot be read as CSV (field larger than field limit (10))"
    assert csv.field_size_limit() == 131072


def test_a_csv_quote_never_closed_is_refused_by_its_row(tmp_path):
    """It makes one field of the rest of the file: a record one field short."""
    path = tmp_path / "d.csv"
    path.write_text('text,label\nhello,x\n"never closed,y\nmore,z\n')
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    assert str(err.value) == (f"{path}, row 2: row 2 has 1 field, the header 2 (a field holding the separator or a "
                              "line break must be quoted)")


def test_a_nested_turn_column_of_a_per_turn_file_is_refused_by_column(tmp_path):
    """The turn column was never checked like the other columns read: its cast stopped with a traceback."""
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"conv": "c1", "turn": turn, "speaker": "customer", "text": "hi",
                                        "label": "x"}) + "\n" for turn in ([1], [2])))
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(conversation_col="conv"))
    assert str(err.value).startswith(f"{path}, column 'turn': turn column holds List(Int64) values")
    # Outside a per-turn file a column named turn is any other column, kept as it is.
    assert load_dataset([path], DataConfig()).rows.height == 2


def test_files_with_one_name_in_different_folders_are_told_apart_by_their_folder(tmp_path):
    (tmp_path / "2023").mkdir()
    (tmp_path / "2024").mkdir()
    for year in ("2023", "2024"):
        pl.DataFrame({"id": [f"{year}-1", "x"], "text": [f"from {year}", "b"]}).write_csv(tmp_path / year / "train.csv")
    a, b = tmp_path / "2023" / "train.csv", tmp_path / "2024" / "train.csv"
    rows = load_dataset([a, b], DataConfig()).rows
    assert rows["row_id"].to_list() == ["2023/train:0", "2023/train:1", "2024/train:0", "2024/train:1"]
    assert rows["source"].to_list() == ["2023/train.csv"] * 2 + ["2024/train.csv"] * 2
    # One stem, two names: the name tells the rows apart; files whose names differ keep the plain stem.
    pl.DataFrame({"text": ["c"]}).write_ndjson(tmp_path / "train.jsonl")
    pl.DataFrame({"text": ["d"]}).write_csv(tmp_path / "other.csv")
    rows = load_dataset([tmp_path / "2023" / "train.csv", tmp_path / "train.jsonl", tmp_path / "other.csv"],
                        DataConfig()).rows
    assert rows["row_id"].to_list() == ["train.csv:0", "train.csv:1", "train.jsonl:0", "other:0"]
    # Where even that would number two files' rows alike, they are refused as before.
    pl.DataFrame({"text": ["e"]}).write_csv(tmp_path / "train.csv.csv")
    with pytest.raises(CuratuneError, match="would both number their rows 'train.csv:N'; rename one"):
        load_dataset([a, tmp_path / "train.jsonl", tmp_path / "train.csv.csv"], DataConfig())
    # The files' own ids: one id in both is refused naming both files, which the same name made one
    # (the check crashed with an IndexError).
    with pytest.raises(CuratuneError) as err:
        load_dataset([a, b], DataConfig(id_col="id"))
    assert str(err.value) == ("column 'id': row id 'x' is in both 2023/train.csv and 2024/train.csv; ids must be "
                              "unique across the input files")
    pl.DataFrame({"id": ["2024-1"], "text": ["from 2024"]}).write_csv(b)
    assert load_dataset([a, b], DataConfig(id_col="id")).rows["row_id"].to_list() == ["2023-1", "x", "2024-1"]


def test_one_conversation_in_two_files_of_one_name_is_refused_naming_both(tmp_path):
    for folder, text in (("ta", "hi"), ("tb", "other")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "t.jsonl").write_text(json.dumps({"conversation_id": "c1", "turn": 1,
                                                               "speaker": "customer", "text": text}) + "\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "ta" / "t.jsonl", tmp_path / "tb" / "t.jsonl"],
                     DataConfig(conversation_col="conversation_id"))
    assert str(err.value) == ("column 'conversation_id': row id 'c1' is in both ta/t.jsonl and tb/t.jsonl; ids must "
                              "be unique across the input files")


@pytest.mark.parametrize("id_col", ["", "id"])
def test_the_same_file_given_twice_is_refused(tmp_path, id_col):
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "d.csv"
    path.write_text("id,text\n1,hello\n2,world\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([path, path], DataConfig(id_col=id_col))
    assert str(err.value) == f"{path}: input file is given twice; give each file once"
    other = tmp_path / "a" / ".." / "a" / "d.csv"
    with pytest.raises(CuratuneError) as err:
        load_dataset([path, other], DataConfig(id_col=id_col))
    assert str(err.value) == f"{other}: input file is given twice (also as {path}); give each file once"


@pytest.mark.parametrize(("column", "values"), [("label", ["refund", "return"]), ("split", ["train", "test"]),
                                                ("region", ["EU", "NA"])])
def test_turns_of_one_conversation_that_disagree_on_label_split_or_group_are_refused(tmp_path, column, values):
    # The first turn's value won without a word: a conversation partly marked test could land in train.
    rows = [{"conversation_id": "c1", "turn": i + 1, "speaker": "customer", "text": f"turn {i}", "label": "refund",
             "split": "train", "region": "EU", column: v} for i, v in enumerate(values)]
    path = _turns_file(tmp_path, rows)
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(conversation_col="conversation_id", group_cols=["region"]))
    assert str(err.value) == (f"{path}, column '{column}': the turns of conversation 'c1' disagree on their {column}: "
                              "give every turn of a conversation the same value")


def test_float_labels_read_as_their_integer_and_nan_as_missing(tmp_path):
    # pandas writes an integer label column with gaps as floats: NaN became a class named "NaN".
    pl.DataFrame({"text": ["a", "b", "c", "d"], "label": [1.0, float("nan"), 2.0, 2.5]}).write_parquet(
        tmp_path / "d.parquet")
    out = load_dataset([tmp_path / "d.parquet"], DataConfig())
    labels = pl.concat([out.rows, out.unusable], how="diagonal_relaxed").sort("row_id")["label"].to_list()
    assert labels == ["1", None, "2", "2.5"]


@pytest.mark.parametrize(("cfg", "message"), [
    # One column read as the text and the label: the loader kept one and said the other was "reserved".
    (DataConfig(text_col="body", label_col="body"), "[data] text_col and label_col are both 'body'"),
    (DataConfig(id_col="text"), "[data] text_col and id_col are both 'text'"),
    (DataConfig(group_cols=["split"]), "[data] group_cols: 'split' is the split_col column, not a customer group"),
    (DataConfig(id_col="id", group_cols=["id"]), "'id' is the id_col column"),
    (DataConfig(group_cols=["text"]), "'text' is the text_col column"),  # the transcript copied into the ledger
    (DataConfig(text_col="body", group_cols=["text"]), "'text' is a column curatune writes itself"),
    (DataConfig(group_cols=["fate"]), "'fate' is a column curatune writes itself"),
    # Selected twice into the ledger: a polars DuplicateError after the earlier manifest was removed.
    (DataConfig(group_cols=["channel", "channel"]), "[data] group_cols: 'channel' is listed more than once"),
    # The conversation id is the row id: the id column was silently dropped.
    (DataConfig(conversation_col="text", id_col="id"), "[data] id_col cannot be used with conversation_col"),
])
def test_a_group_column_that_is_another_role_is_refused_before_loading(tmp_path, cfg, message):
    """group_cols = ["split"] was a polars DuplicateError and ["id"] a ColumnNotFoundError, after the
    curation work; ["text"] wrote every transcript into ledger.parquet."""
    (tmp_path / "d.csv").write_text("id,text,body,label,split,fate\n1,hi,hi,a,train,x\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "d.csv"], cfg)
    assert message in str(err.value)
    with pytest.raises(CuratuneError, match=re.escape(message)):
        config_from_dict({"data": {k: v for k, v in vars(cfg).items() if v}})


def test_a_tsv_value_opening_with_a_quote_that_swallowed_lines_is_refused_not_read_as_fewer_rows(tmp_path):
    """TSV is read with CSV quoting: in a file written without it, '"my card ...' took the next two
    lines into one row (4 records read as 2, one with a later row's label)."""
    p = tmp_path / "q.tsv"
    # The last record's label left empty: its line ends with the tab.
    p.write_text('text\tlabel\n"my card was declined\tcard\nhello there\tgreet\nok thanks"\tthanks\nbye\t\n')
    with pytest.raises(CuratuneError) as err:
        load_dataset([p], DataConfig())
    assert str(err.value).startswith(f"{p}: record 1 holds tabs and line breaks inside a value")
    # The same values quoted as a csv writer quotes them read as four rows; a quoted value may hold
    # a tab, a line break, or both, of its own.
    df = pl.DataFrame({"text": ['"my card was declined', "hello\tthere", 'ok thanks"', "bye\nnow",
                                "order:\t1234\nstatus:\tlost"],
                       "label": ["card", "greet", "thanks", "bye", "lost"]})
    df.write_csv(p, separator="\t")
    assert load_dataset([p], DataConfig()).rows["text"].to_list() == df["text"].to_list()


def test_a_file_polars_cannot_parse_is_refused_without_the_cell_it_quotes(tmp_path, cli_run):
    p = tmp_path / "d.csv"
    p.write_text('text,label\n"Maria Gonzalez" maria@example.com 415-555-0134,billing\nok,other\n')
    code, out = cli_run("curate", p, "--out", tmp_path / "out")
    assert code == 2
    assert "cannot read file: could not parse (value not shown: it may hold personal data) as dtype 'str'" in out
    assert "Maria" not in out and "415-555" not in out


def test_a_configured_label_or_split_column_missing_is_not_replaced_by_one_named_label_or_split(tmp_path):
    (tmp_path / "s.csv").write_text("text,label,split\nhello there,spam,test\nmy card,ham,test\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "s.csv"], DataConfig(label_col="category"))
    assert "[data] label_col is 'category', which this file lacks, but it has a column 'label'" in str(err.value)
    with pytest.raises(CuratuneError, match=r"\[data\] split_col is 'fold', which this file lacks"):
        load_dataset([tmp_path / "s.csv"], DataConfig(split_col="fold"))
    # A file with neither is unlabelled, as before.
    (tmp_path / "u.csv").write_text("text\nhello there\n")
    assert load_dataset([tmp_path / "u.csv"], DataConfig(label_col="category")).rows["label"].to_list() == [None]


def test_a_split_column_the_user_named_that_no_file_has_is_refused(tmp_path, cli_run):
    # Read as absent, a misspelt split column put the test rows into training.
    (tmp_path / "s.csv").write_text("text,label,part\nhello there,spam,train\nmy card,ham,test\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "s.csv"], DataConfig(split_col="prat"))
    assert str(err.value) == (f"{tmp_path / 's.csv'}, column 'prat': [data] split_col names a split column that is "
                              "not in the input file (columns are: text, label, part); correct the name, or leave "
                              "split_col unset to read every row as 'train'")
    (tmp_path / "t.csv").write_text("text,label\nbye,ham\n")
    with pytest.raises(CuratuneError, match=r"^column 'prat': .*not in any of the 2 input files \(columns are: "
                                            r"text, label, part\)"):
        load_dataset([tmp_path / "s.csv", tmp_path / "t.csv"], DataConfig(split_col="prat"))
    # One file having it is enough: the other's rows are "train", as a file without the default column.
    rows = load_dataset([tmp_path / "s.csv", tmp_path / "t.csv"], DataConfig(split_col="part")).rows
    assert rows["split"].to_list() == ["train", "test", "train"]
    # The default name absent is a file without splits, not a typo.
    assert load_dataset([tmp_path / "t.csv"], DataConfig()).rows["split"].to_list() == ["train"]
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nsplit_col = "prat"\n')
    code, out = cli_run("curate", tmp_path / "s.csv", "--out", tmp_path / "out", "--config", cfg)
    assert code == 2 and "[data] split_col names a split column that is not in the input file" in out
    assert not (tmp_path / "out" / "ledger.parquet").exists()


def test_a_column_nested_in_one_file_and_plain_in_another_is_refused(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "a", "order": {"id": "ORD-1"}}\n')
    (tmp_path / "b.jsonl").write_text('{"text": "b", "order": "ORD-2"}\n')
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], DataConfig())
    assert "column 'order' holds Struct" in str(err.value) and "but String in" in str(err.value)
    # Numbers in one file and text in another are still joined as text.
    (tmp_path / "c.jsonl").write_text('{"text": "c", "ticket": 7}\n')
    (tmp_path / "d.csv").write_text("text,ticket\nd,T-8\n")
    rows = load_dataset([tmp_path / "c.jsonl", tmp_path / "d.csv"], DataConfig()).rows
    assert rows["ticket"].to_list() == ["7", "T-8"]
    # A file where the column holds no value at all joins a file where it holds lists.
    (tmp_path / "e.jsonl").write_text('{"text": "e", "tags": null}\n')
    (tmp_path / "f.jsonl").write_text('{"text": "f", "tags": ["x"]}\n')
    rows = load_dataset([tmp_path / "e.jsonl", tmp_path / "f.jsonl"], DataConfig()).rows
    assert rows["tags"].to_list() == [None, ["x"]]


def test_float_labels_too_large_for_an_integer_are_kept_as_written(tmp_path):
    pl.DataFrame({"text": ["a", "b", "c"], "label": [1e20, float("inf"), 3.0]}).write_parquet(tmp_path / "d.parquet")
    assert load_dataset([tmp_path / "d.parquet"], DataConfig()).rows["label"].to_list() == ["1e+20", "inf", "3"]


@pytest.mark.parametrize("name", ["bl.csv", "bl.tsv"])
def test_blank_lines_are_no_records_and_do_not_shift_the_ordinals(tmp_path, name):
    """Polars read a blank line as a row of nulls: a phantom empty_text row, and every later ordinal shifted."""
    sep = "\t" if name.endswith(".tsv") else ","
    path = tmp_path / name
    path.write_text(f"text{sep}label\n\nhello{sep}a\n\n\n\"two\n\nlines\"{sep}b\n{sep}\nworld{sep}c\n\n")
    loaded = load_dataset([path], DataConfig())
    assert loaded.rows.select("row_id", "text", "label").rows() == [
        ("bl:0", "hello", "a"), ("bl:1", "two\n\nlines", "b"), ("bl:3", "world", "c")]
    # A line of separators is a record (its fields empty): kept, as empty text, with its reason.
    assert loaded.unusable.select("row_id", "reason").rows() == [("bl:2", "empty_text")]


def test_a_blank_line_ending_a_file_of_ids_is_not_a_row_without_an_id(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,text\n1,x\n2,y\n\n\n")
    assert load_dataset([path], DataConfig(id_col="id")).rows["row_id"].to_list() == ["1", "2"]
    path.write_text("text\n\n\n")
    with pytest.raises(CuratuneError, match="input file has no rows"):
        load_dataset([path], DataConfig())


@pytest.mark.parametrize("column", ["text", "label"])
def test_a_binary_column_is_read_as_utf8_text_and_refused_by_row_where_it_is_not(tmp_path, column):
    path = tmp_path / "d.parquet"
    values = {"text": ["fine", "caf\u00e9"], "label": ["a", "b"]}
    values[column] = pl.Series([v.encode() for v in values[column]], dtype=pl.Binary)
    pl.DataFrame(values).write_parquet(path)
    rows = load_dataset([path], DataConfig()).rows
    assert rows.select("text", "label").rows() == [("fine", "a"), ("caf\u00e9", "b")]
    values[column] = pl.Series([b"ok", b"Mar\xeda 415"], dtype=pl.Binary)
    pl.DataFrame(values).write_parquet(path)
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    assert str(err.value) == (f"{path}, row 2, column '{column}': value is not valid UTF-8 text (byte 3); write the "
                              "column as UTF-8 strings")


def test_a_json_array_record_polars_cannot_read_is_named_and_its_value_withheld(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "hello"}, {"text": {"msg": "Maria Gonzalez 415 555 0132"}}]))
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    assert str(err.value) == (f"{path}, column 'text': record 2 holds a JSON object where record 1 holds a plain "
                              "value; give the column one kind of value (for a list of messages: one row per turn "
                              "with [data] conversation_col)")
    path.write_text(json.dumps([{"text": "hello"}, "Maria Gonzalez 415 555 0132"]))
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    assert str(err.value) == f"{path}: record 2 is not a JSON object (one object per record)"


def test_values_a_library_quotes_in_double_quotes_are_withheld():
    from curatune.errors import values_withheld

    message = 'error deserializing value "Object({"msg": String("Maria Gonzalez 415 555 0132")})" as string.'
    assert values_withheld(message) == ("error deserializing value (value not shown: it may hold personal data) as "
                                        "string.")
    assert values_withheld('no column "label" here') == "no column 'label' here"
    # A message cut at its first line may open a quote it never closes: the rest is the cell.
    assert values_withheld('bad value "Maria Gonzalez') == "bad value (value not shown: it may hold personal data)"


def test_a_turn_without_a_turn_number_is_refused_by_row(tmp_path):
    """A null turn was sorted to the start of its conversation without a word."""
    path = _turns_file(tmp_path, [
        {"conversation_id": "c4", "turn": 1, "speaker": "customer", "text": "turn one"},
        {"conversation_id": "c4", "turn": 2, "speaker": "agent", "text": "turn two"},
        {"conversation_id": "c4", "turn": None, "speaker": "customer", "text": "no turn number"}])
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(conversation_col="conversation_id"))
    assert str(err.value) == f"{path}, row 3, column 'turn': turn order is empty; every turn needs an integer"


def test_a_fractional_turn_number_is_refused_and_a_whole_float_is_its_integer(tmp_path):
    """2.5 was cut to 2 without a word, and took turn 2's place."""
    turns = [{"conversation_id": "c1", "turn": 1.0, "speaker": "customer", "text": "one"},
             {"conversation_id": "c1", "turn": 3.0, "speaker": "agent", "text": "three"},
             {"conversation_id": "c1", "turn": 2.0, "speaker": "customer", "text": "two"}]
    rows = load_dataset([_turns_file(tmp_path, turns)], DataConfig(conversation_col="conversation_id")).rows
    assert rows["text"].to_list() == ["customer: one\ncustomer: two\nagent: three"]
    turns[2]["turn"] = 2.5
    path = _turns_file(tmp_path, turns)
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(conversation_col="conversation_id"))
    assert str(err.value) == f"{path}, row 3, column 'turn': turn order must be an integer"


def test_turns_agree_on_a_label_or_split_as_the_loader_reads_it(tmp_path):
    """'Test' and 'test', 'refund ' and 'refund' load as one value: they were refused as disagreeing."""
    path = _turns_file(tmp_path, [
        {"conversation_id": "c1", "turn": 1, "speaker": "customer", "text": "hi", "split": "Test", "label": ""},
        {"conversation_id": "c1", "turn": 2, "speaker": "agent", "text": "yo", "split": "test", "label": "refund "},
        {"conversation_id": "c1", "turn": 3, "speaker": "agent", "text": "ok", "split": " test", "label": "refund"},
        {"conversation_id": "c2", "turn": 1, "speaker": "agent", "text": "hm", "split": "dev", "label": None},
        {"conversation_id": "c2", "turn": 2, "speaker": "agent", "text": "so", "split": "validation", "label": "x"}])
    rows = load_dataset([path], DataConfig(conversation_col="conversation_id")).rows
    # A blank label is a missing one, not the conversation's label.
    assert rows.select("row_id", "split", "label").rows() == [("c1", "test", "refund"), ("c2", "validation", "x")]


@pytest.mark.parametrize("name", ["d.jsonl", "d.json"])
def test_a_repeated_key_in_a_json_record_is_refused_naming_it(tmp_path, name):
    """Polars kept the first value without a word; a CSV header naming a column twice is refused."""
    path = tmp_path / name
    records = ['{"text": "hello", "label": "x"}', '{"text": "a", "label": "x", "text": "b"}']
    path.write_text("\n".join(records) + "\n" if name.endswith(".jsonl") else "[" + ", ".join(records) + "]")
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    where = "line" if name.endswith(".jsonl") else "record"
    assert str(err.value) == f'{path}: {where} 2 repeats the key "text"; give each key once'

    # A nested object's keys can be data: an e-mail address keying a contact is not repeated in the message.
    records[1] = '{"text": "a", "label": "x", "contacts": {"maria@example.com": 1, "maria@example.com": 2}}'
    path.write_text("\n".join(records) + "\n" if name.endswith(".jsonl") else "[" + ", ".join(records) + "]")
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    assert str(err.value) == (f"{path}: {where} 2 repeats the key (key not shown: it may hold personal data); give "
                              "each key once")


def test_a_jsonl_file_with_a_byte_order_mark_is_read(tmp_path):
    import gzip

    content = "\ufeff" + '{"text": "hello", "label": "a"}\n{"text": "world", "label": "b"}\n'
    (tmp_path / "d.jsonl").write_text(content, encoding="utf-8")
    (tmp_path / "g.jsonl.gz").write_bytes(gzip.compress(content.encode()))
    for path in (tmp_path / "d.jsonl", tmp_path / "g.jsonl.gz"):
        assert load_dataset([path], DataConfig()).rows.select("text", "label").rows() == [("hello", "a"),
                                                                                           ("world", "b")]


@pytest.mark.parametrize(("name", "content", "row"), [("d.csv", "id,text\n1,x\n ,y\n", 2),
                                                      ("d.jsonl", '{"id": "1", "text": "x"}\n{"id": "", "text": "y"}\n',
                                                       2)])
def test_a_blank_source_id_is_an_empty_id(tmp_path, name, content, row):
    (tmp_path / name).write_text(content)
    with pytest.raises(CuratuneError) as err:
        load_dataset([tmp_path / name], DataConfig(id_col="id"))
    assert str(err.value) == f"{tmp_path / name}, row {row}, column 'id': id is empty"


def test_a_header_with_two_unnamed_columns_says_a_name_is_empty(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,,\nhello,1,2\n")
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig())
    assert str(err.value) == f"{path}: header columns 2 and 3 have no name; name them"


def test_json_ids_keep_the_form_they_were_written_in(tmp_path):
    """One fractional id made every id a float ("1.0"), and ids past 2**53 merged into one."""
    path = tmp_path / "d.jsonl"
    ids = [1, 2.5, 9007199254740993, 9007199254740992, "t-7"]
    path.write_text("".join(json.dumps({"id": i, "text": f"t{n}"}) + "\n" for n, i in enumerate(ids)))
    expected = ["1", "2.5", "9007199254740993", "9007199254740992", "t-7"]
    assert load_dataset([path], DataConfig(id_col="id")).rows["row_id"].to_list() == expected
    (tmp_path / "d.json").write_text(json.dumps([{"id": i, "text": f"t{n}"} for n, i in enumerate(ids)]))
    assert load_dataset([tmp_path / "d.json"], DataConfig(id_col="id")).rows["row_id"].to_list() == expected
    path.write_text("".join(json.dumps({"conversation_id": i, "turn": 1, "speaker": "customer", "text": "x"}) + "\n"
                            for i in ids[:4]))
    assert load_dataset([path], DataConfig(conversation_col="conversation_id")).rows["row_id"].to_list() == \
        expected[:4]


def test_parquet_float_ids_of_whole_numbers_read_as_the_integers_and_a_missing_one_is_named(tmp_path):
    """pandas writes an integer id column that misses a value as floats: row 7's id read "7.0"."""
    path = tmp_path / "d.parquet"
    pl.DataFrame({"id": [7.0, 2.5, -3.0, 1e20], "text": ["a", "b", "c", "d"]}).write_parquet(path)
    assert load_dataset([path], DataConfig(id_col="id")).rows["row_id"].to_list() == ["7", "2.5", "-3", "1e+20"]
    pl.DataFrame({"conversation_id": [4.0, 4.0, 5.0], "turn": [1, 2, 1], "speaker": ["customer"] * 3,
                  "text": ["x", "y", "z"]}).write_parquet(path)
    assert load_dataset([path], DataConfig(conversation_col="conversation_id")).rows["row_id"].to_list() == ["4", "5"]
    pl.DataFrame({"id": [7.0, float("nan")], "text": ["a", "b"]}).write_parquet(path)
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(id_col="id"))
    assert str(err.value) == f"{path}, row 2, column 'id': id is empty"


def test_a_nan_conversation_id_is_refused_by_row_not_merged_into_one_conversation(tmp_path):
    """pandas writes a missing id in a float column as NaN: the NaN turns of two people became one
    conversation with a null row id, which every curation step then passed over."""
    path = tmp_path / "t.parquet"
    pl.DataFrame({"conv": [1.0, 1.0, float("nan"), float("nan"), 2.0], "turn": [1, 2, 1, 1, 1],
                  "speaker": ["customer"] * 5, "text": ["my card is lost", "sorry", "alice", "bob", "refund"]}
                 ).write_parquet(path)
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(conversation_col="conv"))
    assert str(err.value) == f"{path}, row 3, column 'conv': conversation id is empty"


def test_no_row_is_loaded_without_an_id(tmp_path, monkeypatch):
    # Whatever lets a null conversation id through, the row is refused rather than loaded without an id.
    aggregate = dataset._aggregate_turns
    monkeypatch.setattr(dataset, "_aggregate_turns", lambda *args: aggregate(*args).with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("__conv_id")).alias("__conv_id")))
    path = _turns_file(tmp_path, [{"conversation_id": c, "turn": 1, "speaker": "customer", "text": "x"}
                                  for c in ("c1", "c2")])
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], DataConfig(conversation_col="conversation_id"))
    assert str(err.value) == f"{path}, column 'conversation_id': id is empty"


@pytest.mark.parametrize(("first", "second", "types"), [
    # Polars stopped with a traceback on the first; the others it joined into something else without a word.
    (pl.Series([timedelta(minutes=3)]), pl.Series(["3 min"]), ("Duration(time_unit='us')", "String")),
    (pl.Series([date(2020, 1, 1)]), pl.Series([1]), ("Date", "Int64")),  # the day count 18262
    (pl.Series([datetime(2020, 1, 1)]).dt.replace_time_zone("UTC"), pl.Series([datetime(2020, 1, 1)]),
     ("Datetime(time_unit='us', time_zone='UTC')", "Datetime(time_unit='us', time_zone=None)")),
    (pl.Series([True]), pl.Series([2]), ("Boolean", "Int64")),
])
def test_a_column_of_two_types_that_cannot_join_is_refused_naming_it_and_both_files(tmp_path, first, second, types):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pl.DataFrame({"text": ["a"], "extra": first}).write_parquet(a)
    pl.DataFrame({"text": ["b"], "extra": second}).write_parquet(b)
    with pytest.raises(CuratuneError) as err:
        load_dataset([a, b], DataConfig())
    assert str(err.value) == (f"column 'extra' holds {types[0]} values in {a} but {types[1]} in {b}; give it one "
                              "type in every input file")


@pytest.mark.parametrize(("first", "second", "joined"), [
    (pl.Series([1], dtype=pl.Int32), pl.Series([2 ** 40]), [1, 2 ** 40]),  # integers widen
    (pl.Series([1]), pl.Series([None], dtype=pl.Date), [1, None]),  # no value in one file joins any type
    # Text beside other plain values is their text, as a CSV holds them (polars stopped on categories).
    (pl.Series([True, False]), pl.Series(["gold"], dtype=pl.Categorical), ["true", "false", "gold"]),
    (pl.Series(["x"], dtype=pl.Enum(["x"])), pl.Series(["y"], dtype=pl.Categorical), ["x", "y"]),
    (pl.Series([date(2020, 1, 1)]), pl.Series(["soon"]), ["2020-01-01", "soon"]),
])
def test_a_column_of_two_types_that_join_keeps_its_values(tmp_path, first, second, joined):
    pl.DataFrame({"text": [f"a{i}" for i in range(len(first))], "extra": first}).write_parquet(tmp_path / "a.parquet")
    pl.DataFrame({"text": ["b"], "extra": second}).write_parquet(tmp_path / "b.parquet")
    rows = load_dataset([tmp_path / "a.parquet", tmp_path / "b.parquet"], DataConfig()).rows
    assert rows["extra"].to_list() == joined


@pytest.mark.parametrize(("column", "cfg"), [
    ("__i", DataConfig()),  # first_row's working column: a polars DuplicateError traceback
    ("__turn", DataConfig(conversation_col="conv")),  # dropped from the output without a word
    ("__conv_id", DataConfig(conversation_col="conv")),
    ("__reason", DataConfig()),  # the pipeline's
])
def test_an_input_column_named_like_curatunes_working_columns_is_refused(tmp_path, column, cfg):
    path = tmp_path / "d.parquet"
    pl.DataFrame({"conv": ["c1", "c2"], "turn": [1, 1], "speaker": ["customer"] * 2, "text": ["a b", "c d"],
                  column: [1, 2]}).write_parquet(path)
    with pytest.raises(CuratuneError) as err:
        load_dataset([path], cfg)
    assert str(err.value) == (f"{path}, column '{column}': input column '{column}' starts with '__', which curatune "
                              "keeps for its own working columns; rename it")
    # In a CSV with blank lines too, where the reader numbered the lines in a column of that name.
    (tmp_path / "d.csv").write_text("text,__i\na,1\n\nb,2\n")
    with pytest.raises(CuratuneError, match="input column '__i' starts with '__'"):
        load_dataset([tmp_path / "d.csv"], DataConfig())


def test_quotes_inside_csv_values_that_polars_reads_are_read(tmp_path):
    # Quoted with the quote doubled, as CSV writes it; two in one unquoted value polars reads as they stand.
    (tmp_path / "d.csv").write_text('text,label\n"my 27"" monitor",hw\nmy 27" and 32" screens,hw\n')
    assert load_dataset([tmp_path / "d.csv"], DataConfig()).rows["text"].to_list() == \
        ['my 27" monitor', 'my 27" and 32" screens']


def test_a_json_line_nested_past_pythons_limit_is_left_to_polars(tmp_path):
    # Checking the label for a JSON list (one value opens with '[') read every line again: a RecursionError.
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "hi", "label": "[x] card"}\n{"text": "ok", "label": "b", "deep": '
                    + "[" * 1010 + "]" * 1010 + "}\n")
    assert load_dataset([path], DataConfig()).rows["label"].to_list() == ["[x] card", "b"]


def test_a_text_of_invisible_format_characters_alone_is_empty(tmp_path):
    pl.DataFrame({"text": ["\u200b", "\ufeff \u200d", "ok\u200b"]}).write_parquet(tmp_path / "d.parquet")
    loaded = load_dataset([tmp_path / "d.parquet"], DataConfig())
    assert loaded.rows["row_id"].to_list() == ["d:2"]
    assert loaded.unusable["row_id"].to_list() == ["d:0", "d:1"]
    assert loaded.unusable["reason"].to_list() == ["empty_text", "empty_text"]

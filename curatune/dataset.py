"""The dataset contract every stage reads.

A loaded dataset is one polars table with canonical columns

    row_id  str   stable id: the source's own id, else "<source stem>:<ordinal>" (ordinals count records)
    text    str   the conversation rendered as "speaker: text" lines (or the text as given)
    label   str   nullable; labels are strings everywhere
    split   str   "train" unless the data says otherwise
    source  str   file name the row came from, with the folders that tell it from another input of that name
    turns   list[struct{speaker, text}]  nullable; kept when the input is one row per turn

plus the declared group columns and any other input columns, passed through untouched.
Rows that cannot be used (null or empty text) are not skipped silently: they come back in
``Loaded.unusable`` with a reason, and the curation ledger records them as dropped.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import polars as pl

from curatune.config import DataConfig
from curatune.errors import CuratuneError, first_line, may_show, shown_value, values_withheld
from curatune.rundir import LEDGER, read_run_table

CANONICAL = ("row_id", "text", "label", "split", "source", "turns")
# Columns curation adds beside the canonical ones (working table, excluded.parquet, ledger): an input
# column of the same name would be overwritten, or dropped from curated.parquet without a word.
BOOKKEEPING = ("active", "original_label", "dropped_by", "drop_reason", "duplicate_of", "reasons")
LEDGER_ONLY = ("fate", "final_label", "reason")
# Columns every ledger has (one row per input row; steps add their own score columns beside them).
LEDGER_BASE = ("row_id", "source", "split", "fate", "reasons", "dropped_by", "duplicate_of", "original_label",
               "final_label")
# Reason codes: what a ledger row's `reasons` (and its `drop_reason`) can hold, one code per cause.
# Loading and the pipeline write the first two, then dedup, anonymise, label_issues and the human
# review step theirs; the report and the evaluation read them by these names, never by literals.
EMPTY_TEXT = "empty_text"
MISSING_LABEL = "missing_label"
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
# A copy whose label differs from its representative's (kept and flagged when it is a near copy).
LABEL_CONFLICT = "conflicting_label_duplicate"
LEAKAGE = "leakage"
PII_FOUND = "pii_found"
LABEL_ISSUE = "label_issue"
HUMAN_REVIEW = "human_review"
REVIEW_CONFLICT = "review_conflict"
REVIEW_UNSURE = "review_unsure"
DUPLICATE_REASONS = (EXACT_DUPLICATE, NEAR_DUPLICATE, LABEL_CONFLICT, LEAKAGE)
# Every reason the review step gives; an apply strips them all before applying the current reviews.
REVIEW_REASONS = (HUMAN_REVIEW, REVIEW_CONFLICT, REVIEW_UNSURE)
# Reasons that describe a row rather than doubt it (every anonymised row has one).
INFORMATIONAL_REASONS = (PII_FOUND,)
# How a row with no value in a group column is named wherever groups are counted or compared.
MISSING_GROUP = "(missing)"
# How a dropped row whose ledger names no step that dropped it (an older ledger) is counted and shown.
DROPPED_BY_NOT_RECORDED = "not recorded"
SPLITS = ("train", "validation", "test")
TURN_TYPE = pl.List(pl.Struct({"speaker": pl.String, "text": pl.String}))
DEFAULT_SPLIT = "train"
# Common spellings mapped onto train / validation / test.
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation", "eval": "validation",
                 "holdout": "test"}


@dataclass
class Loaded:
    rows: pl.DataFrame
    unusable: pl.DataFrame
    sources: list[dict] = field(default_factory=list)
    group_cols: list[str] = field(default_factory=list)

    @property
    def n_input(self) -> int:
        return self.rows.height + self.unusable.height


def read_table(path: str | Path, id_cols: Sequence[str] = ()) -> pl.DataFrame:
    """Read CSV, JSONL/NDJSON, JSON (array of records) or Parquet; errors name the file. JSON numbers
    in ``id_cols`` keep the digits they were written with."""
    path = Path(path)
    if not path.exists():
        raise CuratuneError("input file not found", file=str(path))
    if path.is_dir():
        raise CuratuneError("input is a directory, expected a .csv, .jsonl or .parquet file", file=str(path))
    if path.stat().st_size == 0:
        raise CuratuneError("input file is empty", file=str(path))
    suffix = _file_kind(path)
    separator = "\t" if suffix == ".tsv" else ","
    try:
        if suffix in (".csv", ".tsv"):
            _check_utf8(path)
            blank = _check_csv_shape(path, separator)
            df = _without_blank_lines(pl.read_csv(path, separator=separator, infer_schema_length=0, encoding="utf8"),
                                      blank)
        elif suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
            _check_json_keys(path, suffix)
            df = _read_json(pl.read_ndjson, _without_bom(path, suffix), id_cols)
        elif suffix == ".json":
            _check_utf8(path)
            _check_json_keys(path, suffix)
            df = _read_json(pl.read_json, path, id_cols)
        elif suffix == ".parquet":
            df = pl.read_parquet(path)
        else:
            raise CuratuneError(
                f"unsupported file type '{path.suffix}' (use .csv, .tsv, .jsonl or .parquet)", file=str(path)
            )
    except CuratuneError:
        raise
    except Exception as exc:  # polars raises many types; the user needs the file and the reason
        # Polars names neither the line nor the record it stopped at; a second, plain read finds it.
        # (JSON lines were each read before polars: one that is no object is named there.)
        if suffix == ".json":
            _check_json_records(path)
        raise CuratuneError(f"cannot read file: {values_withheld(first_line(exc))}", file=str(path)) from None
    if df.height == 0:
        raise CuratuneError("input file has no rows", file=str(path))
    if suffix == ".tsv":
        _check_no_joined_lines(df, path)
    return df


def _file_kind(path: Path) -> str:
    """The lower-case suffix that says how a file is read: ``.jsonl.gz`` for a compressed one."""
    return ("".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix).lower()


CSV_FIELD_LIMIT = 2**31 - 1  # characters; the csv module's own default is 128 KiB


def _check_csv_shape(path: Path, separator: str) -> list[int]:
    """What polars reads without a word or reports without a place: a column named twice (the second
    read as 'text_duplicated_0'), a record with fewer fields than the header (filled with empty
    values) or more (no row named; a quote never closed makes one field of the rest), a '"' inside a
    value that is not quoted, lines ended by CR alone (all read as one header line: "no rows"). Each
    is refused, by its row.

    Returns the positions, among the lines polars reads as rows, of the blank lines: no records."""
    # The csv module stops at a field over 128 KiB ("field larger than field limit"), which read as an
    # unclosed quote: a long transcript in a file polars reads whole. The limit is process-wide.
    limit = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        return _csv_shape(path, separator)
    finally:
        csv.field_size_limit(limit)


def _csv_shape(path: Path, separator: str) -> list[int]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        consumed: list[str] = []  # the lines of the record being read, as written

        def lines() -> Iterator[str]:
            for line in fh:
                consumed.append(line)
                yield line

        reader = csv.reader(lines(), delimiter=separator)
        header = next(reader, [])
        if consumed and consumed[-1].endswith("\r"):
            raise CuratuneError("lines end in a carriage return alone (CR, as old Mac software wrote them); save "
                                "the file with LF or CRLF line endings", file=str(path))
        consumed.clear()
        unnamed = [i for i, c in enumerate(header, start=1) if not c.strip()]
        if len(unnamed) > 1:
            raise CuratuneError(f"header columns {unnamed[0]} and {unnamed[1]} have no name; name them", file=str(path))
        twice = next((c for i, c in enumerate(header) if c in header[:i]), None)
        if twice is not None:
            raise CuratuneError(f"column {shown_value(twice)} appears twice in the header; rename one",
                                file=str(path))
        width = len(header)
        row = 0
        blank: list[int] = []
        try:
            for record in reader:
                written = "".join(consumed)
                consumed.clear()
                if not record:  # a blank line is no record
                    blank.append(row + len(blank))
                    continue
                row += 1
                if len(record) != width:
                    n = len(record)
                    raise CuratuneError(f"row {row} has {n} field{'s' * (n != 1)}, the header {width} (a field "
                                        "holding the separator or a line break must be quoted)", file=str(path),
                                        row=row)
                # A quoted value holds its quotes in pairs; a lone one in an unquoted value ('27" monitor')
                # is read as it stands here, but polars takes it to open a quote and stops with no row named.
                if written.count('"') % 2:
                    raise CuratuneError(f"row {row} has a '\"' inside a value that is not quoted; quote the value "
                                        "and write each '\"' in it twice", file=str(path), row=row)
        except csv.Error as exc:  # the module's reasons name no value ("field larger than field limit")
            raise CuratuneError(f"row {row + 1} cannot be read as CSV ({first_line(exc)})", file=str(path),
                                row=row + 1) from None
    return blank


def _without_blank_lines(df: pl.DataFrame, blank: list[int]) -> pl.DataFrame:
    """Polars reads a blank line as a row of nulls (one row for each line the csv module reads as no
    record): a phantom empty_text row, and every later ordinal one off. A line of separators is a record."""
    if not blank:
        return df
    # A row holding a value is a record whatever its position says. (Positions by expression: no working
    # column to clash with an input column's name before the input's names are checked.)
    phantom = pl.int_range(pl.len()).is_in(blank) & pl.all_horizontal(pl.all().is_null())
    return df.filter(~phantom)


def _without_bom(path: Path, kind: str) -> Path | bytes:
    """The file, or its bytes after the byte order mark that opens it: polars's JSON-lines reader refuses
    one (its CSV and JSON readers, and Python's, read past it)."""
    with (gzip.open if kind == ".jsonl.gz" else open)(path, "rb") as fh:
        return fh.read() if fh.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8 else path


def _read_json(read: Callable[..., pl.DataFrame], source: Path | bytes, id_cols: Sequence[str]) -> pl.DataFrame:
    df = read(source, infer_schema_length=None)
    # One id that is no integer made every id a float ("1" read as "1.0", ids past 2**53 merged into one);
    # read as text, each keeps its digits.
    floats = {c: pl.String for c in id_cols if c in df.columns and df.schema[c].is_float()}
    return read(source, infer_schema_length=None, schema_overrides=floats) if floats else df


def _check_json_keys(path: Path, kind: str) -> None:
    """Polars keeps the first of a key given twice in one object and drops the other without a word (a
    CSV header naming a column twice is refused): refuse it, by its line (by its record in a JSON array).
    Each line of JSON lines is read here, so a line that is not one JSON object is named here too; a JSON
    array that is no JSON is left to the read that follows."""
    repeated: list[tuple[dict, str]] = []

    def keys_once(pairs: list[tuple[str, object]]) -> dict:
        record = dict(pairs)
        if len(record) < len(pairs) and not repeated:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    repeated.append((record, key))
                    break
                seen.add(key)
        return record

    # One decoder for every line: json.loads builds a new one per call when given a hook, twice the time.
    decoder = json.JSONDecoder(object_pairs_hook=keys_once, strict=False)
    if kind == ".json":
        with open(path, encoding="utf-8-sig") as fh:
            try:
                data = decoder.decode(fh.read())
            except (json.JSONDecodeError, RecursionError):
                return
        if repeated:
            records = data if isinstance(data, list) else [data]
            n = next(i for i, r in enumerate(records, start=1) if _holds(r, repeated[0][0]))
            raise CuratuneError(f"record {n} repeats the key {_shown_key(repeated[0][1])}; give each key once",
                                file=str(path))
        return
    for lineno, line in _utf8_lines(path, kind):
        if not line.strip():
            continue
        try:
            record = decoder.decode(line.removeprefix("\ufeff") if lineno == 1 else line)
        except json.JSONDecodeError as exc:
            raise CuratuneError(f"line {lineno} is not valid JSON ({exc.msg}, character {exc.colno})",
                                file=str(path)) from None
        except RecursionError:  # nested past Python's limit: left to polars
            continue
        if not isinstance(record, dict):
            raise CuratuneError(f"line {lineno} is not a JSON object (one record per line)", file=str(path))
        if repeated:
            raise CuratuneError(f"line {lineno} repeats the key {_shown_key(repeated[0][1])}; give each key once",
                                file=str(path))


def _shown_key(key: str) -> str:
    """A repeated key as a message may show it: a nested object's keys can be data (an e-mail address
    keying a contact), not column names."""
    return json.dumps(key, ensure_ascii=False) if may_show(key) else "(key not shown: it may hold personal data)"


def _holds(value: object, target: object) -> bool:
    """Whether ``target`` (by identity) is ``value`` or inside it."""
    if value is target:
        return True
    inside = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(_holds(v, target) for v in inside)


def _check_json_records(path: Path) -> None:
    """Name the first record of a JSON array polars cannot read: one that is no object, or a column
    holding a list or an object in one record and a plain value in another (polars's own message
    quotes the value, which may be personal data)."""
    with open(path, encoding="utf-8-sig") as fh:
        try:
            data = json.load(fh, strict=False)
        except json.JSONDecodeError as exc:
            raise CuratuneError(f"not valid JSON ({exc.msg}, line {exc.lineno}, character {exc.colno})",
                                file=str(path)) from None
        except RecursionError:
            return
    kinds: dict[str, tuple[str, int]] = {}
    for n, record in enumerate(data if isinstance(data, list) else [data], start=1):
        if not isinstance(record, dict):
            raise CuratuneError(f"record {n} is not a JSON object (one object per record)", file=str(path))
        for col, value in record.items():
            if value is None:
                continue
            kind = {list: "a JSON list", dict: "a JSON object"}.get(type(value), "a plain value")
            first, first_n = kinds.setdefault(col, (kind, n))
            if kind != first:
                raise CuratuneError(f"record {n} holds {kind} where record {first_n} holds {first}; give the column "
                                    "one kind of value (for a list of messages: one row per turn with [data] "
                                    "conversation_col)", file=str(path), column=col)


def check_plain_json_values(path: str | Path, columns: list[str]) -> None:
    """Polars reads a JSON list or object among a column's strings as its JSON text ('["card", "refund"]'
    became a label of its own): refuse the first such value in ``columns``, naming its line."""
    path = Path(path)
    kind = _file_kind(path)
    if kind not in (".jsonl", ".ndjson", ".json", ".jsonl.gz"):
        return
    with (gzip.open if kind == ".jsonl.gz" else open)(path, "rt", encoding="utf-8-sig") as fh:
        try:
            records = _json_lines(fh) if kind != ".json" else enumerate(json.load(fh), start=1)
        except RecursionError:  # nested past Python's limit: left to polars, as _check_json_keys leaves it
            return
        for n, record in records:
            # A line that is no object at all polars has refused already.
            bad = next((c for c in columns if isinstance(record, dict) and isinstance(record.get(c), list | dict)),
                       None)
            if bad is not None:
                where = "line" if kind != ".json" else "record"
                raise CuratuneError(f"{where} {n} holds a JSON {type(record[bad]).__name__.replace('dict', 'object')} "
                                    "where a plain value belongs (for a list of messages: one row per turn with "
                                    "[data] conversation_col)", file=str(path), column=bad)


def _json_lines(fh: Iterator[str]) -> Iterator[tuple[int, object]]:
    """Each JSON line's record, numbered by its line; one nested past Python's limit is left to polars."""
    for i, line in enumerate(fh, start=1):
        if line.strip():
            try:
                yield i, json.loads(line)
            except RecursionError:
                continue


def _check_no_joined_lines(df: pl.DataFrame, path: Path) -> None:
    """TSV is read with CSV quoting (spreadsheets and csv writers quote a value holding a tab or a
    line break), so in a file written without quoting a value that starts with '"' swallows the
    lines after it, up to the next '"', into one row: rows lost without a word. A tab and a line
    break inside one value are the trace of that; it is refused when the file's lines are also
    whole records as written (each with the header's number of tabs), the shape of a file written
    without quoting. A quoted value holding tabs and line breaks of its own breaks that shape."""
    strings = [c for c, t in df.schema.items() if t == pl.String]
    if not strings:
        return
    joined = [pl.col(c).str.contains("\t", literal=True) & pl.col(c).str.contains("\n", literal=True) for c in strings]
    row = first_row(df, pl.any_horizontal(joined))
    if row is not None and _lines_are_unquoted_records(path, df.width):
        raise CuratuneError(f"record {row} holds tabs and line breaks inside a value: a value that opens with '\"' "
                            "and never closes it joined the lines after it into one row; quote such values as CSV "
                            "does, or write the file as CSV or JSONL", file=str(path))


def _lines_are_unquoted_records(path: Path, width: int) -> bool:
    # Only the line break is cut: a last field left empty ends the line with its tab.
    with open(path, encoding="utf-8", newline="") as fh:
        return all(line.count("\t") == width - 1 for line in (raw.rstrip("\r\n") for raw in fh) if line)


def _check_utf8(path: Path) -> None:
    """Polars replaces or rejects bad bytes with an unhelpful message; name the first bad row."""
    for _ in _utf8_lines(path):
        pass


def _utf8_lines(path: Path, kind: str = "") -> Iterator[tuple[int, str]]:
    """The file's lines, numbered from 1; the first that is not UTF-8 is refused by its number."""
    with (gzip.open if kind == ".jsonl.gz" else open)(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CuratuneError(
                    f"line {lineno} is not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8",
                    file=str(path),
                ) from None


def _require(df: pl.DataFrame, col: str, path: str, role: str) -> None:
    if col not in df.columns:
        raise CuratuneError(
            f"missing {role} column (columns are: {_column_names(df.columns)}); map it with config [data]"
            # Only these three have a flag (curate's); naming --turn-col sent people looking for one.
            + (f" or curate's --{role}-col flag" if role in ("text", "label", "id") else ""),
            file=path,
            column=col,
        )


def _column_names(names: list[str]) -> str:
    """The names for a message; in a file without a header row they are its first row's values (a
    transcript, a customer's name), so only id-like ones are shown."""
    plain = [n for n in names if may_show(n)]
    rest = len(names) - len(plain)
    more = (f"{' and ' if plain else ''}{rest} more not shown (they may hold personal data: has the file a header "
            "row?)") if rest else ""
    return ", ".join(plain) + more


def _aggregate_turns(df: pl.DataFrame, cfg: DataConfig, path: str) -> pl.DataFrame:
    for col, role in ((cfg.conversation_col, "conversation"), (cfg.turn_col, "turn"),
                      (cfg.speaker_col, "speaker"), (cfg.text_col, "text")):
        _require(df, col, path, role)
    turn = pl.col(cfg.turn_col)
    if df.schema[cfg.turn_col].is_float():  # the cast would cut 2.5 to 2 without a word; 2.0 is turn 2
        turn = pl.when(turn == turn.floor()).then(turn)
    df = df.with_columns(turn.cast(pl.Int64, strict=False).alias("__turn"))
    # A turn without its number would be sorted first in its conversation.
    row = first_row(df, pl.col("__turn").is_null())
    if row is not None:
        message = ("turn order is empty; every turn needs an integer" if df[cfg.turn_col][row - 1] is None
                   else "turn order must be an integer")
        raise CuratuneError(message, file=path, row=row, column=cfg.turn_col)
    passthrough = [c for c in df.columns
                   if c not in (cfg.conversation_col, cfg.turn_col, cfg.speaker_col, cfg.text_col, "__turn")]
    # As the row id reads it: NaN, what pandas writes for a missing id in a float column, is missing too.
    conv = _label_or_id_text(pl.col(cfg.conversation_col), df.schema[cfg.conversation_col])
    row = first_row(df, conv.is_null() | (conv.str.strip_chars() == ""))
    if row is not None:
        # Grouping would merge every id-less turn into one conversation whose row_id is null.
        raise CuratuneError("conversation id is empty", file=path, row=row, column=cfg.conversation_col)
    # One conversation is one row: turns that disagree on its label, split or group cannot be resolved
    # (a conversation partly marked test would land in train on its first turn's word).
    agreeing = [c for c in dict.fromkeys((cfg.label_col, cfg.split_col, *cfg.group_cols)) if c in passthrough]
    # Compared as they load: "Test" and "test" are one split, "refund " and "refund" one label, and a
    # blank label is none (taken first, it would have been the conversation's label).
    value = {c: pl.col(c) for c in passthrough}
    if cfg.label_col in value:
        value[cfg.label_col] = _label_values(pl.col(cfg.label_col), df.schema[cfg.label_col])
    if cfg.split_col in value:
        value[cfg.split_col] = _split_values(pl.col(cfg.split_col))
    turn_struct = pl.struct(pl.col(cfg.speaker_col).cast(pl.String).str.strip_chars().replace("", None)
                            .alias("speaker"),
                            pl.col(cfg.text_col).cast(pl.String).alias("text"))
    agg = (
        df.with_row_index("__ord")
        .sort([cfg.conversation_col, "__turn", "__ord"])
        .group_by(cfg.conversation_col, maintain_order=True)
        .agg(
            pl.col("__ord").min().alias("__first"),
            # A blank turn says nothing; a conversation of blank turns is then empty_text, not kept.
            turn_struct.filter(pl.col(cfg.text_col).cast(pl.String).str.strip_chars().fill_null("") != "")
            .alias("turns"),
            *[value[c].drop_nulls().first().alias(c) for c in passthrough],
            *[value[c].drop_nulls().n_unique().alias(f"__n_{c}") for c in agreeing],
        )
        .sort("__first")
        .drop("__first")
    )
    for c in agreeing:
        row = first_row(agg, pl.col(f"__n_{c}") > 1)
        if row is not None:
            conv_id = shown_value(agg[cfg.conversation_col][row - 1])
            raise CuratuneError(f"the turns of conversation {conv_id} disagree on their {c}: give every turn of a "
                                "conversation the same value", file=path, column=c)
    agg = agg.drop([f"__n_{c}" for c in agreeing])
    return agg.with_columns(render_turns(pl.col("turns")).alias(cfg.text_col)).rename(
        {cfg.conversation_col: "__conv_id"})


def _label_values(label: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Labels as they load: text, trimmed, a blank one missing."""
    return _label_or_id_text(label, dtype).str.strip_chars().replace("", None)


def _split_values(split: pl.Expr) -> pl.Expr:
    """Splits as they load, a blank one missing (train, once loaded)."""
    return split.cast(pl.String).str.strip_chars().str.to_lowercase().replace("", None).replace(SPLIT_ALIASES)


def _label_or_id_text(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Labels and ids as text. A float column is what pandas writes for an integer column with gaps
    (Parquet keeps it so): NaN is a missing value (not a class called "NaN", not the id "nan"), and
    1.0 is 1, as a CSV of the same data says (row 7's id read "7.0"). JSON ids are read as text before
    they become floats (``_read_json``)."""
    if not dtype.is_float():
        return value.cast(pl.String)
    value = value.fill_nan(None)
    # Whole numbers past 2**53 (or inf) hold no exact integer and do not fit an Int64: kept as written.
    whole = (value == value.round()) & (value.abs() < 2.0**53)
    return pl.when(whole).then(value.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(value.cast(pl.String))


def render_turns(turns: pl.Expr) -> pl.Expr:
    """A conversation's text: one "speaker: text" line per turn, the text alone where no speaker is
    recorded (concatenating a null speaker would drop the whole turn)."""
    speaker, text = pl.element().struct.field("speaker"), pl.element().struct.field("text")
    line = pl.when(speaker.is_null()).then(text).otherwise(pl.concat_str(speaker, pl.lit(": "), text))
    return turns.list.eval(line).list.join("\n")


def first_row(df: pl.DataFrame, offending: pl.Expr) -> int | None:
    """1-based data row number (header not counted) of the first row where ``offending`` holds; None if none."""
    # By position, not by matching the row's values: a join never matches the null an empty cell reads as.
    idx = df.with_row_index("__i").filter(offending)["__i"]
    return int(idx[0]) + 1 if len(idx) else None


def check_data_columns(cfg: DataConfig) -> None:
    """Refuse column mappings that cannot hold, before any input is read.

    A group column is passed through beside the canonical and bookkeeping columns: one that is
    the text, label, split or id column (or named like a column curation writes) would collide with
    them, or copy the transcript text into the ledger."""
    if cfg.conversation_col and cfg.id_col:
        # The conversation is the row, and its id the row id: an id column would be read from no row.
        raise CuratuneError("[data] id_col cannot be used with conversation_col (each conversation's id is its row "
                            "id); leave id_col empty")
    mapped = [(k, getattr(cfg, k)) for k in ("text_col", "label_col", "split_col", "id_col") if getattr(cfg, k)]
    # One column read as two things: the loader renamed it to one and silently lost the other.
    same = next(((a, b, col) for i, (a, col) in enumerate(mapped) for b, other in mapped[i + 1:] if col == other), None)
    if same:
        raise CuratuneError(f"[data] {same[0]} and {same[1]} are both '{same[2]}'; each must name its own column")
    repeated = sorted({g for g in cfg.group_cols if cfg.group_cols.count(g) > 1})
    if repeated:
        raise CuratuneError(f"[data] group_cols: '{repeated[0]}' is listed more than once")
    roles = {cfg.text_col: "text_col", cfg.label_col: "label_col", cfg.split_col: "split_col", cfg.id_col: "id_col",
             cfg.conversation_col: "conversation_col"}
    if cfg.conversation_col:
        roles |= {cfg.turn_col: "turn_col", cfg.speaker_col: "speaker_col"}
    for g in cfg.group_cols:
        if g in roles and g:
            raise CuratuneError(f"[data] group_cols: '{g}' is the {roles[g]} column, not a customer group")
        if g in (*CANONICAL, *BOOKKEEPING, *LEDGER_ONLY):
            raise CuratuneError(f"[data] group_cols: '{g}' is a column curatune writes itself; rename it in the "
                                "input")


def load_dataset(paths: list[str | Path], cfg: DataConfig, *, require_label: bool = False) -> Loaded:
    """Load and normalise every input file into the canonical table (see module docstring)."""
    check_data_columns(cfg)
    if not paths:
        raise CuratuneError("no input files given (pass INPUT paths or set [data] inputs)")
    paths = [str(p) for p in paths]
    # Read twice, every row would be in both copies: ids repeated, or each row twice under two ordinals.
    given: dict[Path, str] = {}
    for path in paths:
        other = given.get(Path(path).resolve())
        if other is not None:
            also = f" (also as {other})" if other != path else ""
            raise CuratuneError(f"input file is given twice{also}; give each file once", file=path)
        given[Path(path).resolve()] = path
    names = source_names(paths)
    # The stem numbers the rows as before; where two inputs share it, the name (with its folders) does.
    stems = [PurePath(n).with_suffix("").as_posix() for n in names]
    prefixes = [n if stems.count(s) > 1 else s for n, s in zip(names, stems, strict=True)]
    if not cfg.id_col and not cfg.conversation_col:
        by_prefix: dict[str, str] = {}
        for p, prefix in zip(paths, prefixes, strict=True):
            other = by_prefix.setdefault(prefix, p)
            if other != p:
                raise CuratuneError(f"'{other}' and '{p}' would both number their rows '{prefix}:N'; "
                                    "rename one, or set [data] id_col to a column of unique ids")
    frames, sources = [], []
    seen: dict[str, None] = {}
    for path, src, prefix in zip(paths, names, prefixes, strict=True):
        raw = read_table(path, id_cols=[c for c in (cfg.id_col, cfg.conversation_col) if c])
        seen.update(dict.fromkeys(raw.columns))
        _check_columns(raw, cfg, path)
        raw = _binary_as_text(raw, cfg, path)
        # Only a string that opens like JSON may be a list or object polars turned into text: the plain
        # second read of the file is skipped for the usual file that has none.
        suspect = [c for c in _role_columns(cfg) if c in raw.columns and raw.schema[c] == pl.String
                   and raw[c].str.contains(r"^\s*[\[{]").any()]
        if suspect:
            check_plain_json_values(path, suspect)
        n_raw = raw.height
        if cfg.conversation_col:
            raw = _aggregate_turns(raw, cfg, path)
            id_expr = _label_or_id_text(pl.col("__conv_id"), raw.schema["__conv_id"])
        else:
            _require(raw, cfg.text_col, path, "text")
            if cfg.id_col:
                _require(raw, cfg.id_col, path, "id")
                id_expr = _label_or_id_text(pl.col(cfg.id_col), raw.schema[cfg.id_col])
            else:
                id_expr = pl.lit(f"{prefix}:") + pl.int_range(pl.len()).cast(pl.String)
        if require_label:
            _require(raw, cfg.label_col, path, "label")
        for g in cfg.group_cols:
            _require(raw, g, path, "group")
        df = raw.with_columns(id_expr.alias("row_id"))
        # A null id merges rows in the ledger and slips past every step (a join never matches it). Conversation
        # ids are refused by their input row above; this also catches any a change lets through.
        row = first_row(df, pl.col("row_id").is_null() | (pl.col("row_id").str.strip_chars() == ""))
        if row is not None:
            raise CuratuneError("id is empty", file=path, **({"column": cfg.id_col, "row": row} if cfg.id_col else
                                                            {"column": cfg.conversation_col or "row_id"}))
        df = _canonical(df, cfg, src)
        _check_splits(df, cfg, path)
        row = first_row(df, ~pl.col("row_id").is_first_distinct())
        if row is not None:
            raise CuratuneError(f"row id {shown_value(df['row_id'][row - 1])} occurs more than once (this row "
                                "repeats an earlier one's); ids must be unique", file=path,
                                **({"column": cfg.id_col, "row": row} if cfg.id_col else
                                   {"column": cfg.conversation_col or "row_id"}))
        frames.append(df)
        sources.append({"path": path, "rows": n_raw, "records": df.height})
    _check_split_column_exists(list(seen), cfg, paths)
    try:
        rows = pl.concat(_joinable(frames, [s["path"] for s in sources]), how="diagonal_relaxed")
    # What _joinable lets through must still end in one line (a type nested past Python's limit has no name).
    except (pl.exceptions.PolarsError, RecursionError) as exc:
        raise CuratuneError(f"cannot join the input files: {values_withheld(first_line(exc))}") from None
    dup = rows.filter(pl.col("row_id").is_duplicated())
    if dup.height:  # each file's own ids are unique (above): the same id is in two files
        first = dup["row_id"][0]
        files = dup.filter(pl.col("row_id") == first)["source"].unique(maintain_order=True).to_list()
        raise CuratuneError(f"row id {shown_value(first)} is in both {files[0]} and {files[1]}; ids must be unique "
                            "across the input files", column=cfg.id_col or cfg.conversation_col or "row_id")
    # Format characters (a zero-width space, a byte order mark) show nothing: a text of them alone is empty.
    empty = pl.col("text").is_null() | (pl.col("text").str.replace_all(r"\p{Cf}", "").str.strip_chars() == "")
    unusable = rows.filter(empty).with_columns(pl.lit(EMPTY_TEXT).alias("reason"))
    return Loaded(rows=rows.filter(~empty), unusable=unusable, sources=sources, group_cols=list(cfg.group_cols))


def source_names(paths: list[str]) -> list[str]:
    """Each input's name in the ``source`` column: the file name, with as many of the folders above it
    as tell it from another input of that name ("2023/train.csv", "2024/train.csv")."""
    resolved = [Path(p).resolve() for p in paths]
    names = []
    for path in resolved:
        namesakes = [o for o in resolved if o.name == path.name and o != path]
        depth = 1
        while any(o.parts[-depth:] == path.parts[-depth:] for o in namesakes):
            depth += 1
        names.append(PurePath(*path.parts[-depth:]).as_posix())
    return names


def _binary_as_text(df: pl.DataFrame, cfg: DataConfig, path: str) -> pl.DataFrame:
    """Parquet may hold a text column as bytes: read as UTF-8 text, refusing by its row a value that is
    none (the cast failed outside the reader's error handling: a polars traceback)."""
    for col in [c for c in _role_columns(cfg) if c in df.columns and df.schema[c] == pl.Binary]:
        try:
            df = df.with_columns(pl.col(col).cast(pl.String))
        except pl.exceptions.ComputeError as exc:
            for row, value in enumerate(df[col], start=1):
                try:
                    if value is not None:
                        value.decode("utf-8")
                except UnicodeDecodeError as bad:
                    raise CuratuneError(f"value is not valid UTF-8 text (byte {bad.start}); write the column as "
                                        "UTF-8 strings", file=path, row=row, column=col) from None
            raise CuratuneError(f"cannot read as text: {values_withheld(first_line(exc))}", file=path,
                                column=col) from None
    return df


def _joinable(frames: list[pl.DataFrame], paths: list[str]) -> list[pl.DataFrame]:
    """The frames, each column of one type in all of them; refuse a column whose values in one file cannot
    join its values in another: polars stopped with a traceback (a duration beside text, true/false beside
    a categorical) or joined them as something else without a word (a date beside numbers became the day
    count 18262; a list beside text, garbled text).

    Text in one file and numbers, true/false, dates or times in another are joined as text: every column
    of a CSV is read as text, so a CSV beside a Parquet file of the same data must join, each value as a
    CSV would have written it. Numbers join numbers (Int32 and Int64 widen), and a column with no value in
    a file joins whatever the others hold."""
    if len(frames) == 1:
        return frames
    seen: dict[str, dict[str, tuple[pl.DataType, str]]] = {}
    for df, path in zip(frames, paths, strict=True):
        for col, dtype in df.schema.items():
            if df[col].null_count() < df.height:
                seen.setdefault(col, {}).setdefault(_join_kind(dtype), (dtype, path))
    joined: dict[str, pl.DataType] = {}
    for col, kinds in seen.items():
        unwritable = [k for k in kinds if k not in _JOIN_AS_TEXT and not k.startswith("datetime")]
        if len(kinds) > 1 and not ("text" in kinds and not unwritable):
            pair = (unwritable[0], "text") if "text" in kinds else list(kinds)[:2]
            (first, first_path), (then, then_path) = sorted((kinds[k] for k in pair), key=lambda at: paths.index(at[1]))
            raise CuratuneError(f"column '{col}' holds {first} values in {first_path} but {then} in {then_path}; "
                                "give it one type in every input file")
        # Polars joins neither text stored two ways (categories beside strings, two enums) nor text and
        # the rest without this cast; within one other kind it finds the common type itself.
        joined[col] = pl.String if "text" in kinds else next(iter(kinds.values()))[0]
    out = []
    for df in frames:
        empty = [c for c in df.columns if c in joined and df[c].null_count() == df.height]
        out.append(df.with_columns(
            *[pl.col(c).cast(pl.String) for c in df.columns if joined.get(c) == pl.String and c not in empty],
            # Nulls of one type (a date) may have no cast to the other (text): they are nulls of that type.
            *[pl.lit(None, dtype=joined[c]).alias(c) for c in empty],
        ))
    return out


# The kinds of value that join text as their text (with "datetime <zone>"); "text" is among them itself.
_JOIN_AS_TEXT = ("text", "number", "Boolean", "Date", "Time")


def _join_kind(dtype: pl.DataType) -> str:
    """What a column's values must share with the same column in another file to be joined with them."""
    if dtype.is_numeric():
        return "number"
    if dtype.base_type() in (pl.String, pl.Categorical, pl.Enum):
        return "text"
    if dtype.is_nested():
        return str(dtype)  # a list of numbers beside a list of text is no list of one thing
    if isinstance(dtype, pl.Datetime):
        return f"datetime {dtype.time_zone}"  # instants in two zones have no common type
    return dtype.base_type().__name__


def _check_splits(df: pl.DataFrame, cfg: DataConfig, path: str) -> None:
    """Refuse split names no stage knows, here rather than after curation has run: dedup would treat
    "training" and "train" as different splits (dropping copies as leakage) and training would stop."""
    row = first_row(df, ~pl.col("split").is_in(SPLITS))
    if row is None:
        return
    value = df["split"][row - 1]
    known = ", ".join(f"{a} = {b}" for a, b in SPLIT_ALIASES.items())
    where = {"column": cfg.split_col}
    if cfg.conversation_col:
        msg_id = f" (conversation {shown_value(df['row_id'][row - 1])})"
    else:
        msg_id, where["row"] = "", row
    raise CuratuneError(f"split {shown_value(value)}{msg_id} is not train, validation or test (also read: {known}; "
                        "empty = train)", file=path, **where)


def _check_columns(raw: pl.DataFrame, cfg: DataConfig, path: str) -> None:
    """Refuse input columns the loader would silently overwrite or mangle."""
    # The loader and the pipeline name their working columns "__…" (row positions, turn order, a step's
    # verdicts): an input column of such a name crashed a join, or was dropped without a word.
    own = next((c for c in raw.columns if c.startswith("__")), None)
    if own is not None:
        raise CuratuneError(f"input column '{own}' starts with '__', which curatune keeps for its own working "
                            "columns; rename it", file=path, column=own)
    if "row_id" in raw.columns and cfg.id_col != "row_id":
        hint = "" if cfg.conversation_col else ", or set [data] id_col = \"row_id\" to use it as the ids"
        raise CuratuneError(f"input column 'row_id' would be replaced by curatune's own ids; rename it{hint}",
                            file=path, column="row_id")
    consumed = {cfg.text_col, cfg.label_col, cfg.split_col, cfg.id_col}
    if cfg.conversation_col:
        consumed |= {cfg.conversation_col, cfg.turn_col, cfg.speaker_col}
    reserved = [c for c in ("turns", *BOOKKEEPING, *LEDGER_ONLY) if c in raw.columns and c not in consumed]
    if reserved:
        raise CuratuneError(f"input column '{reserved[0]}' clashes with a column curation adds; rename it",
                            file=path, column=reserved[0])
    for col, role in _role_columns(cfg).items():
        # A duration has no text form in polars: the cast to text stopped with a traceback.
        if col and col in raw.columns and isinstance(raw.schema[col], pl.Duration):
            raise CuratuneError(f"{role} column holds durations ({raw.schema[col]}), which have no text form here; "
                                "write it as text or numbers", file=path, column=col)
        if col and col in raw.columns and raw.schema[col].is_nested():
            raise CuratuneError(f"{role} column holds {raw.schema[col]} values, not plain values; flatten it "
                                "(for a list of messages: one row per turn with [data] conversation_col)",
                                file=path, column=col)


def _check_split_column_exists(columns: list[str], cfg: DataConfig, paths: list[str]) -> None:
    """Refuse a split column the user named that no input file has.

    A file without the default one is all "train" (the data has no splits). A name the user set, though,
    that no file has is most likely misspelt, and read as absent it put every test row into training, with
    no leakage check and nothing held out, without a word. A misspelt label column needs no such check:
    labels read as absent stop the first step that needs them (label issues, training) with an error.
    """
    col = cfg.split_col
    if not col or col == DataConfig.split_col or col in columns:
        return
    where = "the input file" if len(paths) == 1 else f"any of the {len(paths)} input files"
    raise CuratuneError(f"[data] split_col names a split column that is not in {where} (columns are: "
                        f"{_column_names(columns)}); correct the name, or leave split_col unset to read every "
                        f"row as '{DEFAULT_SPLIT}'", file=paths[0] if len(paths) == 1 else None, column=col)


def _role_columns(cfg: DataConfig) -> dict[str, str]:
    """The input columns curatune reads a plain value from, and what each holds."""
    roles = {cfg.text_col: "text", cfg.label_col: "label", cfg.split_col: "split", cfg.id_col: "id",
             cfg.conversation_col: "conversation", cfg.speaker_col: "speaker",
             # Read only in a per-turn file: elsewhere a column of that name is any other column.
             **({cfg.turn_col: "turn"} if cfg.conversation_col else {}),
             **{g: "group" for g in cfg.group_cols}}
    return {c: r for c, r in roles.items() if c}


def _canonical(df: pl.DataFrame, cfg: DataConfig, src: str) -> pl.DataFrame:
    renames = {cfg.text_col: "text"}
    if cfg.label_col in df.columns:
        renames[cfg.label_col] = "label"
    if cfg.split_col in df.columns:
        renames[cfg.split_col] = "split"
    # A column already named like a canonical one, but not mapped onto it, would be overwritten
    # (or, where the mapped column is absent from this file, silently read in its place).
    configured = {"text": cfg.text_col, "label": cfg.label_col, "split": cfg.split_col}
    absent = [c for c, col in configured.items() if c in df.columns and col != c and col not in df.columns]
    if absent:
        key = f"{absent[0]}_col"
        raise CuratuneError(f"[data] {key} is '{configured[absent[0]]}', which this file lacks, but it has a column "
                            f"'{absent[0]}': set {key} = \"{absent[0]}\" or rename that column", file=src,
                            column=absent[0])
    clash = [c for c in ("text", "label", "split") if c in df.columns and configured[c] != c]
    clash += [c for c in ("source",) if c in df.columns]
    if clash:
        raise CuratuneError(f"input column '{clash[0]}' clashes with a reserved column name; rename it",
                            file=src, column=clash[0])
    drop = [c for c in ("__conv_id", "__turn") if c in df.columns]
    if cfg.id_col and cfg.id_col != "row_id" and cfg.id_col in df.columns and cfg.id_col not in renames:
        drop.append(cfg.id_col)
    df = df.drop(drop).rename(renames)
    if "label" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("label"))
    if "split" not in df.columns:
        df = df.with_columns(pl.lit(DEFAULT_SPLIT).alias("split"))
    if "turns" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=TURN_TYPE).alias("turns"))
    df = df.with_columns(
        pl.col("text").cast(pl.String),
        _label_values(pl.col("label"), df.schema["label"]),
        _split_values(pl.col("split")).fill_null(DEFAULT_SPLIT),
        pl.lit(src).alias("source"),
        pl.col("turns").cast(TURN_TYPE),
    )
    rest = [c for c in df.columns if c not in CANONICAL]
    return df.select(*CANONICAL, *rest)


def read_reference(cfg: DataConfig) -> pl.DataFrame:
    """The reference set forgetting is measured on ([data] reference), refused without the columns
    named. `curatune run` reads it before curating too: found at evaluation, a missing file or column
    stopped the run after all of curation and training."""
    ref, col, lab = cfg.reference, cfg.reference_text_col, cfg.reference_label_col
    if not Path(ref).is_file():
        raise CuratuneError("reference set not found ([data] reference)", file=ref)
    df = read_table(ref)
    if col not in df.columns:
        raise CuratuneError("reference set lacks its text column", file=ref, column=col)
    # The default name absent is an unlabelled reference set (no probe); a name the user set is likely
    # misspelt, and read as absent it dropped the probe and its retention from the report without a word.
    if lab not in df.columns and lab != DataConfig.reference_label_col:
        raise CuratuneError("reference set lacks the label column [data] reference_label_col names; correct the "
                            "name, or leave it unset to measure forgetting without the probe", file=ref, column=lab)
    return df


def model_relabelled(curate_dir: Path) -> set[str]:
    """Rows whose label a curation step rewrote and no person gave: the label-issues step's ``relabel``
    policy. Read from the ledger; a hand-made curated table without one has none."""
    path = Path(curate_dir) / LEDGER
    if not path.is_file():
        return set()
    ledger = read_run_table(path, ("row_id", "fate", "reasons"))
    by_person = pl.col("reasons").list.contains(HUMAN_REVIEW)
    if {"review_decision", "final_label"} <= set(ledger.columns):  # one who chose curation's label gave it too
        by_person = by_person | (pl.col("review_decision") == pl.col("final_label")).fill_null(False)
    return set(ledger.filter((pl.col("fate") == "relabelled") & ~by_person)["row_id"].cast(pl.String).to_list())


def relabelled_digest(curate_dir: Path) -> str:
    """A digest of ``model_relabelled``: what a held-out validation's draw reads from the ledger."""
    return hashlib.sha256("\n".join(sorted(model_relabelled(curate_dir))).encode()).hexdigest()

"""The one error type users see: bad input or bad configuration, reported in one line, exit code 2."""

from __future__ import annotations

import re


class CuratuneError(Exception):
    """A problem the user can fix (bad file, bad config, unreachable server).

    The CLI prints ``error: <message>`` on one line and exits with :attr:`exit_code`;
    nothing is half-written, because every table is written atomically.
    """

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.file, self.row, self.column = file, row, column


class GateFailed(CuratuneError):
    """A configured quality gate failed (leak scan, forgetting, fairness ...)."""

    exit_code = 3

    @staticmethod
    def outcome(failed: list[str], unchecked: list[str]) -> str:
        """"failed: a, b; not checked: c": the gates that did not pass, by how."""
        parts = [f"failed: {', '.join(failed)}" if failed else "",
                 f"not checked: {', '.join(unchecked)}" if unchecked else ""]
        return "; ".join(p for p in parts if p)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libraries' messages run to many lines), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# A cell value is repeated in a message only when it reads like a category or an id: messages
# reach terminals and CI logs, and a misconfigured column (the text as the id, say) holds text.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:/-]{1,40}")
# Six digits in all, separators or not: a phone number is written "415-555-0132" as often as not.
_MANY_DIGITS = 6


def may_show(value: object) -> bool:
    """Whether a message may repeat ``value``: a category- or id-like cell."""
    text = str(value)
    return bool(_PLAIN_VALUE.fullmatch(text)) and sum(ch.isdigit() for ch in text) < _MANY_DIGITS


def shown_value(value: object) -> str:
    """``'value'`` for a category- or id-like cell, else a note that it is withheld."""
    return f"'{value}'" if may_show(value) else "(value not shown: it may hold personal data)"


def values_withheld(message: str) -> str:
    """A library's message with the cell values it quotes (in backticks, polars: "could not parse
    `<cell>` as dtype `str`"; or in double quotes) shown only where ``shown_value`` would show them."""
    # A message cut at its first line may open a quote it never closes: the rest is the cell.
    message = re.sub(r"`([^`]*)(?:`|$)", lambda m: shown_value(m.group(1)), message)
    # Others quote it in double quotes, and the value may hold quotes of its own (polars's JSON reader:
    # 'value "Object({"msg": String("...")})"'): from the first quote to the last is one value, to the
    # end where a quote is left open.
    quoted = r'"(.*)"' if message.count('"') % 2 == 0 else r'"(.*)$'
    return re.sub(quoted, lambda m: shown_value(m.group(1)), message)

"""Label Studio round trip: push rows for human review, pull the reviewers' decisions back.

push: curated rows (anonymised text only) become one task each in a Label Studio project, whose
labeling interface is a single choice among the dataset's labels plus "drop" and "unsure", over
the transcript (a conversation view when rows have turns). Every task carries the row's
``row_id`` in its data, a review note in words (the label in the data, curation's suggestion, a
copy with another label), the issue reasons in its meta, and two predictions: the current label
and the suggested one (model version ``<curate run id>:current`` / ``:suggested``; score = label
quality for the current label, 1 - quality for the suggestion), for the Data Manager's columns and
filters. Pre-labelling from predictions is switched off, so no choice is made for the reviewer.
``text_sha256`` in the data is the hash of the text shown: pull records the hash of each task's
text with its reviews (of its turns, when a conversation task shows turns that are not the row's), so
that a review of a text the row no longer has is not applied (curate/reviews.py). Rows the leak scan
still found personal data in are not pushed.

pull: the project's annotations become ``reviews.parquet`` in the curate dir, one row per
annotation; curate/reviews.py resolves conflicts and applies the decisions.

Safe to re-run: a push lists the row_ids the project already holds and imports only the others,
so a second push, or one after a killed push, never duplicates a task; after a failed import it
re-lists before retrying, because the server may have stored the batch before the connection
broke. A push of a later run adds only new rows and replaces the predictions whose label,
suggestion or score (to 2 decimals) changed (delete then import, per chunk, which is itself safe
to repeat); an unchanged prediction keeps the id of the run that made it, because replacing one
costs Label Studio ~30 ms a task. When a row's text changed, a task nobody worked on yet gets the
new text; a task someone annotated, skipped or drafted keeps its text and annotations and is
marked ``superseded_by`` a new task with the new text, since Label Studio would never serve the
old task again to who worked on it. The SDK's own retries are off: they would blindly re-send a
non-idempotent request; creating the project and importing tasks or predictions are retried only
after listing what the server already holds (_send_once).

The API token comes from ``$<token_env>`` or ``token_file`` and is only ever handed to the SDK;
messages, manifests and the push record never contain it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx
import polars as pl
import pydantic
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from curatune.config import LabelStudioConfig
from curatune.curate.label_issues import FLAG_COL, SUGGESTED_COL
from curatune.curate.reviews import DROP, REVIEW_SCHEMA, UNSETTLED, UNSURE, read_reviews, text_sha256
from curatune.dataset import LABEL_CONFLICT, REVIEW_REASONS
from curatune.errors import CuratuneError, first_line
from curatune.rundir import (
    CURATED,
    EXCLUDED,
    LEDGER,
    MANIFEST,
    REVIEWS,
    failed_gates,
    find_stage_dir,
    read_json,
    read_manifest,
    read_run_table,
    scan_run_table,
    unvouched_anonymisation,
    write_json,
    write_parquet,
)

log = logging.getLogger(__name__)

Progress = Callable[[str], None] | None

# Names inside the labeling interface; pull reads the decision from the Choices named CHOICES.
CHOICES = "label"
TEXT_KEY = "text"
# sha256 of the task's text (pull records the hash of the text each review was made on).
TEXT_SHA = "text_sha256"
DIALOGUE_KEY = "dialogue"
# The row's label and what curation found, shown to the reviewer as text (no choice is pre-selected).
NOTE_KEY = "review_note"
# In the meta of a task whose text its row no longer has: the id of the task that shows the new text.
SUPERSEDED = "superseded_by"
# What push last did, for provenance and so that pull finds the project without --project.
PUSH_RECORD = "labelstudio.json"
# The label_issues step's quality: its own column, else its generic per-step score; absent means "not known".
QUALITY_COLS = ("label_quality", "label_issues_score")
DEDUP_SCORE_COL = "dedup_score"  # the ledger holds each step's score as <step>_score: dedup ran
ONLY = ("flagged", "all", "sample")
# The leak scan's per-row count of personal data left after anonymisation (anonymise step).
LEAKED_COL = "pii_leaked"
# Predictions this module wrote (any run); others on a task (an ML backend's) are left alone.
OUR_MODEL_VERSION = re.compile(r"^cur-[0-9a-f]+:(current|suggested)$")
MAX_BACKOFF_S = 30.0
PAGE_SIZE = 1000


# --------------------------------------------------------------------------------------------
# talking to the server


class _Transient(Exception):
    """A failure worth retrying (connection refused or dropped, timeout, HTTP 5xx / 429)."""


class _NotFound(CuratuneError):
    pass


class _Forbidden(CuratuneError):
    pass


def _usable_token(value: str, source: str, file: str | None = None) -> str:
    # An HTTP header takes only ASCII, and a second line in a token file is no part of the token:
    # both would otherwise fail deep in httpx with a message that can quote the token.
    if not value.isascii() or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise CuratuneError(f"the Label Studio API token from {source} has a non-ASCII character or whitespace "
                            "inside; it must be the token alone, on one line", file=file)
    return value


def _token(cfg: LabelStudioConfig) -> str:
    value = os.environ.get(cfg.token_env, "").strip() if cfg.token_env else ""
    if value:
        return _usable_token(value, f"${cfg.token_env}")
    if cfg.token_file:
        path = Path(cfg.token_file).expanduser()
        if not path.is_file():
            raise CuratuneError("Label Studio token file not found", file=str(path))
        try:
            # utf-8-sig: Notepad's "UTF-8" starts the file with a byte-order mark, which is no part of the token.
            value = path.read_text(encoding="utf-8-sig").strip()
        except UnicodeDecodeError:
            raise CuratuneError("Label Studio token file is not UTF-8 text (UTF-16, say): save it as UTF-8",
                                file=str(path)) from None
        if not value:
            raise CuratuneError("Label Studio token file is empty", file=str(path))
        return _usable_token(value, "the token file", file=str(path))
    raise CuratuneError(f"no Label Studio API token: set the environment variable {cfg.token_env} "
                        "or [labelstudio] token_file (Account & Settings > Access Token in Label Studio)")


# The environment variables httpx takes a proxy from (any case; the lower-case one wins).
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


def _http_client(timeout: httpx.Timeout) -> httpx.Client:
    try:
        return httpx.Client(timeout=timeout, follow_redirects=True)
    except (ValueError, ImportError) as exc:  # httpx builds the proxy from the environment here
        set_ = sorted(k for k, v in os.environ.items() if k.lower() in PROXY_VARS and v.strip())

        def unusable(name: str) -> bool:
            value = os.environ[name].strip()
            try:
                httpx.Client(proxy=value if "://" in value else f"http://{value}", trust_env=False).close()
            except (ValueError, ImportError, httpx.InvalidURL):
                return True
            return False

        bad = [k for k in set_ if unusable(k)] or set_
        # Not the value itself: a proxy URL can carry a user name and password.
        why = first_line(exc) if isinstance(exc, ImportError) else \
            "not a proxy URL: expected http://, https:// or socks5://HOST:PORT"
        where = " / ".join("$" + k for k in bad) if bad else "the system's proxy settings"  # macOS, Windows
        raise CuratuneError(f"the proxy set in {where} is not usable ({why}): fix or unset it") from None


def _detail(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("validation_errors"), dict) and body["validation_errors"]:
        # Label Studio's "detail" is then only "Validation error"; the fields say what to change.
        body = "; ".join(f"{field}: {' '.join(map(str, errs)) if isinstance(errs, list) else errs}"
                         for field, errs in body["validation_errors"].items())
    if isinstance(body, dict):
        for key in ("detail", "validation_errors", "message"):
            if body.get(key):
                body = body[key]
                break
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return " ".join(text.split())[:300]


class Server:
    """The SDK client plus retries with back-off and one-line errors a person can act on."""

    def __init__(self, cfg: LabelStudioConfig) -> None:
        self.cfg = cfg
        self.url = cfg.url.rstrip("/")
        self._token = _token(cfg)
        try:
            # The trailing slash matters to the SDK's token refresh (urljoin), for a server under a sub-path.
            timeout = httpx.Timeout(cfg.timeout_s, connect=min(cfg.connect_timeout_s, cfg.timeout_s))
            # The SDK's own timeout is one number for every phase: given none, it uses the client's.
            self.client = LabelStudio(base_url=self.url + "/", api_key=self._token, max_retries=0,
                                      httpx_client=_http_client(timeout))
        except ApiError as exc:  # the SDK checks an expired JWT token here already
            raise self._error("use the API token", exc) from None

    def _clean(self, message: str) -> str:
        return message.replace(self._token, "***") if self._token else message

    def retry_later(self, what: str, failure: Exception, attempt: int, attempts: int) -> None:
        """Say so, then wait before the next attempt. A warning, not a debug line: with the default
        timeout a server that does not answer takes minutes to give up on, and silence looks like a hang."""
        wait = min(self.cfg.retry_backoff_s * 2 ** attempt, MAX_BACKOFF_S)
        log.warning("Label Studio: %s failed (%s); retry %d of %d in %.0f s", what, self._clean(str(failure)),
                    attempt + 1, attempts - 1, wait)
        time.sleep(wait)

    def _error(self, what: str, exc: ApiError) -> CuratuneError:
        code = exc.status_code
        if code == 401:
            source = f"${self.cfg.token_env}" + (f" / {self.cfg.token_file}" if self.cfg.token_file else "")
            return CuratuneError(f"Label Studio at {self.url} rejected the API token (HTTP 401): check {source}")
        detail = self._clean(_detail(exc.body))
        if code == 403:
            return _Forbidden(f"Label Studio at {self.url} does not allow this token's user to {what} "
                              f"(HTTP 403: {detail})")
        if code == 404:
            return _NotFound(f"Label Studio at {self.url} has no such thing: cannot {what} (HTTP 404)")
        return CuratuneError(f"Label Studio at {self.url} refused to {what} (HTTP {code}: {detail})")

    def not_label_studio(self, what: str) -> CuratuneError:
        return CuratuneError(f"{self.url} does not answer like a Label Studio server (its reply to '{what}' is "
                             "not Label Studio's JSON): is the URL right?")

    def id_in(self, what: str, reply: Any) -> int:
        """The id in a reply that must carry one: without it, what push reported went nowhere."""
        value = getattr(reply, "id", None)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.not_label_studio(what)
        return value

    def unavailable(self, what: str, failure: Exception, attempts: int) -> CuratuneError:
        reason = self._clean(str(failure))
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if reason.startswith("HTTP"):
            return CuratuneError(f"Label Studio at {self.url} failed to {what} ({reason}) after {tries}; "
                                 "try again later")
        return CuratuneError(f"Label Studio at {self.url} is unreachable ({reason}) after {tries}: "
                             "is the server running and the URL right?")

    def call(self, what: str, fn: Callable[[], Any], *, retry: bool = True) -> Any:
        """Run one request; transient failures are retried (or raised as _Transient when retry=False)."""
        attempts = self.cfg.retries + 1 if retry else 1
        failure: Exception = _Transient("no attempt made")
        for attempt in range(attempts):
            try:
                return fn()
            # A proxy's page, another server; the SDK parses a reply of the wrong shape ([], null) into
            # TypeError / AttributeError. Before UnicodeError: a reply that is not UTF-8 is no URL's fault.
            except (json.JSONDecodeError, pydantic.ValidationError, UnicodeDecodeError, TypeError,
                    AttributeError):
                raise self.not_label_studio(what) from None
            # UnicodeError: a host name that is no host name (an empty or 64-character label, a bad xn--).
            except (httpx.UnsupportedProtocol, httpx.InvalidURL, UnicodeError):
                raise CuratuneError(f"not a usable Label Studio URL: {self.url!r} (expected http://host:port)") \
                    from None
            except httpx.TransportError as exc:
                failure = _Transient(type(exc).__name__)
            except ApiError as exc:
                if exc.status_code is not None and (exc.status_code >= 500 or exc.status_code == 429):
                    failure = _Transient(f"HTTP {exc.status_code}")
                else:
                    raise self._error(what, exc) from None
            if attempt + 1 < attempts:
                self.retry_later(what, failure, attempt, attempts)
        if not retry:
            raise failure
        raise self.unavailable(what, failure, attempts)

    def check_token(self) -> None:
        what = "check the API token"
        try:
            me = self.call(what, self.client.users.whoami)
        except _NotFound:
            raise CuratuneError(f"{self.url} does not look like a Label Studio server "
                                "(it has no /api/current-user/whoami)") from None
        # Any JSON server answers, and the SDK builds its reply without validating it: Label Studio's
        # user has an id and a username (which its model requires), a server answering {"id": 1} none.
        self.id_in(what, me)
        if not isinstance(getattr(me, "username", None), str):
            raise self.not_label_studio(what)


# --------------------------------------------------------------------------------------------
# the project and its labeling interface


@dataclass
class Project:
    id: int
    title: str
    to_name: str  # the object tag the choices apply to: TEXT_KEY or DIALOGUE_KEY


def labeling_config(labels: list[str], dialogue: bool) -> str:
    """Single choice among the labels plus drop / unsure, over the transcript."""
    if dialogue:
        obj = (f'  <Paragraphs name="{DIALOGUE_KEY}" value="${DIALOGUE_KEY}" layout="dialogue" '
               'nameKey="speaker" textKey="text"/>')
        to_name = DIALOGUE_KEY
    else:
        obj = f'  <Text name="{TEXT_KEY}" value="${TEXT_KEY}"/>'
        to_name = TEXT_KEY
    choices = "\n".join(f"    <Choice value={quoteattr(v)}/>" for v in [*labels, DROP, UNSURE])
    return (f'<View>\n  <Header value="Transcript"/>\n{obj}\n  <Header value="${NOTE_KEY}" size="5"/>\n'
            '  <Header value="Correct label"/>\n'
            f'  <Choices name="{CHOICES}" toName="{to_name}" choice="single" required="true" '
            f'showInline="false">\n{choices}\n  </Choices>\n</View>')


def _offered(choices: ET.Element) -> set[str]:
    return {str(c.get("alias") or c.get("value")) for c in choices.iter("Choice")}


def extra_choices(xml: str, labels: list[str]) -> list[str]:
    """Choices the project offers that are neither a dataset label nor drop / unsure (votes for them
    are not applied)."""
    try:
        found = [e for e in ET.fromstring(xml).iter("Choices") if e.get("name") == CHOICES]
    except ET.ParseError:
        return []
    return sorted(_offered(found[0]) - {*labels, DROP, UNSURE}) if found else []


def check_label_config(xml: str, labels: list[str], title: str, pid: int) -> str:
    """The project's interface must offer every dataset label; returns the object tag's name."""
    where = f"label config mismatch: project '{title}' (id {pid})"
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        raise CuratuneError(f"{where} has a labeling config that is not valid XML") from None
    found = [e for e in root.iter("Choices") if e.get("name") == CHOICES]
    if not found:
        raise CuratuneError(f'{where} has no <Choices name="{CHOICES}">; push to a new project')
    if found[0].get("choice", "single") not in ("single", "single-radio"):
        raise CuratuneError(f'{where} lets a reviewer pick several choices (choice="{found[0].get("choice")}"); '
                            'a review decides one label: set choice="single" or push to a new project')
    offered = _offered(found[0])
    missing = [lab for lab in labels if lab not in offered]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise CuratuneError(f"{where} has no choice for the dataset's label(s) {shown}; add them to its "
                            "labeling interface or push to a new project")
    to_name = found[0].get("toName", "")
    target = next((e for e in root.iter() if e.get("name") == to_name and e is not found[0]), None)
    value = target.get("value") if target is not None else None
    if value not in (f"${TEXT_KEY}", f"${DIALOGUE_KEY}"):
        raise CuratuneError(f"{where}: its choices apply to '{to_name}', which shows {value!r}; curatune tasks "
                            f"carry ${TEXT_KEY} and ${DIALOGUE_KEY}")
    return to_name


def find_project(server: Server, ref: str, recorded: Path | None = None) -> Project | None:
    """A project by id (must exist) or by exact title (None when there is none). ``recorded``: the push
    record the id was read from, when nobody typed one."""
    client = server.client
    if re.fullmatch(r"[0-9]+", ref):  # not str.isdigit: that takes "²", which int() refuses
        what = f"read project {ref}"
        try:
            p = server.call(what, lambda: client.projects.get(int(ref)))
        except _NotFound:
            if recorded is not None:
                raise CuratuneError(f"Label Studio at {server.url} has no project with id {ref}, the project the "
                                    f"last push recorded in {PUSH_RECORD} (deleted since?): pass --project "
                                    "NAME_OR_ID", file=str(recorded)) from None
            raise CuratuneError(f"Label Studio at {server.url} has no project with id {ref} (a number is read "
                                "as a project id, not a title)") from None
        return Project(server.id_in(what, p), p.title or "", _to_name(p.label_config or ""))
    found = server.call("list projects", lambda: [p for p in client.projects.list(title=ref, page_size=100)
                                                  if p.title == ref])
    if len(found) > 1:
        ids = ", ".join(str(p.id) for p in found)
        raise CuratuneError(f"several Label Studio projects are titled '{ref}' (ids {ids}): pass --project ID")
    if not found:
        return None
    what = f"read project {found[0].id}"
    p = server.call(what, lambda: client.projects.get(found[0].id))
    return Project(server.id_in(what, p), p.title or "", _to_name(p.label_config or ""))


def _report_extra_choices(xml: str, labels: list[str], project: Project, say: Callable[[str], None]) -> None:
    extra = extra_choices(xml, labels)
    if extra:
        shown = ", ".join(extra[:8]) + (f" and {len(extra) - 8} more" if len(extra) > 8 else "")
        log.warning("project '%s' (id %s) offers choices that are not labels of this dataset: %s; "
                    "reviews choosing them are not applied", project.title, project.id, shown)
        say(f"labelstudio: project '{project.title}' offers choice(s) {shown}, not labels of this dataset: "
            "reviews choosing them are not applied")


def _to_name(xml: str) -> str:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return ""
    found = [e for e in root.iter("Choices") if e.get("name") == CHOICES]
    return found[0].get("toName", "") if found else ""


# --------------------------------------------------------------------------------------------
# what to push


def _check_options(cfg: LabelStudioConfig) -> None:
    if cfg.only not in ONLY:
        raise CuratuneError(f"--only must be one of {', '.join(ONLY)}, got {cfg.only!r}")
    if not re.match(r"^https?://[^/\s]+", cfg.url or ""):
        raise CuratuneError(f"not a usable Label Studio URL: {cfg.url!r} (expected http://host:port)")
    cfg.check()  # a config built in code never passed through the loader


def check_round_setup(cfg: LabelStudioConfig, steps: list[str]) -> None:
    """What a `curatune run` with ``[labelstudio] enabled`` needs before it curates: checked only by
    the push after curation, a missing project, token or anonymise step stopped the run after all of it."""
    _check_options(cfg)
    if not cfg.project.strip():
        raise CuratuneError("[labelstudio] enabled = true needs a project to push to: set [labelstudio] project")
    if cfg.only == "flagged" and not {"label_issues", "dedup"} & set(steps):
        raise CuratuneError("[labelstudio] only = \"flagged\" sends the rows label_issues flags and dedup's label "
                            "conflicts, and neither step is in [curate] steps: add one, or set [labelstudio] only = "
                            "\"all\" or \"sample\"")
    if cfg.require_anonymised and "anonymise" not in steps:
        raise CuratuneError("[labelstudio] enabled = true sends anonymised text only: add 'anonymise' to [curate] "
                            "steps, or set [labelstudio] require_anonymised = false for data without personal data")
    _token(cfg)


def check_publishable(manifest: dict[str, Any], cfg: LabelStudioConfig, curate_dir: Path) -> str:
    """Only anonymised text may leave the machine: refuse a run whose leak scan failed, or that
    was never anonymised. Returns the run id."""
    where = str(curate_dir / MANIFEST)
    failed_gate = "leak_scan" in failed_gates(manifest)
    anon = [s for s in manifest.get("steps") or [] if s.get("name") == "anonymise"]
    scans = [s.get("summary", {}).get("leak_scan") for s in anon]
    scans = [s for s in scans if isinstance(s, dict)]
    if failed_gate or any(s.get("passed") is False for s in scans):
        remaining = sum(int(s.get("remaining", 0)) for s in scans)
        raise CuratuneError(f"refusing to push: this run's leak scan found personal data left after "
                            f"anonymisation ({remaining} remaining); fix anonymisation and curate again", file=where)
    if cfg.require_anonymised:
        if not anon:
            raise CuratuneError("refusing to push: this run was not anonymised (no 'anonymise' step in its "
                                "manifest); add it to [curate] steps, or set [labelstudio] require_anonymised = "
                                "false for data without personal data", file=where)
        # Never on a missing record: a scan that recorded no pass vouches for nothing.
        if len(scans) != len(anon) or any(s.get("passed") is not True for s in scans):
            raise CuratuneError("refusing to push: this run's anonymise step recorded no leak-scan result; curate "
                                "again", file=where)
        if why := unvouched_anonymisation(manifest):
            raise CuratuneError(f"refusing to push: {why}; curate again with the default settings, or set "
                                "[labelstudio] require_anonymised = false for data without personal data", file=where)
    run_id = manifest.get("run_id")
    if not run_id:
        raise CuratuneError("curate manifest has no run_id; curate again", file=where)
    return str(run_id)


def review_rows(curate_dir: Path, cfg: LabelStudioConfig) -> tuple[pl.DataFrame, list[str]]:
    """The rows to push (row_id, text, turns, label, suggested, quality, reasons) and the label set."""
    curated = read_run_table(curate_dir / CURATED, ("row_id", "text", "label"))
    ledger = read_run_table(curate_dir / LEDGER, ("row_id", "reasons", "original_label", "final_label"))
    quality_col = next((c for c in QUALITY_COLS if c in ledger.columns), None)
    info = ledger.select(
        "row_id", "reasons",
        (pl.col(FLAG_COL) if FLAG_COL in ledger.columns else pl.lit(None, dtype=pl.Boolean)).alias("flagged"),
        (pl.col(SUGGESTED_COL) if SUGGESTED_COL in ledger.columns else pl.lit(None, dtype=pl.String))
        .cast(pl.String).alias("suggested"),
        (pl.col(quality_col) if quality_col else pl.lit(None, dtype=pl.Float64)).cast(pl.Float64).alias("quality"),
        (pl.col(LEAKED_COL) if LEAKED_COL in ledger.columns else pl.lit(0)).fill_null(0).cast(pl.Int64)
        .alias(LEAKED_COL),
        pl.col("original_label").cast(pl.String).alias("__data_label"),
        pl.col("final_label").cast(pl.String).alias("__final"),
        (pl.col("review_decision") if "review_decision" in ledger.columns else pl.lit(None))
        .cast(pl.String).alias("__decided"),
    )
    turns = pl.col("turns") if "turns" in curated.columns else pl.lit(None).alias("turns")
    rows = curated.select("row_id", "text", turns, pl.col("label").cast(pl.String)).join(info, on="row_id",
                                                                                         how="left")
    # A label the label_issues policy rewrote is a model's opinion: the reviewer judges the data's own
    # label, with the rewrite as curation's suggestion (shown as the data's label, it hid that anything
    # was changed, and from what). A label a person decided on is the row's label now.
    by_model = (pl.col("__data_label").is_not_null() & (pl.col("__data_label") != pl.col("__final"))
                & (pl.col("label") == pl.col("__final")) & (pl.col("__decided") != pl.col("__final")).fill_null(True))
    rows = rows.with_columns(pl.when(by_model).then("label").otherwise("suggested").alias("suggested"),
                             pl.when(by_model).then("__data_label").otherwise("label").alias("label"),
                             ).drop("__data_label", "__final", "__decided")
    if cfg.only == "flagged":
        # Doubtful labels come from two steps: label_issues' flags, and dedup's copies with another label.
        conflict = pl.col("reasons").list.contains(LABEL_CONFLICT).fill_null(False)
        # Either step having run is enough, as check_round_setup promised before curation: one that found
        # nothing doubtful sends no rows (dedup without conflicts, like label_issues without flags).
        if FLAG_COL not in ledger.columns and DEDUP_SCORE_COL not in ledger.columns:
            raise CuratuneError("this run has no label-issue flags and no label conflicts from dedup (neither "
                                "step ran): push with --only all or --only sample ([labelstudio] only in a "
                                "config)", file=str(curate_dir / LEDGER))
        rows = rows.filter(pl.col("flagged").fill_null(False) | conflict)
    elif cfg.only == "sample" and rows.height > cfg.sample_size:
        rows = sample_rows(rows, cfg.sample_size, cfg.sample_seed)
    rows = rows.sort("row_id")
    labels = set(curated["label"].drop_nulls().cast(pl.String).to_list())
    for col in ("original_label", "final_label", SUGGESTED_COL):
        if col in ledger.columns:
            labels |= set(ledger[col].drop_nulls().cast(pl.String).to_list())
    # "conflict" is what the ledger records for a row whose reviewers disagreed: a label of that name,
    # chosen, read as undecided there.
    clash = labels & {DROP, *UNSETTLED}
    if clash:
        raise CuratuneError(f"the dataset has a label named {sorted(clash)[0]!r}, which is also a review outcome "
                            "curatune records; rename that label")
    return rows, sorted(labels)


def sample_rows(rows: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """``n`` rows drawn by a hash of the seed and each row_id: whether a row is drawn does not depend on
    the other rows, so a push after rows were dropped or added sends the rows sent before, less those
    gone and with others in their places (a positional sample drew another set whenever the row count
    changed, and every round brought reviewers new tasks)."""
    draw = [hashlib.sha256(f"{seed}:{r}".encode()).hexdigest() for r in rows["row_id"].to_list()]
    return rows.with_columns(pl.Series("__draw", draw)).sort("__draw", "row_id").head(n).drop("__draw")


def _choice(value: str, to_name: str) -> dict[str, Any]:
    return {"from_name": CHOICES, "to_name": to_name, "type": "choices", "value": {"choices": [value]}}


def _predictions(row: dict[str, Any], run_id: str, to_name: str) -> list[dict[str, Any]]:
    quality = row["quality"]
    out = []
    if row["label"] is not None:
        pred = {"model_version": f"{run_id}:current", "result": [_choice(row["label"], to_name)]}
        if quality is not None:
            pred["score"] = round(float(quality), 6)
        out.append(pred)
    if row["suggested"] is not None and row["suggested"] != row["label"]:
        pred = {"model_version": f"{run_id}:suggested", "result": [_choice(row["suggested"], to_name)]}
        if quality is not None:
            pred["score"] = round(1.0 - float(quality), 6)
        out.append(pred)
    return out


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    # Reasons from earlier reviews came from Label Studio itself: sending them back would only churn.
    return {"reasons": [r for r in row["reasons"] or [] if r not in REVIEW_REASONS]}


def review_note(row: dict[str, Any]) -> str:
    """The row's label and what curation found, in words, for the reviewer to read."""
    parts = [f"Label in the data: {row['label']}" if row["label"] is not None else "No label in the data"]
    if row["suggested"] is not None and row["suggested"] != row["label"]:
        parts.append(f"curation suggests: {row['suggested']}")
    if LABEL_CONFLICT in (row["reasons"] or []):
        parts.append("a copy of this text carries another label")
    return "; ".join(parts)


def _dialogue(row: dict[str, Any]) -> list[dict[str, str]]:
    """The turns a conversation project shows of a row."""
    turns = row["turns"] or [{"speaker": "", "text": row["text"]}]
    return [{"speaker": t["speaker"] or "", "text": t["text"] or ""} for t in turns]


def _task(row: dict[str, Any], run_id: str, to_name: str) -> dict[str, Any]:
    data: dict[str, Any] = {"row_id": row["row_id"], TEXT_KEY: row["text"], TEXT_SHA: text_sha256(row["text"]),
                            NOTE_KEY: review_note(row)}
    if to_name == DIALOGUE_KEY:
        data[DIALOGUE_KEY] = _dialogue(row)
    return {"data": data, "meta": _meta(row), "predictions": _predictions(row, run_id, to_name)}


# --------------------------------------------------------------------------------------------
# push


def _existing_tasks(server: Server, pid: int) -> dict[str, list[dict[str, Any]]]:
    """row_id -> the project's tasks carrying it (id, meta, data, whether anyone worked on it), lowest id
    first."""
    client = server.client

    def fetch() -> list[Any]:
        # fields="all" is what computes draft_exists; include keeps the reply to these fields.
        return list(client.tasks.list(project=pid, fields="all", page_size=PAGE_SIZE,
                                      include="id,data,meta,total_annotations,cancelled_annotations,draft_exists"))

    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in server.call("list the project's tasks", fetch):
        row_id = (t.data or {}).get("row_id")
        if row_id is not None:
            # A skip or a draft counts too: Label Studio does not serve a task again to who skipped it.
            worked = bool(getattr(t, "total_annotations", 0) or getattr(t, "cancelled_annotations", 0)
                          or getattr(t, "draft_exists", False))
            out[str(row_id)].append({"id": t.id, "meta": t.meta or {}, "data": t.data or {}, "worked": worked})
    for tasks in out.values():
        tasks.sort(key=lambda t: t["id"])
    return dict(out)


def _send_once(server: Server, what: str, send: Callable[[], Any],
               settle: Callable[[], Callable[[], Any] | None]) -> None:
    """Send a request that must not reach the server twice. The server may have committed it before
    the connection broke, so after a transient failure ``settle`` looks at what the server now holds
    and returns the request still to send, or None when nothing is left."""
    attempts = server.cfg.retries + 1
    for attempt in range(attempts):
        try:
            server.call(what, send, retry=False)
            return
        except _Transient as exc:
            if attempt + 1 == attempts:
                raise server.unavailable(what, exc, attempts) from None
            server.retry_later(what, exc, attempt, attempts)
            rest = settle()
            if rest is None:
                return
            send = rest


def _import_batch(server: Server, pid: int, batch: list[dict[str, Any]]) -> None:
    client = server.client

    def settle() -> Callable[[], Any] | None:
        # A row can have an older task (with the text it had before): what counts is row and text.
        present = {(row_id, text_sha256(t["data"].get(TEXT_KEY)))
                   for row_id, tasks in _existing_tasks(server, pid).items() for t in tasks}
        rest = [t for t in batch if (t["data"]["row_id"], t["data"][TEXT_SHA]) not in present]
        return (lambda: client.projects.import_tasks(pid, request=rest)) if rest else None

    _send_once(server, "import tasks", lambda: client.projects.import_tasks(pid, request=batch), settle)


def _import_predictions(server: Server, pid: int, request: list[dict[str, Any]]) -> None:
    client = server.client

    def key(task: int, mv: str | None, result: Any, score: Any) -> tuple[Any, ...]:
        return (task, mv, *_pred_key(mv, result, score))

    def settle() -> Callable[[], Any] | None:
        present = {key(p.task, p.model_version, p.result, p.score)
                   for p in server.call("list predictions", lambda: client.predictions.list(project=pid))}
        rest = [r for r in request if key(r["task"], r["model_version"], r["result"], r.get("score")) not in present]
        return (lambda: client.projects.import_predictions(pid, request=rest)) if rest else None

    _send_once(server, "import predictions", lambda: client.projects.import_predictions(pid, request=request),
               settle)


def _create_project(server: Server, title: str, xml: str, description: str) -> Project:
    created: list[Any] = []

    def create() -> None:
        created.append(server.client.projects.create(title=title, label_config=xml, description=description,
                                                     show_collab_predictions=False))

    # A second project of the same title would split the reviews between two projects.
    _send_once(server, "create a project", create, lambda: None if find_project(server, title) else create)
    if created:
        return Project(server.id_in("create a project", created[-1]), title, _to_name(xml))
    found = find_project(server, title)
    if found is None:  # settle saw it a moment ago
        raise CuratuneError(f"Label Studio at {server.url}: project '{title}' disappeared while it was created")
    return found


def _same_turns(data: dict[str, Any], dialogue: list[dict[str, str]] | None) -> bool:
    return data.get(DIALOGUE_KEY, dialogue) == dialogue


def _shows(data: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a task shows the row's text and turns as push would send them: judged on the text itself,
    not on the hash push stored, because a task's text can be edited in Label Studio."""
    return text_sha256(data.get(TEXT_KEY)) == new[TEXT_SHA] and _same_turns(data, new.get(DIALOGUE_KEY))


def _live_task(tasks: list[dict[str, Any]], new: dict[str, Any]) -> dict[str, Any] | None:
    """The task that shows the row now: one with its text, else an open one nobody worked on yet, whose
    text can simply be replaced. None: the row needs a new task."""
    showing = [t for t in tasks if _shows(t["data"], new)]
    if showing:
        return showing[0]
    open_ = [t for t in tasks if SUPERSEDED not in t["meta"]]
    return open_[0] if open_ and not open_[0]["worked"] else None


def _pred_key(mv: str | None, result: Any, score: Any) -> tuple[str, str, float | None]:
    """What a reviewer sees of a prediction: its kind (current / suggested), label and score."""
    try:
        choice = str(result[0]["value"]["choices"][0])
    except (TypeError, KeyError, IndexError):
        choice = ""
    kind = (mv or "").rsplit(":", 1)[-1]
    return (kind, choice, None if score is None else round(float(score), 2))


def _update_existing(server: Server, project: Project, pairs: list[tuple[dict[str, Any], dict[str, Any]]],
                     say: Callable[[str], None]) -> tuple[int, int]:
    """Bring each (task, wanted task) pair up to date: the text of a task nobody worked on yet, the
    review note, the predictions and the meta that changed. Returns (tasks updated, texts replaced)."""
    client = server.client
    pid = project.id
    preds = server.call("list predictions", lambda: client.predictions.list(project=pid))
    by_task: dict[int, list[Any]] = defaultdict(list)
    for p in preds:
        by_task[p.task].append(p)
    stale: list[tuple[int, list[int], bool, list[dict[str, Any]]]] = []
    # One request per task for its data and meta together: Label Studio has no bulk update of either,
    # and each request costs ~0.1 s.
    patches: dict[int, dict[str, Any]] = defaultdict(dict)
    texts = 0
    for task, wanted in pairs:
        tid, data, new_data, want = task["id"], task["data"], wanted["data"], wanted["predictions"]
        if not _shows(data, new_data):
            patches[tid]["data"] = new_data
            texts += 1
        elif data.get(NOTE_KEY) != new_data[NOTE_KEY] and not task["worked"]:
            # A task someone reviewed keeps the note they read (the labels as they were then).
            patches[tid]["data"] = {**data, NOTE_KEY: new_data[NOTE_KEY]}
        if task["meta"] != wanted["meta"]:
            patches[tid]["meta"] = wanted["meta"]
        ours = [p for p in by_task.get(tid, []) if OUR_MODEL_VERSION.match(p.model_version or "")]
        have = sorted((_pred_key(p.model_version, p.result, p.score) for p in ours), key=str)
        if have != sorted((_pred_key(w["model_version"], w["result"], w.get("score")) for w in want), key=str):
            foreign = len(ours) < len(by_task.get(tid, []))
            stale.append((tid, [p.id for p in ours], foreign, want))
    size = server.cfg.batch_size
    for i, (tid, patch) in enumerate(patches.items(), start=1):
        server.call("update a task", lambda t=tid, p=patch: client.tasks.update(str(t), **p))
        if i % size == 0 or i == len(patches):
            say(f"labelstudio: updated the text, review note or issue reasons of {i}/{len(patches)} tasks")
    for start in range(0, len(stale), size):
        chunk = stale[start:start + size]
        _replace_predictions(server, pid, chunk)
        say(f"labelstudio: updated predictions on {start + len(chunk)}/{len(stale)} tasks")
    return len({t for t, *_ in stale} | set(patches)), texts


def _supersede(server: Server, existing: dict[str, list[dict[str, Any]]], wanted: dict[str, dict[str, Any]],
               say: Callable[[str], None]) -> int:
    """Mark each open task that shows a text its row no longer has as superseded by the row's live task
    (meta ``superseded_by``): it keeps its annotations, which pull still records (on the old text's hash,
    so they are not applied), and the Data Manager can filter it out. Returns how many were marked."""
    marks: list[tuple[int, dict[str, Any]]] = []
    for row_id, new in wanted.items():
        tasks = existing.get(row_id, [])
        live = next((t for t in tasks if _shows(t["data"], new["data"])), None)
        if live is None:
            continue
        marks += [(t["id"], {**t["meta"], SUPERSEDED: live["id"]}) for t in tasks
                  if not _shows(t["data"], new["data"]) and t["meta"].get(SUPERSEDED) != live["id"]]
    for tid, meta in marks:
        server.call("mark a task superseded", lambda t=tid, m=meta: server.client.tasks.update(str(t), meta=m))
    if marks:
        say(f"labelstudio: marked {len(marks)} tasks superseded_by the task that shows their row's new text")
    return len(marks)


def _replace_predictions(server: Server, pid: int, chunk: list[tuple[int, list[int], bool, list[dict]]]) -> None:
    """Delete then import, so that repeating the whole chunk (after a failure) is harmless."""
    client = server.client
    bulk = [tid for tid, ours, foreign, _ in chunk if ours and not foreign]
    if bulk:
        server.call("delete stale predictions", lambda: client.actions.create(
            id="delete_tasks_predictions", project=pid, selected_items={"all": False, "included": bulk}))
    for _, ours, foreign, _ in chunk:
        if foreign:  # another model's predictions share the task: delete only ours, one by one
            for pred_id in ours:
                try:
                    server.call("delete a stale prediction", lambda p=pred_id: client.predictions.delete(p))
                except _NotFound:
                    continue
    request = [{**p, "task": tid} for tid, _, _, want in chunk for p in want]
    if request:
        _import_predictions(server, pid, request)


def _without_prelabels(server: Server, project: Any, say: Callable[[str], None]) -> None:
    """Reviewers choose the label themselves. With predictions shown, Label Studio pre-selects the choice
    of the project's model version, which our imports set to curation's suggestion: a plain Submit would
    accept it. The labels are shown as text instead (NOTE_KEY). Another model's pre-labels are left on."""
    version = project.model_version or ""
    if project.show_collab_predictions and (not version or OUR_MODEL_VERSION.match(version)):
        server.call("switch off pre-labelling", lambda: server.client.projects.update(
            project.id, show_collab_predictions=False))
        say(f"labelstudio: switched off pre-labelling in project '{project.title}' (id {project.id}), so that "
            "no choice is made for the reviewer")


def _push_hint(manifest: dict[str, Any], replaced: int) -> str:
    data = (manifest.get("config") or {}).get("data") or {}
    if replaced and not data.get("id_col") and not data.get("conversation_col"):
        return (" If many rows changed at once, their ids may be positions in the input file, which shift when "
                "a row is added or removed: set [data] id_col.")
    return ""


def push(run_dir: str | Path, cfg: LabelStudioConfig, progress: Progress = None) -> dict[str, Any]:
    """Send a curate run's rows to a Label Studio project; safe to repeat (see the module doc)."""
    say = progress or (lambda _msg: None)
    _check_options(cfg)
    curate_dir = find_stage_dir(run_dir, "curate")
    manifest = read_manifest(curate_dir) or {}
    run_id = check_publishable(manifest, cfg, curate_dir)
    ref = cfg.project.strip()
    if not ref:
        raise CuratuneError("no Label Studio project: pass --project NAME_OR_ID or set [labelstudio] project")
    rows_df, labels = review_rows(curate_dir, cfg)
    # A leak scan allowed to pass with max_leaks > 0 still names the rows it found personal data in.
    leaked = int((rows_df[LEAKED_COL] > 0).sum())
    rows_df = rows_df.filter(pl.col(LEAKED_COL) == 0)
    has_turns = "turns" in rows_df.columns and rows_df["turns"].drop_nulls().len() > 0
    server = Server(cfg)
    server.check_token()
    project = find_project(server, ref)
    if project is None:
        project = _create_project(server, ref, labeling_config(labels, dialogue=has_turns),
                                  f"curatune review of curate run {run_id}")
        say(f"labelstudio: created project '{ref}' (id {project.id})")
        settings = server.call(f"read project {project.id}", lambda: server.client.projects.get(project.id))
    else:
        settings = server.call(f"read project {project.id}", lambda: server.client.projects.get(project.id))
        project.to_name = check_label_config(settings.label_config or "", labels, project.title, project.id)
        _report_extra_choices(settings.label_config or "", labels, project, say)
    _without_prelabels(server, settings, say)
    if leaked:
        say(f"labelstudio: left out {leaked} rows the leak scan found personal data in ({LEAKED_COL} > 0 in "
            "the ledger)")
    rows = rows_df.to_dicts()
    say(f"labelstudio: {len(rows)} rows to review ({cfg.only}) -> project '{project.title}' (id {project.id})")
    existing = _existing_tasks(server, project.id)
    wanted = {r["row_id"]: _task(r, run_id, project.to_name) for r in rows}
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    new: list[dict[str, Any]] = []
    for row_id, want in wanted.items():
        live = _live_task(existing.get(row_id, []), want["data"])
        if live is None:
            new.append(want)
        else:
            pairs.append((live, want))
    # A row whose text changed after someone annotated, skipped or drafted its task gets a new task:
    # Label Studio never serves a task again to who worked on it, and counts its annotations against the
    # task's overlap for everyone else, so new text on the old task would go unreviewed.
    replaced = sum(w["data"]["row_id"] in existing for w in new)
    for start in range(0, len(new), cfg.batch_size):
        batch = new[start:start + cfg.batch_size]
        _import_batch(server, project.id, batch)
        say(f"labelstudio: imported {start + len(batch)}/{len(new)} new tasks"
            + (f" ({replaced} for rows whose text changed after review)" if replaced else ""))
    updated, in_place = _update_existing(server, project, pairs, say) if pairs else (0, 0)
    if replaced or in_place:
        existing = _existing_tasks(server, project.id)
    superseded = _supersede(server, existing, wanted, say)
    duplicates = sum(n - 1 for tasks in existing.values()
                     for n in Counter(text_sha256(t["data"].get(TEXT_KEY)) for t in tasks).values())
    if duplicates:
        log.warning("project %s holds %d duplicate tasks (same row_id and text); only the first of each is "
                    "updated", project.id, duplicates)
    not_sent = len(set(existing) - set(wanted))
    if not_sent:
        say(f"labelstudio: {not_sent} rows with a task in the project were not sent this time (no longer "
            f"{'flagged' if cfg.only == 'flagged' else 'chosen'}, or not curated in this run); reviews of those "
            "in this run still count at pull")
    if replaced or in_place:
        say(f"labelstudio: {replaced + in_place} rows have new text; reviews of their old text are not applied."
            + _push_hint(manifest, replaced + in_place))
    result = {"project_id": project.id, "project": project.title, "created": len(new) - replaced,
              "replaced": replaced, "updated": updated, "text_changed": replaced + in_place,
              "unchanged": len(pairs) - updated, "rows": len(rows), "superseded": superseded,
              "not_sent": not_sent, "left_out_leaked": leaked, "duplicates_in_project": duplicates}
    write_json({"url": server.url, "run_id": run_id, "only": cfg.only,
                "pushed_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}, curate_dir / PUSH_RECORD)
    return result


# --------------------------------------------------------------------------------------------
# pull


def _export(server: Server, pid: int) -> list[dict[str, Any]]:
    """Every annotated task with its annotations (one request on the Community edition)."""
    client = server.client
    edition = getattr(server.call("read the server version", client.versions.get), "edition", "")
    if edition == "Enterprise":  # exports there are asynchronous jobs; the SDK polls them
        return server.call("export annotations",
                           lambda: client.projects.exports.as_json(pid, timeout=int(server.cfg.timeout_s)))
    raw = server.call("export annotations", lambda: b"".join(
        client.projects.exports.download_sync(pid, export_type="JSON", download_all_tasks=False)))
    try:
        tasks = json.loads(raw)
    except json.JSONDecodeError:
        raise CuratuneError(f"Label Studio at {server.url} sent an export that is not JSON") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise server.not_label_studio("export annotations")
    return tasks


def _decision(result: Any) -> tuple[str | None, int]:
    """(the choice, how many choices): the decision is None unless exactly one was made."""
    for item in result or []:
        if item.get("from_name") == CHOICES and item.get("type") == "choices":
            choices = (item.get("value") or {}).get("choices") or []
            if choices:
                return (str(choices[0]) if len(choices) == 1 else None), len(choices)
    return None, 0


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def _project_ref(cfg: LabelStudioConfig, curate_dir: Path, named: str | None) -> tuple[str, Path | None]:
    """The project to pull from, and the push record it was read from (None: the user named it).

    The push record comes before the config's project: tasks go where push sent them, and a push
    with ``--project`` sends them elsewhere than the config says."""
    if named and named.strip():
        return named.strip(), None
    record_path = curate_dir / PUSH_RECORD
    record = read_json(record_path) if record_path.is_file() else {}
    if record.get("url") == cfg.url.rstrip("/") and record.get("project_id"):
        return str(record["project_id"]), record_path
    if cfg.project.strip():
        return cfg.project.strip(), None
    if record.get("project_id"):
        raise CuratuneError(f"no Label Studio project: {PUSH_RECORD} records project {record['project_id']} at "
                            f"{record.get('url')}, not at {cfg.url.rstrip('/')}; pass --project NAME_OR_ID",
                            file=str(record_path))
    raise CuratuneError("no Label Studio project: pass --project NAME_OR_ID or set [labelstudio] project")


def _check_same_project(curate_dir: Path, project: Project) -> None:
    """A pull replaces reviews.parquet: reviews pulled from another project would be lost without a word,
    and the next apply-reviews would undo their decisions."""
    path = curate_dir / REVIEWS
    if not path.is_file():
        return
    try:
        before = read_reviews(path)
    except CuratuneError:
        return  # a damaged file is what a pull replaces
    others = sorted({int(p) for p in before["project_id"].drop_nulls().to_list()} - {project.id})
    if others:
        raise CuratuneError(f"{REVIEWS} holds {before.height} reviews from Label Studio project "
                            f"{', '.join(map(str, others))}, not from project {project.id} ('{project.title}') that "
                            f"this pull reads: pull --project {others[0]} again, or move {REVIEWS} aside to take "
                            "this project's reviews instead", file=str(path))


def _row_dialogues(curate_dir: Path) -> dict[str, list[dict[str, str]]]:
    """row_id -> the turns push shows of the row, for every row of the run (those a review dropped too)."""
    out: dict[str, list[dict[str, str]]] = {}
    for name in (CURATED, EXCLUDED):
        if (curate_dir / name).is_file():
            # Lazy, so only the three columns a task shows are read, not the passthrough ones.
            table = scan_run_table(curate_dir / name, ("row_id", "text"))
            turns = pl.col("turns") if "turns" in table.collect_schema().names() else pl.lit(None).alias("turns")
            for row in table.select("row_id", "text", turns).collect().to_dicts():
                out.setdefault(str(row["row_id"]), _dialogue(row))
    return out


def _reviewed_sha(data: dict[str, Any], dialogue: list[dict[str, str]] | None) -> str:
    """What pull records as the hash of the text a review was made on. The text the task shows, not the
    hash push stored: either can be edited in Label Studio. A conversation project shows the turns instead:
    when they are not the row's, the hash is of the turns shown, which no row's text has, so the review
    counts as made on another text (as push judges such a task, _shows)."""
    if dialogue is not None and not _same_turns(data, dialogue):
        return text_sha256(json.dumps(data.get(DIALOGUE_KEY), sort_keys=True, default=str))
    return text_sha256(data.get(TEXT_KEY))


def _drafts(server: Server, pid: int) -> int:
    """Tasks with an unsubmitted draft (the export leaves them out until the draft is submitted):
    counted by the server's own filter, one request however many tasks there are."""
    query = json.dumps({"filters": {"conjunction": "and", "items": [
        {"filter": "filter:tasks:draft_exists", "operator": "equal", "type": "Boolean", "value": True}]}})
    page = server.call("count drafts", lambda: server.client.tasks.list(
        project=pid, query=query, fields="task_only", include="id", page_size=1))
    return int(getattr(page.response, "total", 0) or 0)


def pull(run_dir: str | Path, cfg: LabelStudioConfig, progress: Progress = None, *,
         project: str | None = None) -> dict[str, Any]:
    """Fetch the project's annotations into ``reviews.parquet`` (one row per annotation, by row_id).

    ``project`` (a title or id the user named) comes first, then the project the last push to this
    server recorded, then ``cfg.project``."""
    say = progress or (lambda _msg: None)
    _check_options(cfg)
    curate_dir = find_stage_dir(run_dir, "curate")
    ledger_path = curate_dir / LEDGER
    if not ledger_path.is_file():
        raise CuratuneError("no ledger in this curate dir (pull keeps the reviews of its rows): curate again",
                            file=str(ledger_path))
    ref, recorded = _project_ref(cfg, curate_dir, project)
    server = Server(cfg)
    server.check_token()
    project = find_project(server, ref, recorded)
    if project is None:
        raise CuratuneError(f"Label Studio at {server.url} has no project titled '{ref}'")
    _check_same_project(curate_dir, project)
    ledger = read_run_table(ledger_path)
    known = set(ledger["row_id"].to_list())
    labels = sorted({str(v) for c in ("original_label", "final_label") if c in ledger.columns
                     for v in ledger[c].drop_nulls().to_list()})
    xml = server.call(f"read project {project.id}", lambda: server.client.projects.get(project.id)).label_config
    # Without the choices push made (renamed, or made several-choice), every annotation would read as
    # empty and an empty reviews file would undo the decisions applied so far.
    check_label_config(xml or "", [], project.title, project.id)
    _report_extra_choices(xml or "", labels, project, say)
    say(f"labelstudio: exporting annotations of project '{project.title}' (id {project.id})")
    tasks = _export(server, project.id)
    dialogues = _row_dialogues(curate_dir) if project.to_name == DIALOGUE_KEY else {}
    records: list[dict[str, Any]] = []
    skipped = unknown = foreign = 0
    for task in tasks:
        data = task.get("data") or {}
        row_id = data.get("row_id")
        task_sha = _reviewed_sha(data, dialogues.get(str(row_id)))
        for ann in task.get("annotations") or []:
            decision, n_choices = _decision(ann.get("result"))
            if row_id is None:  # a task curatune did not create
                foreign += 1
                continue
            if ann.get("was_cancelled") or n_choices == 0:
                skipped += 1
                continue
            if str(row_id) not in known:
                unknown += 1
                continue
            who = ann.get("completed_by")
            who_id = who.get("id") if isinstance(who, dict) else who
            records.append({
                "row_id": str(row_id), "decision": decision,
                # The Label Studio user id, never the e-mail or name: reviewers are people too, and the
                # ledger and the audit report are read far more widely than the Label Studio project.
                # None for a deleted user (Label Studio nulls completed_by): one "user:None" would make
                # every deleted reviewer one person, whose latest annotation alone counts.
                "annotator": None if who_id is None else f"user:{who_id}", "annotator_id": who_id,
                "annotation_id": ann.get("id"), "task_id": task.get("id"),
                "ground_truth": bool(ann.get("ground_truth")),
                "created_at": _when(ann.get("created_at")), "updated_at": _when(ann.get("updated_at")),
                "project_id": project.id, "text_sha256": task_sha, "n_choices": n_choices,
            })
    reviews = pl.DataFrame(records, schema=REVIEW_SCHEMA).sort("row_id", "annotation_id")
    path = write_parquet(reviews, curate_dir / REVIEWS)
    if unknown:
        log.warning("%d annotations are on rows that are not in this run; left out", unknown)
    try:
        drafts = _drafts(server, project.id)
    except CuratuneError as exc:
        # Only a count for the message: the annotations are pulled and written, and a server that
        # cannot answer this filter should not turn a complete pull into a failed one.
        log.warning("could not count tasks with an unsubmitted draft (%s); drafts are pulled once submitted", exc)
        drafts = None
    say(f"labelstudio: {reviews.height} annotations on {reviews['row_id'].n_unique()} rows "
        f"({skipped} skipped or empty, {unknown} on rows not in this run"
        + (f", {foreign} on tasks curatune did not create" if foreign else "") + ")"
        + (f"; {drafts} tasks hold an unsubmitted draft, pulled once it is submitted" if drafts else ""))
    return {"reviews": reviews.height, "rows": reviews["row_id"].n_unique(), "path": str(path),
            "project_id": project.id, "skipped": skipped, "unknown_rows": unknown, "foreign": foreign,
            "drafts": drafts}

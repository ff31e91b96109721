"""Label Studio round trip: push rows for human review, pull the reviewers' decisions back.

push: curated rows (anonymised text only) become one task each in a Label Studio project, whose
labeling interface is a single choice among the dataset's labels plus "drop" and "unsure", over
the transcript (a conversation view when rows have turns). Every task carries the row's
``row_id`` in its data, the issue reasons in its meta, and two predictions: the current label
and the suggested one (model version ``<curate run id>:current`` / ``:suggested``; score = label
quality for the current label, 1 - quality for the suggestion). ``text_sha256`` in the data is the
hash of the text shown: pull records it with each review, so that a review of a text the row no
longer has is not applied (curate/reviews.py). Rows the leak scan still found personal data in are
not pushed.

pull: the project's annotations become ``reviews.parquet`` in the curate dir, one row per
annotation; curate/reviews.py resolves conflicts and applies the decisions.

Safe to re-run: a push lists the row_ids the project already holds and imports only the others,
so a second push, or one after a killed push, never duplicates a task; after a failed import it
re-lists before retrying, because the server may have stored the batch before the connection
broke. A push of a later run adds only new rows and replaces the predictions whose label,
suggestion or score (to 2 decimals) changed (delete then import, per chunk, which is itself safe
to repeat), and the text of tasks whose row's text changed; an unchanged prediction keeps the id
of the run that made it, because replacing one costs Label Studio ~30 ms a task. The SDK's own
retries are off: they would blindly re-send a non-idempotent request; creating the project and
importing tasks or predictions are retried only after listing what the server already holds
(_send_once).

The API token comes from ``$<token_env>`` or ``token_file`` and is only ever handed to the SDK;
messages, manifests and the push record never contain it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx
import polars as pl
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from curatune.config import LabelStudioConfig
from curatune.curate.label_issues import FLAG_COL, SUGGESTED_COL
from curatune.curate.reviews import DROP, REVIEW_SCHEMA, UNSURE, text_sha256
from curatune.dataset import LABEL_CONFLICT, REVIEW_REASONS
from curatune.errors import CuratuneError
from curatune.rundir import (
    CURATED,
    LEDGER,
    MANIFEST,
    REVIEWS,
    find_stage_dir,
    read_json,
    read_manifest,
    write_json,
    write_parquet,
)

log = logging.getLogger(__name__)

Progress = Callable[[str], None] | None

# Names inside the labeling interface; pull reads the decision from the Choices named CHOICES.
CHOICES = "label"
TEXT_KEY = "text"
# sha256 of the task's text, and, for annotations made before push replaced the text, the text each
# was made on (annotation id -> {text_sha256, updated_at}): pull records it with every review.
TEXT_SHA = "text_sha256"
ANNOTATED_SHA = "annotated_text_sha256"
DIALOGUE_KEY = "dialogue"
# What push last did, for provenance and so that pull finds the project without --project.
PUSH_RECORD = "labelstudio.json"
# The label_issues step's quality: its own column, else its generic per-step score; absent means "not known".
QUALITY_COLS = ("label_quality", "label_issues_score")
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
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            raise CuratuneError("Label Studio token file is empty", file=str(path))
        return _usable_token(value, "the token file", file=str(path))
    raise CuratuneError(f"no Label Studio API token: set the environment variable {cfg.token_env} "
                        "or [labelstudio] token_file (Account & Settings > Access Token in Label Studio)")


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
            self.client = LabelStudio(base_url=self.url, api_key=self._token, max_retries=0,
                                      timeout=cfg.timeout_s)
        except ApiError as exc:  # the SDK checks an expired JWT token here already
            raise self._error("use the API token", exc) from None

    def _clean(self, message: str) -> str:
        return message.replace(self._token, "***") if self._token else message

    def backoff(self, attempt: int) -> None:
        time.sleep(min(self.cfg.retry_backoff_s * 2 ** attempt, MAX_BACKOFF_S))

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
            except (httpx.UnsupportedProtocol, httpx.InvalidURL):
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
                log.info("Label Studio: %s failed (%s), retrying", what, failure)
                self.backoff(attempt)
        if not retry:
            raise failure
        raise self.unavailable(what, failure, attempts)

    def check_token(self) -> None:
        try:
            self.call("check the API token", self.client.users.whoami)
        except _NotFound:
            raise CuratuneError(f"{self.url} does not look like a Label Studio server "
                                "(it has no /api/current-user/whoami)") from None


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
    return (f'<View>\n  <Header value="Transcript"/>\n{obj}\n  <Header value="Correct label"/>\n'
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


def find_project(server: Server, ref: str) -> Project | None:
    """A project by id (must exist) or by exact title (None when there is none)."""
    client = server.client
    if ref.isdigit():
        try:
            p = server.call(f"read project {ref}", lambda: client.projects.get(int(ref)))
        except _NotFound:
            raise CuratuneError(f"Label Studio at {server.url} has no project with id {ref}") from None
        return Project(p.id, p.title or "", _to_name(p.label_config or ""))
    found = server.call("list projects", lambda: [p for p in client.projects.list(title=ref, page_size=100)
                                                  if p.title == ref])
    if len(found) > 1:
        ids = ", ".join(str(p.id) for p in found)
        raise CuratuneError(f"several Label Studio projects are titled '{ref}' (ids {ids}): pass --project ID")
    if not found:
        return None
    p = server.call(f"read project {found[0].id}", lambda: client.projects.get(found[0].id))
    return Project(p.id, p.title or "", _to_name(p.label_config or ""))


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


def check_publishable(manifest: dict[str, Any], cfg: LabelStudioConfig, curate_dir: Path) -> str:
    """Only anonymised text may leave the machine: refuse a run whose leak scan failed, or that
    was never anonymised. Returns the run id."""
    where = str(curate_dir / MANIFEST)
    failed_gate = any(g.get("name") == "leak_scan" and not g.get("passed") for g in manifest.get("gates") or [])
    anon = [s for s in manifest.get("steps") or [] if s.get("name") == "anonymise"]
    scans = [s.get("summary", {}).get("leak_scan") for s in anon]
    scans = [s for s in scans if isinstance(s, dict)]
    if failed_gate or any(not s.get("passed", True) for s in scans):
        remaining = sum(int(s.get("remaining", 0)) for s in scans)
        raise CuratuneError(f"refusing to push: this run's leak scan found personal data left after "
                            f"anonymisation ({remaining} remaining); fix anonymisation and curate again", file=where)
    if not anon and cfg.require_anonymised:
        raise CuratuneError("refusing to push: this run was not anonymised (no 'anonymise' step in its manifest); "
                            "add it to [curate] steps, or set [labelstudio] require_anonymised = false for data "
                            "without personal data", file=where)
    run_id = manifest.get("run_id")
    if not run_id:
        raise CuratuneError("curate manifest has no run_id; curate again", file=where)
    return str(run_id)


def review_rows(curate_dir: Path, cfg: LabelStudioConfig) -> tuple[pl.DataFrame, list[str]]:
    """The rows to push (row_id, text, turns, label, suggested, quality, reasons) and the label set."""
    curated = pl.read_parquet(curate_dir / CURATED)
    ledger = pl.read_parquet(curate_dir / LEDGER)
    quality_col = next((c for c in QUALITY_COLS if c in ledger.columns), None)
    info = ledger.select(
        "row_id", "reasons",
        (pl.col(FLAG_COL) if FLAG_COL in ledger.columns else pl.lit(None, dtype=pl.Boolean)).alias("flagged"),
        (pl.col(SUGGESTED_COL) if SUGGESTED_COL in ledger.columns else pl.lit(None, dtype=pl.String))
        .cast(pl.String).alias("suggested"),
        (pl.col(quality_col) if quality_col else pl.lit(None, dtype=pl.Float64)).cast(pl.Float64).alias("quality"),
        (pl.col(LEAKED_COL) if LEAKED_COL in ledger.columns else pl.lit(0)).fill_null(0).cast(pl.Int64)
        .alias(LEAKED_COL),
    )
    turns = pl.col("turns") if "turns" in curated.columns else pl.lit(None).alias("turns")
    rows = curated.select("row_id", "text", turns, pl.col("label").cast(pl.String)).join(info, on="row_id",
                                                                                         how="left")
    if cfg.only == "flagged":
        # Doubtful labels come from two steps: label_issues' flags, and dedup's copies with another label.
        conflict = pl.col("reasons").list.contains(LABEL_CONFLICT).fill_null(False)
        if FLAG_COL not in ledger.columns and not ledger.select(conflict.any()).item():
            raise CuratuneError("this run has no label-issue flags (the label_issues step did not run) and no "
                                "label conflicts from dedup: push with --only all or --only sample",
                                file=str(curate_dir / LEDGER))
        rows = rows.filter(pl.col("flagged").fill_null(False) | conflict)
    elif cfg.only == "sample" and rows.height > cfg.sample_size:
        rows = rows.sort("row_id").sample(n=cfg.sample_size, seed=cfg.sample_seed)
    rows = rows.sort("row_id")
    labels = set(curated["label"].drop_nulls().cast(pl.String).to_list())
    for col in ("original_label", "final_label", SUGGESTED_COL):
        if col in ledger.columns:
            labels |= set(ledger[col].drop_nulls().cast(pl.String).to_list())
    clash = labels & {DROP, UNSURE}
    if clash:
        raise CuratuneError(f"the dataset has a label named {sorted(clash)[0]!r}, which is also a review decision "
                            "in Label Studio; rename that label")
    return rows, sorted(labels)


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


def _task(row: dict[str, Any], run_id: str, to_name: str) -> dict[str, Any]:
    data: dict[str, Any] = {"row_id": row["row_id"], TEXT_KEY: row["text"], TEXT_SHA: text_sha256(row["text"])}
    if to_name == DIALOGUE_KEY:
        turns = row["turns"] or [{"speaker": "", "text": row["text"]}]
        data[DIALOGUE_KEY] = [{"speaker": t["speaker"] or "", "text": t["text"] or ""} for t in turns]
    return {"data": data, "meta": _meta(row), "predictions": _predictions(row, run_id, to_name)}


# --------------------------------------------------------------------------------------------
# push


def _existing_tasks(server: Server, pid: int) -> dict[str, list[dict[str, Any]]]:
    """row_id -> the project's tasks carrying it (id, meta, data), lowest id first."""
    client = server.client

    def fetch() -> list[Any]:
        return list(client.tasks.list(project=pid, fields="task_only", include="id,data,meta",
                                      page_size=PAGE_SIZE))

    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in server.call("list the project's tasks", fetch):
        row_id = (t.data or {}).get("row_id")
        if row_id is not None:
            out[str(row_id)].append({"id": t.id, "meta": t.meta or {}, "data": t.data or {}})
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
            server.backoff(attempt)
            rest = settle()
            if rest is None:
                return
            send = rest


def _import_batch(server: Server, pid: int, batch: list[dict[str, Any]]) -> None:
    client = server.client

    def settle() -> Callable[[], Any] | None:
        present = _existing_tasks(server, pid)
        rest = [t for t in batch if t["data"]["row_id"] not in present]
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
        created.append(server.client.projects.create(title=title, label_config=xml, description=description))

    # A second project of the same title would split the reviews between two projects.
    _send_once(server, "create a project", create, lambda: None if find_project(server, title) else create)
    if created:
        return Project(created[-1].id, title, _to_name(xml))
    found = find_project(server, title)
    if found is None:  # settle saw it a moment ago
        raise CuratuneError(f"Label Studio at {server.url}: project '{title}' disappeared while it was created")
    return found


def _annotation_time(value: Any) -> str:
    when = _when(value)
    return when.isoformat() if when else ""


def _review_key(result: Any, lead_time: Any) -> str:
    """What a reviewer changes when they review a task again: the choices, and the time spent on it
    (Label Studio adds to it on every submit). Marking an annotation ground truth, or any other edit
    through the API, moves ``updated_at`` but is no new look at the text."""
    choices = [sorted(map(str, (item.get("value") or {}).get("choices") or [])) for item in result or []
               if isinstance(item, dict) and item.get("from_name") == CHOICES]
    return json.dumps([choices, lead_time])


def _made_on(entry: dict[str, Any], result: Any, lead_time: Any, updated_at: Any) -> str | None:
    """The text hash an annotation was made on when it is unchanged since the text was replaced."""
    if "review" in entry:
        return entry.get(TEXT_SHA) if entry["review"] == _review_key(result, lead_time) else None
    # Entries written by earlier versions of push have only the time.
    return entry.get(TEXT_SHA) if entry.get("updated_at") == _annotation_time(updated_at) else None


def _update_text(server: Server, tid: int, data: dict[str, Any], new: dict[str, Any]) -> None:
    """Show the row's new text; the annotations made so far keep the hash of the text they were made on."""
    anns = server.call("list a task's annotations", lambda: server.client.annotations.list(tid))
    old_sha = text_sha256(data.get(TEXT_KEY))
    seen = dict(data.get(ANNOTATED_SHA) or {})
    for a in anns:
        when = a.updated_at or a.created_at
        # An entry from an earlier change stays only while its annotation is not reviewed again since.
        if _made_on(seen.get(str(a.id)) or {}, a.result, a.lead_time, when) is None:
            seen[str(a.id)] = {TEXT_SHA: old_sha, "updated_at": _annotation_time(when),
                               "review": _review_key(a.result, a.lead_time)}
    new_data = {**new, ANNOTATED_SHA: seen} if seen else new
    # An annotated task counts as done and the labelling queue would not serve it again: its new text
    # would go unreviewed unless someone looked for it. Marked not done, it comes back.
    extra = {"is_labeled": False} if anns else {}
    server.call("update a task's text", lambda: server.client.tasks.update(str(tid), data=new_data, **extra))


def _pred_key(mv: str | None, result: Any, score: Any) -> tuple[str, str, float | None]:
    """What a reviewer sees of a prediction: its kind (current / suggested), label and score."""
    try:
        choice = str(result[0]["value"]["choices"][0])
    except (TypeError, KeyError, IndexError):
        choice = ""
    kind = (mv or "").rsplit(":", 1)[-1]
    return (kind, choice, None if score is None else round(float(score), 2))


def _update_existing(server: Server, project: Project, rows: list[dict[str, Any]],
                     existing: dict[str, list[dict[str, Any]]], run_id: str,
                     say: Callable[[str], None]) -> tuple[int, int]:
    """Replace the text, predictions and meta that changed on tasks the project already holds; returns
    (tasks updated, tasks whose text was replaced)."""
    client = server.client
    pid = project.id
    preds = server.call("list predictions", lambda: client.predictions.list(project=pid))
    by_task: dict[int, list[Any]] = defaultdict(list)
    for p in preds:
        by_task[p.task].append(p)
    stale: list[tuple[int, list[int], bool, list[dict[str, Any]]]] = []
    metas: list[tuple[int, dict[str, Any]]] = []
    texts: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    for row in rows:
        task = existing[row["row_id"]][0]
        tid = task["id"]
        data = task["data"]
        wanted = _task(row, run_id, project.to_name)
        new_data, want = wanted["data"], wanted["predictions"]
        # The text the task shows, not the hash push recorded: a task edited in Label Studio is shown
        # the row's text again (and its dialogue, which the reviewer reads).
        if text_sha256(data.get(TEXT_KEY)) != new_data[TEXT_SHA] or \
                data.get(DIALOGUE_KEY, new_data.get(DIALOGUE_KEY)) != new_data.get(DIALOGUE_KEY):
            texts.append((tid, data, new_data))
        ours = [p for p in by_task.get(tid, []) if OUR_MODEL_VERSION.match(p.model_version or "")]
        have = sorted((_pred_key(p.model_version, p.result, p.score) for p in ours), key=str)
        if have != sorted((_pred_key(w["model_version"], w["result"], w.get("score")) for w in want), key=str):
            foreign = len(ours) < len(by_task.get(tid, []))
            stale.append((tid, [p.id for p in ours], foreign, want))
        if task["meta"] != wanted["meta"]:
            metas.append((tid, wanted["meta"]))
    size = server.cfg.batch_size
    for i, (tid, data, new) in enumerate(texts, start=1):
        _update_text(server, tid, data, new)
        if i % size == 0 or i == len(texts):
            say(f"labelstudio: replaced the text of {i}/{len(texts)} tasks whose row changed "
                "(their earlier annotations no longer apply; annotated ones are back in the labelling queue)")
    for start in range(0, len(stale), size):
        chunk = stale[start:start + size]
        _replace_predictions(server, pid, chunk)
        say(f"labelstudio: updated predictions on {start + len(chunk)}/{len(stale)} tasks")
    for i, (tid, meta) in enumerate(metas, start=1):
        server.call("update task meta", lambda t=tid, m=meta: client.tasks.update(str(t), meta=m))
        if i % size == 0 or i == len(metas):
            say(f"labelstudio: updated issue reasons on {i}/{len(metas)} tasks")
    return len({t for t, *_ in stale} | {t for t, _ in metas} | {t for t, *_ in texts}), len(texts)


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
    else:
        xml = server.call(f"read project {project.id}", lambda: server.client.projects.get(project.id)).label_config
        project.to_name = check_label_config(xml or "", labels, project.title, project.id)
        _report_extra_choices(xml or "", labels, project, say)
    if leaked:
        say(f"labelstudio: left out {leaked} rows the leak scan found personal data in ({LEAKED_COL} > 0 in "
            "the ledger)")
    rows = rows_df.to_dicts()
    say(f"labelstudio: {len(rows)} rows to review ({cfg.only}) -> project '{project.title}' (id {project.id})")
    existing = _existing_tasks(server, project.id)
    duplicates = sum(len(v) - 1 for v in existing.values())
    if duplicates:
        log.warning("project %s holds %d duplicate tasks (same row_id); only the first of each is updated",
                    project.id, duplicates)
    new = [_task(r, run_id, project.to_name) for r in rows if r["row_id"] not in existing]
    for start in range(0, len(new), cfg.batch_size):
        batch = new[start:start + cfg.batch_size]
        _import_batch(server, project.id, batch)
        say(f"labelstudio: imported {start + len(batch)}/{len(new)} new tasks")
    old = [r for r in rows if r["row_id"] in existing]
    updated, text_changed = _update_existing(server, project, old, existing, run_id, say) if old else (0, 0)
    result = {"project_id": project.id, "project": project.title, "created": len(new), "updated": updated,
              "text_changed": text_changed, "unchanged": len(old) - updated, "rows": len(rows),
              "left_out_leaked": leaked, "duplicates_in_project": duplicates}
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
        return json.loads(raw)
    except json.JSONDecodeError:
        raise CuratuneError(f"Label Studio at {server.url} sent an export that is not JSON") from None


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


def _project_ref(cfg: LabelStudioConfig, curate_dir: Path) -> str:
    if cfg.project.strip():
        return cfg.project.strip()
    record_path = curate_dir / PUSH_RECORD
    if record_path.is_file():
        record = read_json(record_path)
        if record.get("url") == cfg.url.rstrip("/") and record.get("project_id"):
            return str(record["project_id"])
    raise CuratuneError("no Label Studio project: pass --project NAME_OR_ID or set [labelstudio] project")


def pull(run_dir: str | Path, cfg: LabelStudioConfig, progress: Progress = None) -> dict[str, Any]:
    """Fetch the project's annotations into ``reviews.parquet`` (one row per annotation, by row_id)."""
    say = progress or (lambda _msg: None)
    _check_options(cfg)
    curate_dir = find_stage_dir(run_dir, "curate")
    ledger_path = curate_dir / LEDGER
    if not ledger_path.is_file():
        raise CuratuneError("no ledger in this curate dir (pull keeps the reviews of its rows): curate again",
                            file=str(ledger_path))
    ref = _project_ref(cfg, curate_dir)
    server = Server(cfg)
    server.check_token()
    project = find_project(server, ref)
    if project is None:
        raise CuratuneError(f"Label Studio at {server.url} has no project titled '{ref}'")
    ledger = pl.read_parquet(ledger_path)
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
    records: list[dict[str, Any]] = []
    skipped = unknown = 0
    for task in tasks:
        data = task.get("data") or {}
        row_id = data.get("row_id")
        # The text the task shows is the text reviewed (not the hash push recorded: the text can be
        # edited in Label Studio).
        task_sha = text_sha256(data.get(TEXT_KEY))
        earlier = data.get(ANNOTATED_SHA) or {}
        for ann in task.get("annotations") or []:
            decision, n_choices = _decision(ann.get("result"))
            if ann.get("was_cancelled") or n_choices == 0 or row_id is None:
                skipped += 1
                continue
            if str(row_id) not in known:
                unknown += 1
                continue
            made_on = _made_on(earlier.get(str(ann.get("id"))) or {}, ann.get("result"), ann.get("lead_time"),
                               ann.get("updated_at") or ann.get("created_at"))
            who = ann.get("completed_by")
            who_id = who.get("id") if isinstance(who, dict) else who
            records.append({
                "row_id": str(row_id), "decision": decision,
                # The Label Studio user id, never the e-mail or name: reviewers are people too, and the
                # ledger and the audit report are read far more widely than the Label Studio project.
                "annotator": f"user:{who_id}", "annotator_id": who_id,
                "annotation_id": ann.get("id"), "task_id": task.get("id"),
                "ground_truth": bool(ann.get("ground_truth")),
                "created_at": _when(ann.get("created_at")), "updated_at": _when(ann.get("updated_at")),
                "project_id": project.id, "text_sha256": made_on or task_sha, "n_choices": n_choices,
            })
    reviews = pl.DataFrame(records, schema=REVIEW_SCHEMA).sort("row_id", "annotation_id")
    path = write_parquet(reviews, curate_dir / REVIEWS)
    if unknown:
        log.warning("%d annotations are on rows that are not in this run; left out", unknown)
    say(f"labelstudio: {reviews.height} annotations on {reviews['row_id'].n_unique()} rows "
        f"({skipped} skipped or empty, {unknown} on rows not in this run)")
    return {"reviews": reviews.height, "rows": reviews["row_id"].n_unique(), "path": str(path),
            "project_id": project.id, "skipped": skipped, "unknown_rows": unknown}

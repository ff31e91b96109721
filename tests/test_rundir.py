"""Run-directory writes: atomic, and readable like any file the user's umask allows."""

from __future__ import annotations

import os
import time

import polars as pl
import pytest

from curatune.rundir import write_json, write_parquet, write_text
from tests.conftest import error_lines


def test_written_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    paths = [write_text("x", tmp_path / "a.html"), write_json({"a": 1}, tmp_path / "m.json"),
             write_parquet(pl.DataFrame({"a": [1]}), tmp_path / "t.parquet")]
    for p in paths:
        assert os.stat(p).st_mode & 0o777 == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "m.json", "t.parquet"]  # no temp files left


def test_undefined_statistics_are_written_as_null_so_strict_json_parsers_accept_the_file(tmp_path):
    import json

    import numpy as np

    path = write_json({"probe_retention": float("nan"), "gap": np.float64("inf"), "ok": np.float32(0.5),
                       "bins": [1.0, float("-inf")], "arr": np.array([np.nan, 2.0]), "n": np.int64(3)},
                      tmp_path / "metrics.json")
    text = path.read_text()

    def refuse(token: str):
        raise ValueError(token)

    assert json.loads(text, parse_constant=refuse) == {"probe_retention": None, "gap": None, "ok": 0.5,
                                                        "bins": [1.0, None], "arr": [None, 2.0], "n": 3}


def test_a_file_is_hashed_once_per_process_until_it_changes_even_when_its_mtime_is_put_back(tmp_path, monkeypatch):
    import hashlib

    from curatune import rundir

    reads: list[str] = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        reads.append(str(path))
        return real_open(path, *args, **kwargs)

    p = tmp_path / "model.bin"
    p.write_bytes(b"a" * 1000)
    monkeypatch.setattr(rundir, "_RACY_S", -1.0)  # the file was just written: cache it all the same
    monkeypatch.setattr(rundir, "open", counting_open, raising=False)
    first = rundir.sha256_file(p)
    assert first == hashlib.sha256(b"a" * 1000).hexdigest()
    assert rundir.sha256_file(p) == first and rundir.sha256_tree(tmp_path) == rundir.sha256_tree(tmp_path)
    assert reads == [str(p)]  # every later call answered from the cache

    # Same size, and mtime set back by hand (as cp -p or a careless tool would): ctime still moves
    # (once the clock has passed the file system's timestamp tick, which _RACY_S = -1 skipped).
    time.sleep(0.05)
    before = os.stat(p)
    p.write_bytes(b"b" * 1000)
    os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert rundir.sha256_file(p) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_a_file_changed_in_the_last_seconds_is_not_cached(tmp_path):
    import hashlib

    from curatune import rundir

    p = tmp_path / "curated.parquet"
    p.write_bytes(b"x" * 10)
    assert rundir.sha256_file(p) == hashlib.sha256(b"x" * 10).hexdigest()
    # Written just now: a rewrite in the same timestamp tick could leave every stat field alike.
    assert not [k for k in rundir._HASH_CACHE if k[0] == os.path.realpath(p)]


def test_the_hash_cache_keeps_at_most_its_bound_dropping_the_oldest_first(tmp_path, monkeypatch):
    import hashlib

    from curatune import rundir

    monkeypatch.setattr(rundir, "_RACY_S", -1.0)
    monkeypatch.setattr(rundir, "_HASH_CACHE", {})
    monkeypatch.setattr(rundir, "_HASH_CACHE_MAX", 3)
    paths = []
    for i in range(5):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * 10)
        paths.append(os.path.realpath(p))
        assert rundir.sha256_file(p) == hashlib.sha256(bytes([i]) * 10).hexdigest()
    assert [k[0] for k in rundir._HASH_CACHE] == paths[2:]


@pytest.mark.parametrize(("command", "theirs"), [("train", "curate"), ("curate", "train"), ("evaluate", "train")])
def test_a_stage_refuses_an_out_folder_that_holds_another_stage_s_outputs(tmp_path, cli_run, command, theirs):
    """`train RUN/curate --out RUN/curate` deleted the curate manifest before training started: the run's
    curation was gone (evaluate and apply-reviews then found no curate stage)."""
    from curatune.rundir import read_manifest

    run = tmp_path / "run"
    for stage in ("curate", "train"):
        write_json({"stage": stage, "status": "complete"}, run / stage / "manifest.json")
    data = tmp_path / "data.csv"
    data.write_text("text,label\nwhere is my card,card\nrefund please,refund\n")
    target = run / theirs
    args = {"train": ("train", run / "curate", "--out", target),
            "curate": ("curate", data, "--out", target),
            "evaluate": ("evaluate", run, "--out", target)}[command]
    code, out = cli_run(*args)
    assert code == 2, out
    assert error_lines(out) == [f"error: {target}: this folder holds the {theirs} stage's outputs (its manifest.json): "
                                f"choose another --out for {command}"]
    assert read_manifest(target) == {"stage": theirs, "status": "complete"}
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json"]


def test_a_manifest_is_sealed_so_a_later_edit_to_it_or_to_the_files_it_names_is_found(tmp_path):
    import json

    import numpy as np

    from curatune.rundir import Manifest, edited_files

    write_json({"accuracy": 0.9}, tmp_path / "metrics.json")
    m = Manifest(stage="evaluate", config={"evaluate": {"ratio": np.float32(0.25), "pair": (1, 2)}})
    # Values JSON writes differently from how it reads them back (numpy scalars, tuples, int keys).
    m.counts = {"rows": np.int64(12), "by_class": {3: 1, 10: 2}}
    m.written = ["metrics.json", "not_written.json"]
    m.write(tmp_path)
    doc = json.loads((tmp_path / "manifest.json").read_text())
    assert set(doc["written_sha256"]) == {"metrics.json"}  # a named file that is not there is not sealed
    assert edited_files(tmp_path) == []

    write_json({"accuracy": 0.99}, tmp_path / "metrics.json")
    assert edited_files(tmp_path) == ["metrics.json"]
    write_json({"accuracy": 0.9}, tmp_path / "metrics.json")  # put back byte for byte
    assert edited_files(tmp_path) == []

    doc["counts"]["rows"] = 13
    (tmp_path / "manifest.json").write_text(json.dumps(doc, indent=2))
    assert edited_files(tmp_path) == ["manifest.json"]
    # A manifest without a seal (by hand, or from before seals) says nothing either way.
    del doc["content_sha256"]
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    write_json({"accuracy": 0.5}, tmp_path / "metrics.json")
    assert edited_files(tmp_path) == []
    assert edited_files(tmp_path / "nowhere") == []

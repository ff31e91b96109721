"""Run-directory writes: atomic, and readable like any file the user's umask allows."""

from __future__ import annotations

import os

import polars as pl

from curatune.rundir import write_json, write_parquet, write_text


def test_written_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    paths = [write_text("x", tmp_path / "a.html"), write_json({"a": 1}, tmp_path / "m.json"),
             write_parquet(pl.DataFrame({"a": [1]}), tmp_path / "t.parquet")]
    for p in paths:
        assert os.stat(p).st_mode & 0o777 == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "m.json", "t.parquet"]  # no temp files left

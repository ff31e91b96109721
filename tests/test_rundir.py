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

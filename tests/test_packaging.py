"""What the installed distribution says about itself."""

from __future__ import annotations

from importlib.metadata import metadata


def test_licence_is_declared_as_an_spdx_expression():
    # setuptools deprecates the table form (license = {text = ...}) and stops building it after 2027-02-18.
    assert metadata("curatune").get("License-Expression") == "Apache-2.0"

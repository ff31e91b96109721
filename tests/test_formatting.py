from __future__ import annotations

import pytest

from curatune.formatting import signed


@pytest.mark.parametrize(("value", "digits", "text"), [
    (-2.78e-18, 4, "+0.0000"), (-0.00004, 4, "+0.0000"), (-0.00005001, 4, "-0.0001"), (0.045, 3, "+0.045"),
    (-0.0399, 3, "-0.040"),
])
def test_signed_rounds_before_it_takes_the_sign(value, digits, text):
    assert signed(value, digits) == text

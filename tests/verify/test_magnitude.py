"""The guard that keeps astronomically large integer powers away from sympy."""

import pytest

from curate.verify.magnitude import too_large

ISSUE_65 = "\\dfrac{5^{\\left(5^{\\left(5^{\\left(5^5\\right)}\\right)} - 4\\right)} - 5}{16}"


@pytest.mark.parametrize(
    "text",
    [ISSUE_65, "3^{3^{3^3}}", "9^{9^9}", "2^{10^{9}}", "10^123456789", "2^{\\frac{10^{9}}{2}}"],
)
def test_towers_sympy_cannot_compute_are_refused(text):
    assert too_large(text)


@pytest.mark.parametrize(
    "text",
    [
        "2^{2^{2^2}}",  # 65536
        "5^{5^9}",  # about 1.4 million digits: sympy computes it in well under a second
        "10^{100}",
        "x^{10^{10}}",  # symbolic base: never expanded
        "2^{n^{100}}",  # symbolic exponent
        "1^{10^{100}}",
        "(-8)^{1/3}",
        "e^{-x^2}",
        "2^{-10^{9}}",
        "",
        "^",
        "2^",
        "2^{(3}",
    ],
)
def test_ordinary_powers_pass(text):
    assert not too_large(text)

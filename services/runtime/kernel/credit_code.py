"""The unified social credit code of a Chinese organisation (GB 32100-2015)."""

from __future__ import annotations

# The code's alphabet: digits and capitals without I, O, S, V and Z.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
LENGTH = 18
_WEIGHTS = tuple(pow(3, position, 31) for position in range(LENGTH - 1))


def check_character(first_seventeen: str) -> str:
    """The 18th character the standard derives from the first 17."""
    total = sum(
        ALPHABET.index(char) * weight
        for char, weight in zip(first_seventeen, _WEIGHTS, strict=True)
    )
    return ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Why ``code`` is not a valid unified social credit code, or None when it is."""
    if len(code) != LENGTH:
        return f"must be {LENGTH} characters, got {len(code)}"
    wrong = sorted({char for char in code if char not in ALPHABET})
    if wrong:
        return f"contains characters outside the GB 32100-2015 alphabet: {''.join(wrong)}"
    expected = check_character(code[:-1])
    if code[-1] != expected:
        return f"check character is {code[-1]}, expected {expected}"
    return None

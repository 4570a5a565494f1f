"""Unified social credit codes (GB 32100-2015) and exporter registration validation."""

from __future__ import annotations

import random

import pytest

from booth.domain import ExporterProfile, validate_profile
from runtime.kernel.credit_code import (
    ALPHABET,
    LENGTH,
    check_character,
    credit_code_problem,
)
from runtime.kernel.errors import InvalidArgument
from runtime.kernel.validation import Validator

# Published codes of real companies (the last is Huawei Technologies Co., Ltd.).
REAL_CODES = (
    "91350100M000100Y43",
    "9144030071526726XG",
    "91110000600037341L",
    "914403001922038216",
)
VALID = REAL_CODES[1]


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_published_codes_are_valid(code: str) -> None:
    assert credit_code_problem(code) is None
    assert check_character(code[:-1]) == code[-1]


def test_a_wrong_check_character_is_named_with_the_expected_one() -> None:
    problem = credit_code_problem(VALID[:-1] + "Y")
    assert problem == "check character is Y, expected G"


@pytest.mark.parametrize("code", [VALID[:-1], VALID + "0", ""])
def test_a_wrong_length_is_rejected(code: str) -> None:
    assert credit_code_problem(code) == f"must be {LENGTH} characters, got {len(code)}"


def test_lowercase_letters_are_rejected() -> None:
    problem = credit_code_problem(VALID.lower())
    assert problem is not None
    assert "alphabet" in problem
    assert problem.endswith(": gx")


@pytest.mark.parametrize("letter", "IOSVZ")
def test_letters_outside_the_alphabet_are_rejected(letter: str) -> None:
    code = VALID[:8] + letter + VALID[9:]
    problem = credit_code_problem(code)
    assert problem is not None
    assert problem.endswith(f"alphabet: {letter}")


def test_check_character_agrees_with_credit_code_problem_over_random_bodies() -> None:
    rng = random.Random(20150901)
    for _ in range(500):
        body = "".join(rng.choice(ALPHABET) for _ in range(LENGTH - 1))
        check = check_character(body)
        assert check in ALPHABET
        assert credit_code_problem(body + check) is None
        wrong = rng.choice(ALPHABET.replace(check, ""))
        assert credit_code_problem(body + wrong) == f"check character is {wrong}, expected {check}"


def test_every_single_substitution_and_adjacent_swap_is_detected() -> None:
    rng = random.Random(7)
    for _ in range(300):
        body = "".join(rng.choice(ALPHABET) for _ in range(LENGTH - 1))
        code = body + check_character(body)
        i = rng.randrange(LENGTH - 1)
        substituted = code[:i] + rng.choice(ALPHABET.replace(code[i], "")) + code[i + 1 :]
        assert credit_code_problem(substituted) is not None
        if code[i] != code[i + 1] and i + 1 < LENGTH - 1:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert credit_code_problem(swapped) is not None


# Registration: booth.domain normalises the code and the profile into one Validator, the
# way RegisterExporter does (new_exporter was replaced by these two).


def test_registration_normalises_case_and_whitespace() -> None:
    check = Validator()
    code = check.credit_code(f"  {VALID.lower()}\t")
    profile = validate_profile(
        ExporterProfile(name="  Xuchang Hair Goods  ", district=" Jian'an ", industry=" wigs "),
        check,
    )
    check.raise_if_invalid()
    assert code == VALID
    assert (profile.name, profile.district, profile.industry) == (
        "Xuchang Hair Goods",
        "Jian'an",
        "wigs",
    )


def test_registration_reports_every_wrong_field_at_once() -> None:
    check = Validator()
    check.credit_code(VALID[:-1] + "Y")
    validate_profile(ExporterProfile(name="   "), check)
    with pytest.raises(InvalidArgument) as raised:
        check.raise_if_invalid()
    by_field = {v.field: v.description for v in raised.value.violations}
    assert set(by_field) == {"credit_code", "profile.name"}
    assert by_field["credit_code"] == "check character is Y, expected G"
    assert by_field["profile.name"] == "is required"

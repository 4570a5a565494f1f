"""Valid unified social credit codes for tests."""

from __future__ import annotations

import random

from runtime.kernel.credit_code import ALPHABET, check_character


def random_credit_code(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    # 9 = registered with the market regulator, 1 = enterprise, 411000 = Xuchang.
    body = "91411000" + "".join(rng.choice(ALPHABET) for _ in range(9))
    return body + check_character(body)

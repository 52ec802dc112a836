"""workers.payout's clock rule: a challenge period is over by the later of the chain's time and the local clock."""
from __future__ import annotations

import re

from workers.payout import moment_text, period_left_ms


def test_period_left_by_the_later_clock():
    assert period_left_ms(10_000, chain_now_ms=4_000, local_now_ms=7_000) == 3_000
    # an idle instant-seal chain: Now is the last block's time, the wall clock moved on
    assert period_left_ms(10_000, chain_now_ms=4_000, local_now_ms=12_000) == 0
    # a local clock behind the chain's: the chain's time counts
    assert period_left_ms(10_000, chain_now_ms=9_500, local_now_ms=1_000) == 500
    assert period_left_ms(10_000, chain_now_ms=10_000, local_now_ms=0) == 0


def test_moment_text():
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} \S+", moment_text(1_700_000_000_123))
    assert moment_text(1_700_000_000_123).split(" ")[0].endswith(".123")

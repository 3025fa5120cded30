"""One short line per claim for the verdict table: the decisive test with its interval and n,
then the reason. The full evidence goes in the claim's detail, a click away."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_HEADLINE = 300


def decisive_test(claim: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The test a verdict turns on: of those the reason names, the nearest to deciding
    (smallest p); else the held test with the largest Holm-adjusted p (the weakest the
    verdict rests on); else, when none holds, the test nearest to deciding (smallest p). None
    when the claim has no tests."""
    tests = list(claim.get("tests") or [])
    if not tests:
        return None
    reason = str(claim.get("reason") or "")
    named = [test for test in tests if str(test["name"]) in reason]
    if named:
        return min(named, key=lambda test: test["p_value"])
    held = [test for test in tests if test.get("holds")]
    if held:
        return max(held, key=lambda test: test.get("p_holm", test["p_value"]))
    return min(tests, key=lambda test: test["p_value"])


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def claim_headline(claim: Mapping[str, Any]) -> str:
    """"<test>: <effect> [<low>, <high>] against <bound>, n = <n>. <Reason>." in at most
    `MAX_HEADLINE` characters; without tests, the reason (or the evidence) alone."""
    reason = str(claim.get("reason") or "").strip()
    if reason[1:2].islower():  # "every change ..." reads as a sentence, "mIoU ..." stays
        reason = reason[:1].upper() + reason[1:]
    test = decisive_test(claim)
    if test is None:
        return _shorten(reason or str(claim.get("evidence") or ""), MAX_HEADLINE)
    effect = (f"{test['name']}: {test['effect']:.3f} [{test['ci_low']:.3f}, "
              f"{test['ci_high']:.3f}] against {test['bound']:.3g}, n = {test['n']}.")
    return _shorten(f"{effect} {reason}." if reason else effect, MAX_HEADLINE)

"""How far a reproduced number may lie from the reference and still count as the same result.

Float results differ in their last bits between CPUs (AVX2, AVX-512, Arm), kernel paths
(``ATEN_CPU_CAPABILITY``) and thread counts, and `mini` amplifies that rounding: a pixel whose
probability sits at the threshold flips, a bootstrap bound moves by one in its third decimal.
Each quantity of a results file is therefore compared within the tolerance of the first rule
whose pattern matches its path (``02_distorted_images/rows[3]/change/ci_low``), never by its
digits. A tolerance is declared per kind of quantity, from the largest difference measured
between kernel paths (`Tolerance.measured`, see README "How the tests check a result") with
headroom, and always below the effect a real change makes: every IoU scaled by 0.97 moves a
mean IoU of 0.5 by 0.015, beyond every IoU tolerance here.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """``|ours - theirs| <= absolute + relative * |theirs|`` for the paths matching `pattern`
    (fnmatch, ``*`` crosses ``/``); `measured` is the largest difference seen across kernel
    paths and thread counts for this kind of quantity, `why` what the tolerance is for."""

    pattern: str
    absolute: float
    relative: float = 0.0
    measured: float = 0.0
    why: str = ""

    def allows(self, ours: float, theirs: float) -> bool:
        """Whether `ours` reproduces `theirs` within this tolerance."""
        return abs(ours - theirs) <= self.absolute + self.relative * abs(theirs)

    def describe(self) -> str:
        """``±0.01`` or ``±0.01 + 1e-06 rel``, as printed in `verify`'s table."""
        if self.absolute == 0 and self.relative == 0:
            return "exact"
        text = f"±{self.absolute:g}" if self.absolute else ""
        if self.relative:
            text += f"{' + ' if text else '±'}{self.relative:g} rel"
        return text


EXACT = Tolerance("*", 0.0, why="counts, sizes, flags and seeds do not depend on rounding")

TOLERANCES: tuple[Tolerance, ...] = (
    Tolerance("*/work/gflop*", 0.0, 1e-9, why="backbone work: a count of encodings times a "
              "fixed cost per encoding, exact up to float summation"),
    Tolerance("*/best_threshold/*", 0.1, why="the best of a grid of thresholds 0.1 apart: a "
              "near-tie between two neighbours may fall either way on another CPU"),
    Tolerance("*", 0.01, measured=0.00072, why="IoUs, probabilities, intervals, rates and "
              "losses: a pixel at the threshold flips, a bootstrap bound moves"),
)
"""The declared tolerances for floats, first match wins; integers, strings and booleans are
compared exactly (`EXACT`)."""


NOT_COMPARED: dict[str, str] = {
    "*/seconds": "how long something took depends on the machine and its load",
    "*/provenance/*": "what computed a number (machine, versions) is shown, not compared",
    "*/root": "where a dataset lies",
    "*/fingerprint": "a hash of a dataset's files and location, to resume an evaluation",
    "*/run_id": "which run wrote a results file: a fresh id every run",
}
"""Paths that are not results, with the reason; `verify` skips them."""


def is_compared(path: str) -> bool:
    """Whether the quantity at `path` is a result (`NOT_COMPARED` lists what is not)."""
    return not any(fnmatch.fnmatchcase(path, pattern) for pattern in NOT_COMPARED)


def tolerance_for(path: str, value: object) -> Tolerance:
    """The tolerance that applies to the quantity at `path` whose reference value is `value`."""
    if isinstance(value, bool) or not isinstance(value, float):
        return EXACT
    for tolerance in TOLERANCES:
        if fnmatch.fnmatchcase(path, tolerance.pattern):
            return tolerance
    return EXACT

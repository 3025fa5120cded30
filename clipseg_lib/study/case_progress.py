"""Cases done, told to the study runner while a notebook computes.

``for query in study.progress(queries):`` yields the items unchanged. Under the runner (which
sets `PROGRESS_VARIABLE` for the kernel) each item done writes one `PROGRESS_MARK` line on
stderr; the runner's client takes those lines out of the notebook's outputs and advances the
notebook's progress bar on the console (cases done, estimated time left). Elsewhere (Jupyter,
nbval) nothing is written, so executed notebooks and golden outputs never hold progress text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

PROGRESS_VARIABLE = "CLIPSEG_PROGRESS"
PROGRESS_MARK = "clipseg-progress, cases done: "
"""Starts a progress line (a line of its own on stderr, followed by the count)."""


def progress(items: Iterable[Item]) -> Iterator[Item]:
    """`items`, reporting each one done to the study runner when running under it."""
    report = bool(os.environ.get(PROGRESS_VARIABLE))
    for item in items:
        yield item
        if report:
            sys.stderr.write(f"{PROGRESS_MARK}1\n")
            sys.stderr.flush()


def progress_lines(text: str) -> tuple[int, str]:
    """(cases done that `text`, a stderr stream's text, reports; the text without them)."""
    done, kept = 0, []
    for line in text.split("\n"):
        count = line.removeprefix(PROGRESS_MARK)
        if count != line and count.isdigit():
            done += int(count)
        else:
            kept.append(line)
    return done, "\n".join(kept)

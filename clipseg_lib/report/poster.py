"""The poster's own numbers, shown beside ours in the report.

Its only table: IoU between the segmentation from extract layers (3, 7, 9) and from each other
triple, for four prompts (no sample size or interval was given; one image per prompt).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from clipseg_lib.report.html import rows_table

POSTER_EXTRACT_LAYER_COLUMNS = ("Prompt 1", "Prompt 2", "Prompt 3", "Prompt 4")
#: As printed on the poster (text, so that 0.00031 is not rounded away).
POSTER_EXTRACT_LAYER_IOU = {
    (3, 5, 8): ("0.51", "0.97", "0.719", "0.676"),
    (2, 4, 7): ("0.0", "0.0", "0.0", "0.767"),
    (4, 5, 6): ("0.0", "0.0", "0.0", "0.671"),
    (3, 6, 9): ("0.88", "0.94", "0.797", "0.967"),
    (5, 7, 8): ("0.56", "0.87", "0.00031", "0.437"),
}
EXTRACT_LAYERS_KEY = "extract_layers"


def layer_triple(value: Any) -> tuple[int, ...] | None:
    """``(3,5,8)``, ``"3,5,8"``, ``[3, 5, 8]`` -> (3, 5, 8); None when it holds no integers."""
    numbers = re.findall(r"-?\d+", str(value))
    return tuple(int(number) for number in numbers) or None


def poster_extract_layer_rows() -> list[dict[str, Any]]:
    """The poster's table as rows ``{"extract_layers", "Prompt 1", ...}``, in its order."""
    return [
        {EXTRACT_LAYERS_KEY: "(" + ",".join(map(str, layers)) + ")",
         **dict(zip(POSTER_EXTRACT_LAYER_COLUMNS, values, strict=True))}
        for layers, values in POSTER_EXTRACT_LAYER_IOU.items()
    ]


def poster_table_for(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The poster's table as HTML when ``rows`` is an extract-layer table of the poster's
    triples (so the two can be read side by side), else None."""
    ours = {layer_triple(row.get(EXTRACT_LAYERS_KEY)) for row in rows}
    if not ours & POSTER_EXTRACT_LAYER_IOU.keys():
        return None
    return rows_table(poster_extract_layer_rows()) + (
        "<p><small>IoU with the segmentation from layers (3,7,9), one image per prompt; "
        "the poster gives no sample size or interval.</small></p>"
    )

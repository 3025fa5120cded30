"""Before the notebooks start: resolve the model and load it once (fail fast)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from clipseg_lib.study.parameters import StudyConfigError

if TYPE_CHECKING:
    from clipseg_lib.model.segmenter import Segmenter


def resolve_model(model: str) -> str:
    """``model`` with "auto" replaced by what the loader picks (the cached CIDAS model or mini)."""
    if model != "auto":
        return model
    from clipseg_lib.model.loading import resolve_model_source

    return resolve_model_source("auto")


def load_source(
    model: str, *, dtype: str | None, device: str | None, options: Mapping[str, str]
) -> str:
    """Python source that loads ``model`` as the notebooks will (for a start-up timing)."""
    arguments = {"dtype": dtype, "device": device or "cpu", **options}
    listed = "".join(f", {name}={value!r}" for name, value in arguments.items())
    return f"from clipseg_lib import load_segmenter; load_segmenter({model!r}{listed})"


def check_model_loads(
    model: str,
    *,
    requested: str,
    dtype: str | None,
    options: Mapping[str, str],
    device: str | None = None,
) -> Segmenter:
    """Load ``model`` once as the notebooks will (``dtype``, ``device``, ``options`` such as
    ``clip_weights``) and return it; StudyConfigError with the loader's first line if it
    cannot be loaded."""
    from clipseg_lib.model.loading import load_segmenter

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            placed = {"device": device} if device is not None else {}
            segmenter = load_segmenter(model, dtype=dtype, **placed, **options)
    # The loader's errors are many (missing files, bad configs, unsafe checkpoints); each one
    # must reach the user as one line before eleven notebooks fail on it one by one.
    except Exception as error:  # noqa: BLE001
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        chosen = f" (--model {requested} chose {model})" if requested != model else ""
        advice = ""
        if requested == "auto":
            from_hub = (
                "" if Path(model).exists() else f"complete the cache (hf download {model}) or "
            )
            advice = (
                f"; {from_hub}pass --model mini (bundled) or --model DIR (a complete "
                "save_pretrained directory)"
            )
        raise StudyConfigError(
            f"model {model}{chosen} cannot be loaded: {type(error).__name__}: "
            f"{lines[0] if lines else ''}{advice}"
        ) from error
    return segmenter

"""Before the notebooks start: resolve the model and load it once (fail fast)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

from clipseg_lib.study.parameters import StudyConfigError


def resolve_model(model: str) -> str:
    """``model`` with "auto" replaced by what the loader picks (the cached CIDAS model or mini)."""
    if model != "auto":
        return model
    from clipseg_lib.model.loading import resolve_model_source

    return resolve_model_source("auto")


def check_model_loads(
    model: str, *, requested: str, dtype: str | None, options: Mapping[str, str]
) -> float:
    """Load ``model`` once as the notebooks will (``dtype``, ``options`` such as
    ``clip_weights``) and return its GFLOP per image encoding; StudyConfigError with the
    loader's first line if it cannot be loaded."""
    from clipseg_lib.experiments.budget import image_gflop
    from clipseg_lib.model.loading import load_segmenter

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            segmenter = load_segmenter(model, dtype=dtype, **options)
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
    return image_gflop(segmenter)

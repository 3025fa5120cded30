"""Before the notebooks start: load the model once (fail fast) and warn about slow bf16."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

from clipseg_lib.study.parameters import StudyConfigError

CPUINFO = Path("/proc/cpuinfo")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 flags of CPUs that compute bfloat16 natively; without them torch emulates it (slower)."""


def resolve_model(model: str) -> str:
    """``model`` with "auto" replaced by what the loader picks (the cached CIDAS model or mini)."""
    if model != "auto":
        return model
    from clipseg_lib.model.loading import resolve_model_source

    return resolve_model_source("auto")


def check_model_loads(
    model: str, *, requested: str, dtype: str | None, options: Mapping[str, str]
) -> None:
    """Load ``model`` once as the notebooks will (``dtype``, ``options`` such as
    ``clip_weights``); StudyConfigError with the loader's first line if it cannot be loaded."""
    from clipseg_lib.model.loading import load_segmenter

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_segmenter(model, dtype=dtype, **options)
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


def cpu_lacks_bf16_units(cpuinfo: Path = CPUINFO) -> bool | None:
    """True when the CPU's flags show no native bfloat16 (see `BF16_CPU_FLAGS`), None when the
    flags cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = {
        flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()
    }
    return not any(flag in flags for flag in BF16_CPU_FLAGS)


def bf16_warning(dtype: str | None, device: str = "cpu") -> str | None:
    """A warning line when ``dtype`` is bfloat16 on a CPU without bf16 units, else None."""
    if dtype != "bfloat16" or device != "cpu":
        return None
    lacks = cpu_lacks_bf16_units()
    if lacks is None:
        return (
            "warning: could not read the CPU's flags; bfloat16 is slower than float32 on CPUs "
            "without avx512_bf16 or amx_bf16 units"
        )
    if lacks:
        return (
            "warning: this CPU has no avx512_bf16 or amx_bf16 units: bfloat16 is emulated and "
            "will be slower than float32"
        )
    return None

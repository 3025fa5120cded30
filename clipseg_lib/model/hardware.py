"""Whether this CPU computes bfloat16 natively, so `dtype="bfloat16"` is the fast path.

bfloat16 halves the bytes moved, but its matmuls are faster than float32 only on CPUs with
bf16 dot-product units: x86 AVX512_BF16 (Intel Cooper Lake and later, AMD Zen 4 and later) or
AMX-BF16 (Intel Sapphire Rapids and later), aarch64 BF16 (Armv8.6). Elsewhere torch converts
every operand and bf16 runs several times slower than float32 (0.13x was measured on an AVX2
machine).
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

#: Capability names (as torch.cpu.get_capabilities and /proc/cpuinfo spell them) of bf16 units.
BF16_UNITS = ("avx512_bf16", "amx_bf16", "bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_features() -> set[str]:
    """The CPU's feature names: torch's own detection joined with /proc/cpuinfo's flags
    (x86 "flags", aarch64 "Features"); empty where neither is available."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    features = set()
    if capabilities is not None:
        features = {name for name, present in capabilities().items() if present is True}
    try:
        text = CPUINFO.read_text()
    except OSError:
        return features
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return features | set(value.split())
    return features


def bf16_units() -> list[str]:
    """The bf16 units this CPU has (empty: bfloat16 is emulated, slower than float32)."""
    features = cpu_features()
    return [unit for unit in BF16_UNITS if unit in features]


def bf16_warning(device: str = "cpu") -> str | None:
    """A one-line warning when `dtype="bfloat16"` on `device` would be slower than float32,
    else None (GPUs and CPUs with bf16 units)."""
    if torch.device(device).type != "cpu" or bf16_units():
        return None
    return (
        f"this CPU ({platform.processor() or platform.machine()}) has no bf16 units "
        "(avx512_bf16, amx_bf16): bfloat16 is emulated here and runs slower than float32"
    )


#: Instruction-set features that select which kernels torch, MKL and oneDNN run (x86 and Arm).
KERNEL_FEATURES = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
    "asimd", "neon", "sve", "sve2", "bf16",
)


def cpu_model() -> str:
    """The CPU's model name (x86 "model name", Arm "Model"/"CPU part"), else the platform's
    processor or machine name."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def machine_record() -> dict[str, object]:
    """What on this machine decides a result's last digits: the CPU model, its kernel-selecting
    instruction-set features, the kernel path torch chose (``ATEN_CPU_CAPABILITY`` lowers it)
    and torch's thread count."""
    features = cpu_features()
    return {
        "cpu": cpu_model(),
        "cpu_flags": [flag for flag in KERNEL_FEATURES if flag in features],
        "kernel_path": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


DEVICES = ("cpu", "cuda", "mps")
"""The device types the study computes on (``cuda:1`` names the second GPU)."""


def device_problem(device: str) -> str | None:
    """Why torch here cannot compute on `device` (``cpu``, ``cuda``, ``cuda:N``, ``mps``), as
    one line naming it, or None when it can."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in DEVICES:
        return f"device {device!r} is not one of {', '.join(DEVICES)} (cuda:N for the N-th GPU)"
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            built = "" if torch.version.cuda else f" (this torch {torch.__version__} has no CUDA)"
            return f"device {device!r}: torch sees no CUDA GPU{built}"
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            return f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s)"
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        return f"device {device!r}: torch sees no Apple MPS device"
    return None

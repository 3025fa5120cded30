"""bf16_warning: said exactly when bfloat16 would be emulated on this CPU."""

from __future__ import annotations

import pytest

from clipseg_lib.model import hardware


@pytest.mark.parametrize(
    ("features", "units"),
    [(set(), []), ({"avx2", "fma"}, []), ({"avx2", "avx512_bf16"}, ["avx512_bf16"]),
     ({"amx_bf16", "avx512_bf16"}, ["avx512_bf16", "amx_bf16"]), ({"asimd", "bf16"}, ["bf16"])],
)
def test_bf16_units_and_warning(monkeypatch, features, units):
    monkeypatch.setattr(hardware, "cpu_features", lambda: features)
    assert hardware.bf16_units() == units
    warning = hardware.bf16_warning()
    assert (warning is None) == bool(units)
    if warning:
        assert "no bf16 units" in warning and "slower than float32" in warning
    assert hardware.bf16_warning("cuda") is None


def test_cpuinfo_flags_are_read(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
    monkeypatch.setattr(hardware.torch.cpu, "get_capabilities", lambda: {"sse2": True})
    assert hardware.cpu_features() == {"sse2", "fpu", "avx2", "avx512_bf16"}
    cpuinfo.unlink()
    assert hardware.cpu_features() == {"sse2"}

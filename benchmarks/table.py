"""The Markdown table of benchmark results, each figure beside its goal."""

from __future__ import annotations


def _row(what: str, figure: str, goal: str, met: bool | None) -> str:
    verdict = "" if met is None else ("met" if met else "missed")
    return f"| {what} | {figure} | {goal} | {verdict} |"


def _study_figure(run: dict) -> str:
    failed = "" if run["returncode"] == 0 else f" (FAILED, exit status {run['returncode']})"
    return f"{run['seconds']:.0f} s{failed}"


def markdown(results: dict) -> str:
    """Render `benchmarks/run.py`'s results as a Markdown table with goals."""
    machine = results["machine"]
    lines = [
        f"Machine: {machine['processor']}, {machine['cores']} threads, torch {machine['torch']}, "
        f"Python {machine['python']}" + (" (smoke run: tiny sizes)" if machine["smoke"] else ""),
        "",
        "| measurement | figure | goal | |",
        "|---|---|---|---|",
    ]
    goals = {1: 0.90, 4: 0.27}
    for row in results["prompt_scaling"]:
        goal = goals.get(row["prompts"])
        lines.append(
            _row(
                f"1 image, {row['prompts']} text prompt(s): Segmenter / transformers",
                f"{row['ratio']:.3f}x "
                f"({row['segmenter_s']:.2f} s vs {row['transformers_s']:.2f} s)",
                f"<= {goal:.2f}x" if goal else "-",
                None if goal is None else row["ratio"] <= goal,
            )
        )
    layers = results["extract_layers"]
    lines.append(
        _row(
            "extract layers: 5 triples x 4 prompts, one encoding / 20 transformers forwards",
            f"{layers['ratio']:.3f}x "
            f"({layers['segmenter_s']:.2f} s vs {layers['transformers_s']:.2f} s)",
            "<= 0.10x",
            layers["ratio"] <= 0.10,
        )
    )
    variants = (("bf16_full_size", "full-size, random inputs"), ("bf16_mini", "mini scenes"))
    for key, label in variants:
        bf16 = results[key]
        lines.append(
            _row(
                f"bf16 weights vs fp32 Segmenter ({label}): speed-up",
                f"{bf16['speedup']:.2f}x",
                ">= 1.6x",
                bf16["speedup"] >= 1.6,
            )
        )
        lines.append(
            _row(
                f"bf16 accuracy ({label}): mean abs dp / min mask IoU",
                f"{bf16['mean_abs_dp']:.4f} / {bf16['min_mask_iou']:.3f}",
                "<= 0.01 / >= 0.98",
                bf16["mean_abs_dp"] <= 0.01 and bf16["min_mask_iou"] >= 0.98,
            )
        )
    for dtype, peaks in results["peak_rss_mib"].items():
        predict = "n/a" if peaks["predict"] is None else f"{peaks['predict']:.0f} MiB"
        lines.append(_row(f"peak RSS, {dtype}: building the model / segmenting 1 image + "
                          f"{results['memory_prompts']} prompts",
                          f"{peaks['load']:.0f} MiB / {predict}", "-", None))
    throughput = results["throughput"]
    lines.append(
        _row(
            "backbone (encode_image) GFLOP/s vs fp32 matmul GFLOP/s, same process",
            f"{throughput['backbone_gflops']:.0f} / {throughput['matmul_gflops']:.0f} "
            f"({throughput['backbone_gflop']:.1f} GFLOP per encoding)",
            "-",
            None,
        )
    )
    if "study_s" in results:
        full, quick = results["study_s"]["full"], results["study_s"]["quick"]
        lines.append(
            _row(
                "whole study, `clipseg-study run --model mini`",
                _study_figure(full),
                "<= 300 s",
                full["returncode"] == 0 and full["seconds"] <= 300,
            )
        )
        lines.append(_row("quick study (`--quick`)", _study_figure(quick), "-", None))
    return "\n".join(lines) + "\n"

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
        f"Python {machine['python']}, bf16 units: {', '.join(machine['bf16_units']) or 'none'}"
        + (" (smoke run: tiny sizes)" if machine["smoke"] else ""),
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
    if "study_jobs" in results:
        lines.append(_jobs_row(results["study_jobs"]))
    if "evaluate" in results:
        lines.append(_evaluate_row(results["evaluate"]))
    return "\n".join(lines) + "\n"


def _failed(*runs: dict) -> str:
    codes = [str(run["returncode"]) for run in runs if run["returncode"] != 0]
    return f" (FAILED, exit status {', '.join(codes)})" if codes else ""


def _jobs_row(jobs: dict) -> str:
    what = "study wall time, `run --jobs 2` / serial (mini)"
    if "missing" in jobs:
        return _row(what, f"not measured: {jobs['missing']}", "<= 0.65x", None)
    serial, parallel = jobs["serial"], jobs["jobs"]
    ratio = parallel["seconds"] / serial["seconds"]
    failed = _failed(serial, parallel)
    figure = f"{ratio:.2f}x ({parallel['seconds']:.0f} s vs {serial['seconds']:.0f} s){failed}"
    return _row(what, figure, "<= 0.65x", not failed and ratio <= 0.65)


def _evaluate_row(evaluate: dict) -> str:
    what = "`evaluate` images/s, `local:2` / serial"
    if "missing" in evaluate:
        return _row(what, f"not measured: {evaluate['missing']}", ">= 1.6x", None)
    serial, local = evaluate["serial"], evaluate["local2"]
    rates = [evaluate["images"] / run["seconds"] for run in (serial, local)]
    failed = _failed(serial, local)
    figure = (
        f"{rates[1] / rates[0]:.2f}x ({rates[1]:.2f} vs {rates[0]:.2f} images/s, "
        f"{evaluate['images']} images, {evaluate['model']}){failed}"
    )
    return _row(what, figure, ">= 1.6x", not failed and rates[1] / rates[0] >= 1.6)

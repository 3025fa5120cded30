"""Faster per encoding: each speed option of the vision backbone against float32, in one process.

    python -m benchmarks.speed_options            # ~10 minutes on 2 cores, compiles included
    python -m benchmarks.speed_options --smoke    # the tiny model, seconds (--only to pick)

Each option gets its own randomly initialised CLIPSeg (ViT-B/16, 352 x 352, rd64-refined, seed
0: the same weights; speed does not depend on weight values) and is timed against the float32
Segmenter in the same process, one `encode_image` of each, in turns, over distinct 352 x 352
scenes after a warm-up: the median seconds, the speed-up, and the one-off cost (preparing the
option and its first encoding: compiling, exporting). Agreement: `predict` on the same scenes x
PROMPTS against float32's, as the mean |dp| and the smallest IoU of the masks at 0.5. An option
meets the adoption rule of issue #31 at >= 1.3x and mean |dp| <= 0.01; whether a study's verdict
changes takes a whole study run. Writes benchmarks/results/speed_options.json (the machine, the
rows and the Markdown table).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from clipseg_lib import world
from clipseg_lib.analysis.metrics import iou
from clipseg_lib.model.encoding import ImageEncoding
from clipseg_lib.model.hardware import cpu_features, machine_record
from clipseg_lib.model.quantization import quantize_backbone
from clipseg_lib.model.random_models import random_segmenter
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.model.work import backbone_flops

RESULTS = Path(__file__).resolve().parent / "results" / "speed_options.json"
PROMPTS = ["a red circle", "a blue square", "a green triangle", "a yellow star"]
SPEEDUP_RULE, DP_RULE = 1.3, 0.01
COMPILE_LIMIT_S = 300


class Backbone(nn.Module):
    """The vision embeddings and the first `depth` encoder layers, as `Segmenter._encode`
    runs them: pixel_values (1, 3, h, w) -> hidden states 0 .. depth."""

    def __init__(self, vision: nn.Module, depth: int) -> None:
        super().__init__()
        self.vision, self.depth = vision, depth

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vision = self.vision
        hidden = vision.pre_layrnorm(vision.embeddings(pixel_values, interpolate_pos_encoding=True))
        states = [hidden]
        for layer in vision.encoder.layers[: self.depth]:
            hidden = layer(hidden, None)
            states.append(hidden)
        return tuple(states)


def encode_with(
    segmenter: Segmenter, forward: Callable[[torch.Tensor], Sequence[torch.Tensor]]
) -> None:
    """Make `segmenter` encode its default depth with `forward` (pixel_values -> states)."""
    depth = max(segmenter.extract_layers) + 1

    def encode(pixel_values: torch.Tensor, original_size: tuple[int, int], deepest: int):
        if deepest != depth:
            raise ValueError(f"this backbone computes {depth} layers, {deepest} were asked for")
        return ImageEncoding(tuple(forward(pixel_values)), original_size,
                             tuple(pixel_values.shape[-2:]))

    segmenter._encode = encode


def backbone(segmenter: Segmenter) -> Backbone:
    """The segmenter's backbone to its default depth."""
    return Backbone(segmenter.model.clip.vision_model, max(segmenter.extract_layers) + 1).eval()


def compile_backbone(freezing: bool) -> Callable[[Segmenter, torch.Tensor], None]:
    """torch.compile (inductor) of the backbone; `freezing`: weights folded in as constants."""

    def prepare(segmenter: Segmenter, example: torch.Tensor) -> None:
        encode_with(segmenter, torch.compile(backbone(segmenter), dynamic=False,
                                             options={"freezing": freezing}))

    return prepare


def onnx_backbone(quantized: bool) -> Callable[[Segmenter, torch.Tensor], None]:
    """The backbone exported to ONNX (torch.onnx, dynamo) and run by ONNX Runtime on torch's
    thread count; `quantized`: its MatMuls int8 by onnxruntime's dynamic quantization."""

    def prepare(segmenter: Segmenter, example: torch.Tensor) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        with tempfile.TemporaryDirectory(prefix="speed-options-onnx-") as directory:
            path = Path(directory) / "backbone.onnx"
            with torch.no_grad():
                torch.onnx.export(backbone(segmenter), (example,), path, dynamo=True,
                                  external_data=False, verbose=False)
            if quantized:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(path, path.with_name("int8.onnx"), weight_type=QuantType.QInt8)
                path = path.with_name("int8.onnx")
            session = onnxruntime.InferenceSession(path, options,
                                                   providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        encode_with(segmenter, lambda pixels: [
            torch.from_numpy(state) for state in session.run(None, {name: pixels.numpy()})])

    return prepare


@dataclass(frozen=True)
class Option:
    """One way to encode: its table label, what it does to a float32 (or `dtype`) segmenter
    before the first encoding, its torch threads (None: the default), the module it needs."""

    label: str
    prepare: Callable[[Segmenter, torch.Tensor], object] | None = None
    dtype: torch.dtype = torch.float32
    threads: int | None = None
    needs: str | None = None


OPTIONS = {
    "int8": Option("int8 (`dtype=\"int8\"`, torch.ao dynamic, linear layers)",
                   lambda segmenter, _: quantize_backbone(segmenter)),
    "bfloat16": Option("bfloat16 (`dtype=\"bfloat16\"`)", dtype=torch.bfloat16),
    "threads1": Option("float32, torch.set_num_threads(1)", threads=1),
    "compile": Option("torch.compile (inductor), float32", compile_backbone(False)),
    "compile-freezing": Option("torch.compile (inductor, freezing), float32",
                               compile_backbone(True)),
    "onnxruntime": Option("ONNX Runtime, float32", onnx_backbone(False), needs="onnxruntime"),
    "onnxruntime-int8": Option("ONNX Runtime, int8 (dynamic quantization)", onnx_backbone(True),
                               needs="onnxruntime"),
}


@contextlib.contextmanager
def threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `count` (None: unchanged) while inside."""
    saved = torch.get_num_threads()
    torch.set_num_threads(count or saved)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def timed_encoding(segmenter: Segmenter, image: np.ndarray) -> float:
    """Seconds of one `encode_image`."""
    start = time.perf_counter()
    segmenter.encode_image(image)
    return time.perf_counter() - start


def measure(
    key: str, reference: Segmenter, predictions: list[np.ndarray], images: list[np.ndarray],
    warm: np.ndarray, *, smoke: bool, rounds: int,
) -> dict:
    """One option's row: encodings timed in turns with `reference`'s, one-off cost, agreement."""
    option = OPTIONS[key]
    row: dict = {"option": key, "label": option.label}
    if option.needs and importlib.util.find_spec(option.needs) is None:
        return row | {"error": f"{option.needs} is not installed (pip install -e '.[speed]')"}
    with tempfile.TemporaryDirectory(prefix="speed-options-") as directory:
        segmenter = random_segmenter(directory, smoke=smoke, dtype=option.dtype)
    try:
        with threads(option.threads):
            start = time.perf_counter()
            if option.prepare is not None:
                option.prepare(segmenter, segmenter.preprocess(warm))
            segmenter.encode_image(warm)
            row["one_off_s"] = time.perf_counter() - start
    except Exception as error:  # an option that cannot run here is a result, not a crash
        return row | {"error": f"{type(error).__name__}: {str(error).strip()[:300]}"}
    ours, theirs = [], []
    for _ in range(rounds):  # in turns, a round of each (a thread count is set once a round)
        with threads(None):
            theirs += [timed_encoding(reference, image) for image in images]
        with threads(option.threads):
            ours += [timed_encoding(segmenter, image) for image in images]
    differences, ious = [], []
    with threads(option.threads):
        for image, expected in zip(images, predictions, strict=True):
            got = segmenter.predict(image, PROMPTS)
            differences.append(float(np.abs(got - expected).mean()))
            ious += [iou(a > 0.5, b > 0.5) for a, b in zip(got, expected, strict=True)]
    row |= {"encode_s": statistics.median(ours), "float32_encode_s": statistics.median(theirs),
            "mean_abs_dp": float(np.mean(differences)), "min_mask_iou": float(np.min(ious))}
    row["speedup"] = row["float32_encode_s"] / row["encode_s"]
    row["meets_rule"] = row["speedup"] >= SPEEDUP_RULE and row["mean_abs_dp"] <= DP_RULE
    if key.startswith("compile") and row["one_off_s"] > COMPILE_LIMIT_S:
        row["note"] = f"compiling took over {COMPILE_LIMIT_S // 60} minutes"
    return row


def patch_embedding_share(segmenter: Segmenter) -> float:
    """The patch embedding's (the backbone's only convolution's) share of an encoding's FLOPs."""
    config = segmenter.model.config.vision_config
    size = (segmenter.image_size, segmenter.image_size)
    return backbone_flops(config, size, 0) / backbone_flops(config, size, max(
        segmenter.extract_layers) + 1)


def markdown(report: dict) -> str:
    """The rows as a Markdown table, float32 first, with the machine above it."""
    machine = report["machine"]
    lines = [
        f"Machine: {machine['cpu']} ({', '.join(machine['cpu_flags'])}), {machine['threads']} "
        f"threads, torch {machine['torch']}, load average {machine['load_average'][0]:.2f}; "
        f"{report['images']} scenes x {report['rounds']} rounds, {len(PROMPTS)} prompts"
        + (" (smoke run: tiny model)" if report["smoke"] else ""),
        "",
        f"| option | ms per encoding | speed-up | one-off cost | mean \\|dp\\| | min mask IoU "
        f"| meets rule (>= {SPEEDUP_RULE}x, <= {DP_RULE}) |",
        "|---|---|---|---|---|---|---|",
        f"| float32 (baseline) | {1000 * report['float32_encode_s']:.0f} | 1.00x | - | 0 | 1 | - |",
    ]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['label']} | not measured: {row['error']} | | | | | |")
            continue
        note = f" ({row['note']})" if "note" in row else ""
        lines.append(
            f"| {row['label']} | {1000 * row['encode_s']:.0f} | {row['speedup']:.2f}x | "
            f"{row['one_off_s']:.1f} s{note} | {row['mean_abs_dp']:.4f} | "
            f"{row['min_mask_iou']:.3f} | {'yes' if row['meets_rule'] else 'no'} |"
        )
    lines += ["", f"channels_last: not measured; the backbone's only convolution is its patch "
              f"embedding, {100 * report['patch_embedding_share']:.1f}% of an encoding's FLOPs."]
    return "\n".join(lines) + "\n"


def measure_all(keys: list[str], *, smoke: bool, images: int, rounds: int) -> dict:
    """The report: the machine, the float32 baseline and a row per option in `keys`."""
    load_before = os.getloadavg()
    size = 64 if smoke else 352
    scenes = [world.render_scene(seed, size=size, split="test").image for seed in range(images + 1)]
    warm, timed = scenes[0], scenes[1:]
    with tempfile.TemporaryDirectory(prefix="speed-options-") as directory:
        reference = random_segmenter(directory, smoke=smoke)
    reference.encode_image(warm)
    predictions = [reference.predict(image, PROMPTS) for image in timed]
    rows = []
    for key in keys:
        rows.append(measure(key, reference, predictions, timed, warm, smoke=smoke, rounds=rounds))
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()},
              flush=True)
    measured = [row["float32_encode_s"] for row in rows if "error" not in row]
    onnxruntime = importlib.util.find_spec("onnxruntime") and importlib.metadata.version(
        "onnxruntime")
    return {
        "machine": machine_record() | {
            "cpu_flags_all": sorted(cpu_features()), "torch": torch.__version__,
            "onnxruntime": onnxruntime or None, "load_average": load_before,
            "load_average_after": os.getloadavg()},
        "model": "random CLIPSeg " + ("(tiny)" if smoke else "ViT-B/16 rd64-refined, 352 x 352"),
        "smoke": smoke, "images": len(timed), "rounds": rounds, "prompts": PROMPTS,
        "patch_embedding_share": patch_embedding_share(reference),
        "float32_encode_s": statistics.median(measured) if measured else float("nan"),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> dict:
    """Measure the options; print the table and save the report (smoke runs: only to --output)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_options")
    parser.add_argument("--smoke", action="store_true", help="the tiny model, for tests")
    parser.add_argument("--only", nargs="+", choices=list(OPTIONS), default=list(OPTIONS))
    parser.add_argument("--images", type=int, default=8, help="distinct scenes timed")
    parser.add_argument("--rounds", type=int, default=2, help="times each scene is encoded")
    parser.add_argument("--output", type=Path, help=f"default: {RESULTS} (not for --smoke)")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="speed-options-inductor-") as cache, \
            mock.patch.dict(os.environ, {"TORCHINDUCTOR_CACHE_DIR": cache}):  # compiles cold
        report = measure_all(arguments.only, smoke=arguments.smoke, images=arguments.images,
                             rounds=arguments.rounds)
    report["markdown"] = markdown(report)
    print(report["markdown"])
    output = arguments.output or (None if arguments.smoke else RESULTS)
    if output is not None:
        output.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()

"""Parameter counts from configs alone, shapes through the decoder, other input sizes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from transformers import CLIPSegConfig

from clipseg_lib import load_segmenter, world
from clipseg_lib.experiments import architecture, architecture_figures


@pytest.fixture(scope="module")
def counts() -> dict[str, dict[str, int]]:
    return {
        name: architecture.decoder_parameters(config)
        for name, config in architecture.reference_configs().items()
    }


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_segmenter(tiny_model_dir)


def test_default_config_gives_the_posters_parameter_count():
    assert architecture.decoder_parameters(CLIPSegConfig())["decoder"] == 1_122_305
    refined = CLIPSegConfig(use_complex_transposed_convolution=True)
    assert architecture.decoder_parameters(refined)["decoder"] == 1_226_849


def test_vit_b16_decoders_differ_from_the_default_only_in_the_transposed_convolution(counts):
    default, b16 = counts["CLIPSegConfig() default (patch 32)"], counts["rd64 (ViT-B/16)"]
    assert b16["decoder"] == 1_073_153
    assert counts["rd64-refined (ViT-B/16)"]["decoder"] == 1_127_009
    assert counts["rd16 (ViT-B/16)"]["decoder"] == 263_681
    for part in ("FiLM", "reduces", "blocks"):
        assert default[part] == b16[part]
    assert default["transposed conv"] - b16["transposed conv"] == 64 * (32**2 - 16**2)


def test_parts_add_up_and_a_loaded_model_counts_like_its_config(tiny):
    from_model = architecture.decoder_parameters(tiny)
    from_config = architecture.decoder_parameters(architecture.as_config(tiny))
    assert from_model == from_config
    parts = sum(from_model[part] for part in architecture.DECODER_PARTS)
    assert parts == from_model["decoder"]
    assert from_model["CLIP (frozen)"] > from_model["decoder"]


def test_parameter_finding_names_the_numbers_and_the_cause():
    rows = architecture.parameter_rows(architecture.reference_configs())
    assert [row["upsampling"] for row in rows[:2]] == ["simple x32", "refined x64"]
    text = architecture.parameter_finding(rows)
    assert "1,122,305" in text and "1,073,153" in text and "1,226,849" in text
    assert text.startswith(
        "The paper's 1,122,305 counts its rd64 model on ViT-B/16; the original repository's rd64 "
        "module has 1,122,369 trainable parameters (1,073,153 in the decoder, the rest an unused "
        "reduce Linear), 64 more than the paper says.")
    b16 = architecture.reference_configs()["rd64 (ViT-B/16)"]
    assert architecture.original_module_parameters(b16) == 1_073_153 + 768 * 64 + 64
    assert "49,152 missing parameters are only the transposed convolution" in text


def test_upsampling_matches_the_patch_only_for_fitting_variants():
    b16_refined = architecture.reference_configs()["rd64-refined (ViT-B/16)"]
    assert architecture.upsampling(b16_refined) == 16
    assert architecture.upsampling(CLIPSegConfig(use_complex_transposed_convolution=True)) == 64
    assert architecture.upsampling(CLIPSegConfig()) == 32


def test_describe_maps_extract_layers_to_hidden_states_and_interpolation():
    config = architecture.reference_configs()["rd64 (ViT-B/16)"]
    text = architecture.describe(config, input_size=352)
    assert "hidden states (4, 7, 10)" in text
    assert "runs 10 of its 12 layers" in text
    assert "22 x 22 = 484 patch tokens" in text and "bicubic from 14 x 14" in text
    assert "positions as trained" in architecture.describe(config)


def test_trace_shapes_follows_the_decoder_deepest_layer_first(tiny):
    query = world.make_query("composite", 3, size=64)
    encoding = tiny.encode_image(query.scene.image)
    encoded = tiny.work.images
    rows = architecture.trace_shapes(tiny, encoding, query.prompt)
    assert tiny.work.images == encoded  # only the decoder ran
    assert rows[0] == {"stage": "image", "shape": "64 x 64 x 3"}
    stages = [row["stage"] for row in rows]
    assert stages.index("reduce layer 9") < stages.index("FiLM scale (film_mul)")
    assert stages.index("reduce layer 6") < stages.index("reduce layer 3")
    shapes = dict((row["stage"], row["shape"]) for row in rows)
    assert shapes["extract layer 9 = hidden state 10"] == "1 x 17 x 32"
    assert shapes["reduce layer 9"] == "1 x 17 x 16"
    assert shapes["transposed convolution"] == "1 x 1 x 32 x 32"
    assert shapes["probabilities (sigmoid, resized)"] == "1 x 64 x 64"


def test_input_size_figure_draws_the_given_map_per_size():
    query = world.make_query("composite", 3, size=64)
    maps = {32: query.target.astype(np.float32), 48: np.zeros((64, 64), np.float32)}
    figure = architecture_figures.show_input_sizes(query, maps)
    assert [ax.get_title() for ax in figure.axes] == [
        "image", f"{query.prompt} @ 32 px\nIoU 1.00", f"{query.prompt} @ 48 px\nIoU 0.00"]
    plt.close(figure)


def test_a_larger_input_size_gives_more_tokens_and_still_a_full_size_mask(tiny):
    image = world.make_query("composite", 5, size=64).scene.image
    larger = architecture.with_input_size(tiny, 64)
    assert larger.encode_image(image).hidden_states[0].shape[1] == 8 * 8 + 1
    assert tiny.encode_image(image).hidden_states[0].shape[1] == 4 * 4 + 1
    assert larger.predict(image, "red circle").shape == (1, 64, 64)
    with pytest.raises(ValueError, match="input size 4"):
        architecture.with_input_size(tiny, 4)


def test_the_default_larger_size_is_larger_for_every_model(tiny):
    assert architecture.processor_size(tiny) == 32
    assert architecture.larger_input_size(tiny) == 48  # 1.5 x 32, whole 8 px patches
    assert architecture.input_sizes(tiny) == (32, 48)
    assert architecture.input_sizes(tiny, 64) == (32, 64)
    assert architecture.larger_input_size(architecture.with_input_size(tiny, 352)) == 528
    assert architecture.larger_input_size(architecture.with_input_size(tiny, 100)) == 152  # 19 x 8


def test_input_size_rows_and_finding_judge_on_paired_intervals(tiny):
    per_case = {32: {"iou_gt": [0.8, 0.9, 0.7, 0.6] * 5, "iou_vs_default": [1.0] * 20},
                48: {"iou_gt": [0.6, 0.7, 0.5, 0.4] * 5, "iou_vs_default": [0.7, 0.9] * 10}}
    rows = architecture.input_size_rows(tiny, per_case)
    assert [row["tokens"] for row in rows] == ["4 x 4", "6 x 6"]
    assert rows[0]["positions"] == "as trained" and rows[1]["positions"] == "bicubic from 4 x 4"
    assert rows[0]["IoU vs default size"] == {"mean": 1.0, "n": 20, "ci_low": 1.0, "ci_high": 1.0}
    assert rows[1]["mIoU vs target"]["mean"] == pytest.approx(0.55)
    text = architecture.input_size_finding(tiny, rows, per_case)
    assert text.startswith(f"On {tiny.name}, at the processor's 32 px (4 x 4 tokens) the mIoU")
    assert "at 48 px it sees 6 x 6 tokens (positions bicubic from 4 x 4): mIoU 0.550 [" in text
    assert "lower (paired change -0.200 [-0.200, -0.200] (n=20))" in text


def test_diagram_marks_extracted_and_skipped_layers():
    figure = architecture_figures.draw_diagram(architecture.reference_configs()["rd64 (ViT-B/16)"])
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert "ViT layer 10 = extract 9" in texts and "ViT layer 4 = extract 3" in texts
    dashed = [p for p in figure.axes[0].patches if p.get_linestyle() == "--"]
    assert len(dashed) == 2
    assert "1,073,153 decoder parameters" in figure.axes[0].get_title()
    plt.close(figure)

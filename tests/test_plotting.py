from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from clipseg_lib.analysis.plotting import (
    format_table,
    overlay,
    plot_curves,
    save_figure,
    show_mask,
    show_predictions,
)

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def grey_image(height: int = 8, width: int = 8) -> np.ndarray:
    return np.full((height, width, 3), 100, dtype=np.uint8)


def yellow_square() -> tuple[np.ndarray, np.ndarray]:
    """A 12 x 12 grey image with a yellow 6 x 6 square, and the square's mask."""
    image = np.full((12, 12, 3), 100, dtype=np.uint8)
    mask = np.zeros((12, 12), dtype=bool)
    mask[3:9, 3:9] = True
    image[mask] = (255, 220, 0)
    return image, mask


def test_overlay_draws_the_edge_and_keeps_the_object_colours() -> None:
    image, mask = yellow_square()
    drawn = overlay(image, mask, colour=(0.0, 0.0, 1.0), width=1)
    np.testing.assert_array_equal(drawn[3, 5], [0, 0, 255])  # the mask's inner edge
    np.testing.assert_array_equal(drawn[5, 5], [255, 220, 0])  # inside: still yellow
    np.testing.assert_array_equal(drawn[2, 5], [0, 0, 0])  # the halo just outside
    np.testing.assert_array_equal(drawn[0, 0], [100, 100, 100])
    assert int((drawn == [0, 0, 255]).all(axis=2).sum()) == 6 * 6 - 4 * 4
    assert drawn.dtype == np.uint8


def test_overlay_reads_probabilities_at_the_threshold() -> None:
    image, mask = yellow_square()
    probs = np.where(mask, 0.6, 0.4)
    np.testing.assert_array_equal(overlay(image, probs), overlay(image, mask))
    np.testing.assert_array_equal(overlay(image, probs, threshold=0.7), image)


def test_overlay_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="does not match"):
        overlay(grey_image(), np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="mask_or_probs"):
        overlay(grey_image(), np.full((8, 8), 2.0))
    with pytest.raises(ValueError, match="mask_or_probs"):
        overlay(grey_image(), np.ones((8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="colour"):
        overlay(grey_image(), np.zeros((8, 8), dtype=bool), colour=(255, 0, 0))
    with pytest.raises(ValueError, match="image"):
        overlay(grey_image().astype(np.float32), np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="width"):
        overlay(grey_image(), np.zeros((8, 8), dtype=bool), width=0)


def test_show_mask_outlines_the_mask_and_keeps_the_image_limits() -> None:
    image, mask = yellow_square()
    _, ax = plt.subplots()
    ax.imshow(image)
    limits = ax.get_xlim(), ax.get_ylim()
    outline = show_mask(mask, ax, colour=(0.0, 1.0, 0.0))
    (segment,) = outline.allsegs[0]
    assert segment[:, 0].min() == pytest.approx(2.5) and segment[:, 0].max() == pytest.approx(8.5)
    np.testing.assert_allclose(outline.get_edgecolor()[0][:3], [0.0, 1.0, 0.0])
    assert (ax.get_xlim(), ax.get_ylim()) == limits
    assert len(ax.images) == 1  # no fill layer over the object
    edge = np.ones((4, 4), dtype=bool)
    assert len(show_mask(edge, ax).allsegs[0]) == 1  # closes along the image border


def test_a_noisy_maps_outline_stays_small_in_an_svg(tmp_path: Path) -> None:
    """A random model's map on a photo: its outline drawn as vector paths took 6.4 MB here
    (54 MB for one figure of a full-size run); as pixels, about 0.5 MB."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    save_figure(show_predictions(image, rng.random((1, 300, 400)), ["noise"]),
                tmp_path / "noisy.png")
    assert (tmp_path / "noisy.svg").stat().st_size < 1_500_000


def test_show_predictions_makes_one_panel_per_prompt_plus_the_image() -> None:
    probs = np.zeros((3, 8, 8))
    probs[0, :4] = 0.9
    probs[1, :, :4] = 0.7
    targets = np.zeros((3, 8, 8), dtype=bool)
    targets[0, :2] = True
    targets[1, :, :4] = True
    figure = show_predictions(
        grey_image(), probs, ["cat", "dog", "sky"], targets=targets, scores=[0.9, 0.7, 0.0]
    )
    assert len(figure.axes) == 4
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0] == "image"
    assert titles[1] == "cat\nIoU 0.50, score 0.90"
    assert titles[2] == "dog\nIoU 1.00, score 0.70"
    assert titles[3] == "sky\nIoU 1.00, score 0.00"
    assert not any(ax.axison for ax in figure.axes)


def test_show_predictions_wraps_into_rows_and_drops_unused_axes() -> None:
    probs = np.zeros((4, 8, 8))
    figure = show_predictions(grey_image(), probs, ["a", "b", "c", "d"], ncols=3)
    assert len(figure.axes) == 5
    assert [ax.get_title() for ax in figure.axes[1:]] == ["a", "b", "c", "d"]
    assert figure.get_size_inches() == pytest.approx([9.0, 6.0])


def test_show_predictions_rejects_mismatched_prompts() -> None:
    with pytest.raises(ValueError, match="prompts"):
        show_predictions(grey_image(), np.zeros((2, 8, 8)), ["only one"])
    with pytest.raises(ValueError, match="probs"):
        show_predictions(grey_image(), np.zeros((2, 4, 4)), ["a", "b"])


def test_plot_curves_draws_labelled_lines_in_unit_range() -> None:
    figure = plot_curves(
        [1, 2, 3],
        {"text": [0.2, 0.4, 0.6], "visual": [0.1, 0.3, 0.2]},
        xlabel="severity",
        ylabel="mIoU",
        title="robustness",
    )
    ax = figure.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["text", "visual"]
    assert ax.get_lines()[0].get_marker() == "o"
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.1, 0.3, 0.2])
    assert ax.get_ylim() == (0.0, 1.0)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("severity", "mIoU", "robustness")
    assert ax.get_legend() is not None


def test_plot_curves_uses_a_given_axis_and_checks_lengths() -> None:
    figure, ax = plt.subplots()
    assert plot_curves([0, 1], {"a": [0.5, 0.5]}, xlabel="x", ylabel="y", ax=ax) is figure
    with pytest.raises(ValueError, match="'b'"):
        plot_curves([0, 1], {"b": [0.5]}, xlabel="x", ylabel="y")


def test_format_table_formats_floats_with_fixed_precision() -> None:
    table = format_table(
        [{"prompt": "cat", "miou": 0.123456, "n": 3}, {"prompt": "dog", "miou": 1.0}]
    )
    assert table.splitlines() == [
        "| prompt | miou  | n   |",
        "| ------ | ----- | --- |",
        "| cat    | 0.123 | 3   |",
        "| dog    | 1.000 |     |",
    ]


def test_format_table_respects_precision_and_numpy_floats() -> None:
    table = format_table([{"value": np.float32(0.5)}], precision=1)
    assert table.splitlines()[2] == "| 0.5   |"
    with pytest.raises(ValueError, match="rows"):
        format_table([])


def test_save_figure_writes_identical_png_and_svg_bytes(tmp_path: Path) -> None:
    figure = plot_curves([0, 1, 2], {"a": [0.1, 0.5, 0.9]}, xlabel="x", ylabel="y")
    first, second = tmp_path / "nested" / "first.png", tmp_path / "second.png"
    save_figure(figure, first)
    save_figure(figure, second)
    assert first.read_bytes().startswith(PNG_SIGNATURE)
    assert first.stat().st_size > 0
    assert first.read_bytes() == second.read_bytes()
    assert b"Software" not in first.read_bytes()
    vector = first.with_suffix(".svg").read_text(encoding="utf-8")
    assert vector.startswith("<?xml") and 'width="432pt"' in vector  # 6 in at 72 pt per in
    assert vector == second.with_suffix(".svg").read_text(encoding="utf-8")
    assert "<dc:date>" not in vector
    assert sorted(path.name for path in tmp_path.rglob("*")) == [
        "first.png", "first.svg", "nested", "second.png", "second.svg"]
    with pytest.raises(ValueError, match=r"path must name a \.png file, got .*first\.svg"):
        save_figure(figure, tmp_path / "first.svg")

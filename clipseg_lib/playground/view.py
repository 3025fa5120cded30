"""The playground's widgets: the controls on the left, the image and one overlay panel per prompt.

`PlaygroundView` only builds and draws; what happens on an event is `Playground`'s business.
"""

from __future__ import annotations

import html
import io

import ipywidgets as widgets
import numpy as np
from PIL import Image

from clipseg_lib.analysis import distortions

NO_DISTORTION = "none"
PANEL_WIDTH = "260px"
ERROR_COLOUR = "#b00020"
MESSAGE_COLOUR = "#333333"


def png_bytes(image: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) as PNG bytes (fast compression: panels are redrawn often)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class PlaygroundView:
    """The widget tree (`widget`) and its controls as attributes; `status` holds the last
    message shown, as plain text."""

    def __init__(self, image_labels: list[str], model_names: list[str], model: str,
                 prompts: str, threshold: float) -> None:
        self.status = ""
        wide = {"layout": widgets.Layout(width="100%"), "style": {"description_width": "80px"}}
        self.image_picker = widgets.Dropdown(options=image_labels, description="Image", **wide)
        self.image_upload = widgets.FileUpload(accept="image/*", description="Upload image")
        self.hint = widgets.HTML()
        self.prompts = widgets.Textarea(
            value=prompts, placeholder="one prompt per line", continuous_update=False, rows=4,
            description="Prompts", **wide,
        )
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.support_upload = widgets.FileUpload(accept="image/*", description="Image prompt")
        self.support_mask_upload = widgets.FileUpload(accept="image/*", description="Its mask")
        self.clear_support = widgets.Button(description="Clear image prompt")
        self.model_picker = widgets.Dropdown(
            options=model_names, value=model, description="Model", **wide
        )
        self.progress = widgets.Label()
        self.layers = widgets.Dropdown(options=[], description="Layers", **wide)
        self.threshold = widgets.FloatSlider(
            value=threshold, min=0.0, max=1.0, step=0.01, description="Threshold", **wide
        )
        self.distortion = widgets.Dropdown(
            options=[NO_DISTORTION, *distortions.DISTORTIONS], description="Distortion", **wide
        )
        self.severity = widgets.IntSlider(
            value=3, min=1, max=distortions.MAX_SEVERITY, description="Severity",
            continuous_update=False, **wide,
        )
        self.status_widget = widgets.HTML()
        self.image_view = self._panel("clipseg-image")
        self.gallery = widgets.Box(
            [self.image_view], layout=widgets.Layout(display="flex", flex_flow="row wrap")
        )
        controls = widgets.VBox(
            [
                self.image_picker, widgets.HBox([self.image_upload]), self.hint, self.prompts,
                widgets.HBox([self.run_button]),
                widgets.HBox([self.support_upload, self.support_mask_upload]),
                self.clear_support, self.model_picker, self.progress, self.layers,
                self.threshold, self.distortion, self.severity, self.status_widget,
            ],
            layout=widgets.Layout(width="360px", min_width="360px"),
        )
        self.widget = widgets.HBox([controls, self.gallery], layout=widgets.Layout(padding="8px"))
        self.widget.add_class("clipseg-playground")

    def say(self, message: str, *, error: bool = False) -> None:
        """Show `message` in the status line (red when `error`)."""
        self.status = message
        colour = ERROR_COLOUR if error else MESSAGE_COLOUR
        self.status_widget.value = f'<span style="color:{colour}">{html.escape(message)}</span>'

    def show_hint(self, phrases: tuple[str, ...]) -> None:
        self.hint.value = (
            f"<small>In this scene: {html.escape(', '.join(phrases))}</small>" if phrases else ""
        )

    def show_image(self, image: np.ndarray) -> None:
        self._set_panel(self.image_view, image, "<b>image</b>")

    def show_overlays(self, overlays: list[tuple[str, np.ndarray, str]]) -> None:
        """One panel per (label, RGB overlay, caption details) after the image; extra ones go."""
        panels = list(self.gallery.children[1:])
        while len(panels) < len(overlays):
            panels.append(self._panel("clipseg-overlay"))
        panels = panels[: len(overlays)]
        for panel, (label, overlay, details) in zip(panels, overlays, strict=True):
            self._set_panel(panel, overlay, f"<b>{html.escape(label)}</b><br>{details}")
        if list(self.gallery.children[1:]) != panels:
            self.gallery.children = [self.image_view, *panels]

    @staticmethod
    def _panel(css_class: str) -> widgets.VBox:
        panel = widgets.VBox(
            [widgets.Image(format="png", layout=widgets.Layout(width=PANEL_WIDTH)),
             widgets.HTML()],
            layout=widgets.Layout(margin="0 8px 8px 0"),
        )
        panel.add_class(css_class)
        return panel

    @staticmethod
    def _set_panel(panel: widgets.VBox, image: np.ndarray, caption: str) -> None:
        picture, text = panel.children
        picture.value, text.value = png_bytes(image), caption

"""The playground: try prompts on an image with widgets, in JupyterLab or as a Voila app.

`Playground(model)` builds an ipywidgets 8 app; show `app.widget`. The image is encoded once,
up to the backbone's last layer so that any extract-layer triple works. Changing prompts or
extract layers then re-runs only the light decoder (probabilities are cached per
(prompt, extract layers)), and a threshold change only re-thresholds the cached
probabilities: no model call at all. Library errors (the ValueError family: an upload that
is not an image, an empty prompt, a model that cannot be found) show as a message in the
status line, never as a traceback.

State to inspect: `last_probabilities`, `masks` and `presence_scores` (prompt label -> float32
(H, W) map in [0, 1], bool (H, W) mask, float), `status` (the last message, plain text),
`encode_count` and `decode_count` (backbone and decoder calls so far).
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import numpy as np
from PIL import Image, UnidentifiedImageError

from clipseg_lib import world
from clipseg_lib.analysis import distortions, metrics, plotting
from clipseg_lib.model import loading
from clipseg_lib.model.images import ImageError, ImageLike, load_image
from clipseg_lib.model.prompts import ImagePrompt
from clipseg_lib.model.segmenter import ImageEncoding, Segmenter

#: Side in pixels of the bundled synthetic scenes (mini sees them at 96, people at this size).
SCENE_SIZE = 288
#: Seeds of the bundled synthetic scenes (test split: never seen in training).
SCENE_SEEDS = (1, 2, 3, 4)
#: Longer sides are shrunk to this before encoding: CLIPSeg sees 352 pixels at most anyway.
MAX_IMAGE_SIDE = 512
IMAGES_DIR = loading.DATA_DIR / "images"
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: Extract-layer triples offered besides the model's own (those the backbone is deep enough for).
LAYER_TRIPLES = ((3, 6, 9), (3, 7, 9), (3, 5, 8), (2, 5, 8), (4, 7, 10), (5, 8, 11), (1, 4, 7))
NO_DISTORTION = "none"
IMAGE_PROMPT_LABEL = "image prompt"
EMPTY_PROMPT_MESSAGE = "Empty prompt: type a prompt (one per line) or upload an image prompt."
#: A pixel of an uploaded mask belongs to the object when its mean intensity exceeds this.
MASK_LEVEL = 127
PANEL_WIDTH = "260px"


@dataclass(frozen=True)
class BundledImage:
    """An image offered in the picker: RGB uint8 (H, W, 3) and the phrases naming its objects."""

    image: np.ndarray
    phrases: tuple[str, ...] = ()


def bundled_images(images_dir: str | Path | None = IMAGES_DIR) -> dict[str, BundledImage]:
    """Label -> image: the synthetic scenes of `SCENE_SEEDS`, then the photos in `images_dir`."""
    images = {}
    for seed in SCENE_SEEDS:
        scene = world.render_scene(
            seed, size=SCENE_SIZE, split="test", n_shapes=(3, 5), n_words=(0, 1), n_faces=(0, 1)
        )
        phrases = tuple(dict.fromkeys(obj.phrase for obj in scene.objects))
        images[f"scene {seed} (synthetic)"] = BundledImage(scene.image, phrases)
    if images_dir is not None and Path(images_dir).is_dir():
        for path in sorted(Path(images_dir).iterdir()):
            if path.suffix.lower() in PHOTO_SUFFIXES:
                images[f"photo {path.name}"] = BundledImage(_fit(load_image(path)))
    return images


def decode_upload(upload_value: tuple[dict, ...], what: str) -> tuple[str, np.ndarray]:
    """(file name, RGB uint8 (H, W, 3)) of the first file of an ipywidgets 8 FileUpload value.

    Raises `ImageError` naming the file when its bytes are not an image PIL can read.
    """
    upload = upload_value[0]
    name = upload.get("name", "upload")
    try:
        with Image.open(io.BytesIO(bytes(upload["content"]))) as opened:
            opened.load()
            return name, load_image(opened, name=name)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageError(f"{what} {name!r}: not an image file that can be read") from error


def _fit(image: np.ndarray) -> np.ndarray:
    """Shrink an RGB uint8 image so that its longer side is at most `MAX_IMAGE_SIDE`."""
    if max(image.shape[:2]) <= MAX_IMAGE_SIDE:
        return image
    picture = Image.fromarray(image)
    picture.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class Playground:
    """The widget app. `model`: a name or directory `load_segmenter` accepts; `image`: a
    bundled label, anything `load_image` accepts, or None (the first bundled image);
    `prompts`: one per line; `seed`: the seed of random distortions."""

    def __init__(
        self,
        model: str = "mini",
        *,
        device: str = "cpu",
        seed: int = 0,
        image: ImageLike | None = None,
        prompts: str = "",
        threshold: float = 0.5,
        images_dir: str | Path | None = IMAGES_DIR,
    ) -> None:
        self.device, self.seed = device, seed
        self.segmenter: Segmenter | None = None
        self.encode_count = self.decode_count = 0
        self.status = ""
        self.last_probabilities: dict[str, np.ndarray] = {}
        self.masks: dict[str, np.ndarray] = {}
        self.presence_scores: dict[str, float] = {}
        self.image: np.ndarray | None = None  # what the model sees: the picked image, distorted
        self._images = bundled_images(images_dir)
        first_label = next(iter(self._images))
        if isinstance(image, str) and image in self._images:
            first_label = image
        elif image is not None:
            first_label = "custom image"
            self._images[first_label] = BundledImage(_fit(load_image(image, name="image")))
        self._encoding: ImageEncoding | None = None
        self._probability_cache: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}
        self._support_image: np.ndarray | None = None
        self._support_mask: np.ndarray | None = None  # bool (H, W) of the support image
        self._muted_handlers = False
        self._build_widgets(model, prompts, threshold)
        self.image_picker.value = first_label
        self._show_hint()
        self._encode()
        self._load_model(model)
        self._connect()

    def _build_widgets(self, model: str, prompts: str, threshold: float) -> None:
        wide = {"layout": widgets.Layout(width="100%"), "style": {"description_width": "80px"}}
        self.image_picker = widgets.Dropdown(options=[*self._images], description="Image", **wide)
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
            options=list(dict.fromkeys([model, "mini", *loading.available_models()])),
            value=model, description="Model", **wide,
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

    def _connect(self) -> None:
        for control, action in (
            (self.image_picker, self._on_image_picked), (self.prompts, self._run),
            (self.model_picker, self._on_model_picked), (self.layers, self._decode),
            (self.threshold, self._redraw), (self.distortion, self._encode_and_decode),
            (self.severity, self._on_severity),
        ):
            control.observe(self._handler(action), names="value")
        for upload, what, use in (
            (self.image_upload, "uploaded image", self._use_uploaded_image),
            (self.support_upload, "image prompt", self._use_support),
            (self.support_mask_upload, "image prompt mask", self._use_support_mask),
        ):
            upload.observe(self._upload_handler(upload, what, use), names="value")
        self.run_button.on_click(self._handler(self._run))
        self.clear_support.on_click(self._handler(self._on_support_cleared))

    def _handler(self, action: Callable[[], None]) -> Callable[[object], None]:
        """Run `action` on a widget event unless muted; library errors become the status."""

        def handle(_event: object) -> None:
            if self._muted_handlers:
                return
            try:
                action()
            except (ValueError, OSError) as error:
                self._say(str(error), error=True)

        return handle

    def _upload_handler(
        self, upload: widgets.FileUpload, what: str, use: Callable[[str, np.ndarray], None]
    ) -> Callable[[object], None]:
        """Decode a FileUpload's file, empty the upload (so the same file can come again), then
        `use(name, image)`."""

        def take() -> None:
            if not upload.value:
                return
            try:
                name, image = decode_upload(upload.value, what)
            finally:
                with self._muted():
                    upload.value = ()
            use(name, image)

        return self._handler(take)

    @contextmanager
    def _muted(self) -> Iterator[None]:
        """Change widgets from code without their handlers running."""
        self._muted_handlers = True
        try:
            yield
        finally:
            self._muted_handlers = False

    def _say(self, message: str, *, error: bool = False) -> None:
        self.status = message
        colour = "#b00020" if error else "#333333"
        self.status_widget.value = f'<span style="color:{colour}">{html.escape(message)}</span>'

    @staticmethod
    def _panel(css_class: str) -> widgets.VBox:
        panel = widgets.VBox(
            [widgets.Image(format="png", layout=widgets.Layout(width=PANEL_WIDTH)),
             widgets.HTML()],
            layout=widgets.Layout(margin="0 8px 8px 0"),
        )
        panel.add_class(css_class)
        return panel

    def _show_hint(self) -> None:
        phrases = self._images[self.image_picker.value].phrases
        self.hint.value = (
            f"<small>In this scene: {html.escape(', '.join(phrases))}</small>" if phrases else ""
        )

    def _run(self) -> None:
        self._decode(insist=True)

    def _on_image_picked(self) -> None:
        self._show_hint()
        self._encode_and_decode()

    def _use_uploaded_image(self, name: str, image: np.ndarray) -> None:
        label = f"upload {name}"
        self._images[label] = BundledImage(_fit(image))
        with self._muted():
            self.image_picker.options = list(self._images)
            self.image_picker.value = label
        self._on_image_picked()

    def _use_support(self, _name: str, image: np.ndarray) -> None:
        self._support_image, self._support_mask = image, None
        self._forget(IMAGE_PROMPT_LABEL)
        self._decode()

    def _use_support_mask(self, name: str, mask_image: np.ndarray) -> None:
        if self._support_image is None:
            raise ValueError("image prompt mask: upload the image prompt first, then its mask")
        mask = mask_image.mean(axis=2) > MASK_LEVEL
        if mask.shape != self._support_image.shape[:2]:
            raise ValueError(f"image prompt mask {name!r}: size {mask.shape} does not match the "
                             f"image prompt {self._support_image.shape[:2]}")
        self._support_mask = mask
        self._forget(IMAGE_PROMPT_LABEL)
        self._decode()

    def _on_support_cleared(self) -> None:
        self._support_image, self._support_mask = None, None
        self._forget(IMAGE_PROMPT_LABEL)
        self._decode()

    def _on_model_picked(self) -> None:
        previous = self.segmenter.name if self.segmenter is not None else None
        if not self._load_model(self.model_picker.value) and previous is not None:
            with self._muted():
                self.model_picker.value = previous

    def _on_severity(self) -> None:
        if self.distortion.value != NO_DISTORTION:
            self._encode_and_decode()

    def _load_model(self, name: str) -> bool:
        """Load `name`, then encode and decode; on failure keep the current model."""
        self.progress.value = f"Loading {name}…"
        try:
            segmenter = loading.load_segmenter(name, device=self.device)
        except (ValueError, OSError) as error:
            self.progress.value = "Ready" if self.segmenter is not None else "No model loaded"
            self._say(str(error), error=True)
            return False
        self.segmenter = segmenter
        valid = [t for t in (segmenter.extract_layers, *LAYER_TRIPLES)
                 if max(t) + 1 <= segmenter.num_layers]
        with self._muted():
            self.layers.options = [(", ".join(map(str, t)), t) for t in dict.fromkeys(valid)]
            self.layers.value = segmenter.extract_layers
        self.progress.value = "Ready"
        self._handler(self._encode_and_decode)(None)
        return True

    def _encode_and_decode(self) -> None:
        self._encode()
        self._decode()

    def _encode(self) -> None:
        """Distort the picked image if asked and run the backbone once, to its last layer."""
        image = self._images[self.image_picker.value].image
        if self.distortion.value != NO_DISTORTION:
            image = distortions.distort(image, self.distortion.value, self.severity.value,
                                        seed=self.seed)
        self.image, self._encoding = image, None
        self._probability_cache.clear()
        self._set_panel(self.image_view, image, "<b>image</b>")
        if self.segmenter is not None:
            self._encoding = self.segmenter.encode_image(image,
                                                         max_layer=self.segmenter.num_layers)
            self.encode_count += 1

    def _prompts(self) -> dict[str, str | ImagePrompt]:
        """Label -> prompt: each non-blank line of the text box, then the image prompt."""
        prompts: dict[str, str | ImagePrompt] = {
            line.strip(): line.strip() for line in self.prompts.value.splitlines() if line.strip()
        }
        if self._support_image is not None:
            prompts[IMAGE_PROMPT_LABEL] = ImagePrompt(self._support_image, self._support_mask)
        return prompts

    def _decode(self, *, insist: bool = False) -> None:
        """Probabilities for every prompt from the cached encoding; only misses run the decoder.

        With no prompt the panels are cleared and the status asks for one (as an error when
        `insist`, i.e. the person asked to run).
        """
        prompts = self._prompts()
        self.last_probabilities = {}
        try:
            if self._encoding is not None and prompts:
                self.last_probabilities = self._probabilities(prompts)
        finally:
            self.presence_scores = {label: metrics.presence_score(probs)
                                    for label, probs in self.last_probabilities.items()}
            self._redraw()
        if not prompts:
            self._say(EMPTY_PROMPT_MESSAGE, error=insist)
        elif self._encoding is not None:
            count = len(prompts)
            self._say(f"{count} prompt{'s' * (count != 1)} on {self.image_picker.value}, "
                      f"extract layers {self.layers.value}")

    def _probabilities(self, prompts: dict[str, str | ImagePrompt]) -> dict[str, np.ndarray]:
        """Label -> (H, W) probabilities at the current extract layers, from the cache where
        possible; the misses go to the decoder in one call."""
        layers = tuple(self.layers.value)
        missing = [label for label in prompts if (label, layers) not in self._probability_cache]
        if missing:
            probabilities = self.segmenter.predict(
                self._encoding, [prompts[label] for label in missing], extract_layers=layers
            )
            self.decode_count += 1
            for label, probs in zip(missing, probabilities, strict=True):
                self._probability_cache[(label, layers)] = probs
        return {label: self._probability_cache[(label, layers)] for label in prompts}

    def _forget(self, label: str) -> None:
        for key in [key for key in self._probability_cache if key[0] == label]:
            del self._probability_cache[key]

    def _redraw(self) -> None:
        """Threshold the cached probabilities and redraw every panel (no model call)."""
        threshold = self.threshold.value
        self.masks = {label: probs > threshold for label, probs in self.last_probabilities.items()}
        panels = list(self.gallery.children[1:])
        while len(panels) < len(self.masks):
            panels.append(self._panel("clipseg-overlay"))
        panels = panels[: len(self.masks)]
        for panel, (label, mask) in zip(panels, self.masks.items(), strict=True):
            caption = (f"<b>{html.escape(label)}</b><br>presence "
                       f"{self.presence_scores[label]:.2f} · area {mask.mean():.1%}")
            self._set_panel(panel, plotting.overlay(self.image, mask), caption)
        if list(self.gallery.children[1:]) != panels:
            self.gallery.children = [self.image_view, *panels]

    @staticmethod
    def _set_panel(panel: widgets.VBox, image: np.ndarray, caption: str) -> None:
        picture, text = panel.children
        picture.value, text.value = _png(image), caption

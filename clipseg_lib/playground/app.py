"""The playground app: what happens when a person picks, uploads, types or moves a control.

The image is encoded once, up to the backbone's last layer, so that any extract-layer triple
works; prompts and layers re-run only the decoder, for the (prompt, layers) pairs not cached yet;
a threshold change only re-thresholds. Every problem reaches the person as a message in the
status line, never as a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from clipseg_lib.analysis import distortions, metrics, plotting
from clipseg_lib.model import loading
from clipseg_lib.model.images import ImageLike, load_image
from clipseg_lib.model.prompts import ImagePrompt
from clipseg_lib.model.segmenter import ImageEncoding, Segmenter
from clipseg_lib.playground.inputs import (
    IMAGES_DIR,
    BundledImage,
    decode_upload,
    fit_image,
    photos,
    prompt_lines,
    synthetic_scenes,
)
from clipseg_lib.playground.view import NO_DISTORTION, PlaygroundView

#: Extract-layer triples offered besides the model's own (those the backbone is deep enough for).
LAYER_TRIPLES = ((3, 6, 9), (3, 7, 9), (3, 5, 8), (2, 5, 8), (4, 7, 10), (5, 8, 11), (1, 4, 7))
IMAGE_PROMPT_LABEL = "image prompt"
EMPTY_PROMPT_MESSAGE = "Empty prompt: type a prompt (one per line) or upload an image prompt."
#: A pixel of an uploaded mask belongs to the object when its mean intensity exceeds this.
MASK_LEVEL = 127


class Playground(PlaygroundView):
    """The widget app; show `app.widget`. `model`: a name or directory `load_segmenter` accepts;
    `image`: a bundled label, anything `load_image` accepts, or None (the first bundled image);
    `prompts`: one per line; `seed`: the seed of random distortions; photos in `images_dir` are
    offered too (unreadable ones are skipped and named in the status).

    State to inspect: `last_probabilities`, `masks` and `presence_scores` (prompt label ->
    float32 (H, W) map in [0, 1], bool (H, W) mask, float), `status` (the last message),
    `encode_count` and `decode_count` (backbone and decoder calls so far).
    """

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
        self.last_probabilities: dict[str, np.ndarray] = {}
        self.masks: dict[str, np.ndarray] = {}
        self.presence_scores: dict[str, float] = {}
        self.image: np.ndarray | None = None  # what the model sees: the picked image, distorted
        found_photos, photo_problems = photos(images_dir)
        self._images = {**synthetic_scenes(), **found_photos}
        first_label = next(iter(self._images))
        if isinstance(image, str) and image in self._images:
            first_label = image
        elif image is not None:
            first_label = "custom image"
            self._images[first_label] = BundledImage(fit_image(load_image(image, name="image")))
        self._encoding: ImageEncoding | None = None
        self._probability_cache: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}
        self._support_image: np.ndarray | None = None
        self._support_mask: np.ndarray | None = None  # bool (H, W) of the support image
        self._muted_handlers = False
        model_names = list(dict.fromkeys([model, "mini", *loading.available_models()]))
        super().__init__(list(self._images), model_names, model, prompts, threshold)
        self.image_picker.value = first_label
        self.show_hint(self._images[first_label].phrases)
        self._encode()
        self._load_model(model)
        self._connect()
        if photo_problems:
            self.say("; ".join(photo_problems), error=True)

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
        """Run `action` on a widget event unless muted; every error becomes the status."""

        def handle(_event: object) -> None:
            if self._muted_handlers:
                return
            try:
                action()
            except (ValueError, OSError) as error:
                self.say(str(error), error=True)
            # A widget callback's traceback lands in a log the person never sees: say it instead.
            except Exception as error:  # noqa: BLE001
                self.say(f"unexpected {type(error).__name__}: {error}", error=True)

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

    def _run(self) -> None:
        self._decode(insist=True)

    def _on_image_picked(self) -> None:
        self.show_hint(self._images[self.image_picker.value].phrases)
        self._encode_and_decode()

    def _use_uploaded_image(self, name: str, image: np.ndarray) -> None:
        label = f"upload {name}"
        self._images[label] = BundledImage(fit_image(image))
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
            self.say(str(error), error=True)
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
        self.show_image(image)
        if self.segmenter is not None:
            self._encoding = self.segmenter.encode_image(image,
                                                         max_layer=self.segmenter.num_layers)
            self.encode_count += 1

    def _prompts(self) -> dict[str, str | ImagePrompt]:
        """Label -> prompt: each non-blank line of the text box, then the image prompt."""
        prompts: dict[str, str | ImagePrompt] = {
            line: line for line in prompt_lines(self.prompts.value)
        }
        if self._support_image is not None:
            prompts[IMAGE_PROMPT_LABEL] = ImagePrompt(self._support_image, self._support_mask)
        return prompts

    def _decode(self, *, insist: bool = False) -> None:
        """Probabilities for every prompt from the cached encoding; only misses run the decoder.

        With no prompt the panels are cleared and the status asks for one (as an error when
        `insist`, i.e. the person asked to run).
        """
        self.last_probabilities = {}
        try:
            prompts = self._prompts()
            if self._encoding is not None and prompts:
                self.last_probabilities = self._probabilities(prompts)
        finally:
            self.presence_scores = {label: metrics.presence_score(probs)
                                    for label, probs in self.last_probabilities.items()}
            self._redraw()
        if not prompts:
            self.say(EMPTY_PROMPT_MESSAGE, error=insist)
        elif self._encoding is not None:
            count = len(prompts)
            self.say(f"{count} prompt{'s' * (count != 1)} on {self.image_picker.value}, "
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
        self.show_overlays([
            (label, plotting.overlay(self.image, mask),
             f"presence {self.presence_scores[label]:.2f} · area {mask.mean():.1%}")
            for label, mask in self.masks.items()
        ])

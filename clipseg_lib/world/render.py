"""Rendering of one synthetic scene: vocabulary, drawing, backgrounds, layout and captions.

`clipseg_lib.world.scenes` builds scenes and queries on top of `SceneLayout` and re-exports the
vocabulary and the `WorldObject` / `Scene` types.

Everything is drawn without antialiasing, so every pixel of an object is exactly one of its
fill colours: a shape is only its `COLOURS` entry, a sign only `SIGN_COLOUR` or `INK_COLOUR`,
a face only `FACE_COLOUR` or `INK_COLOUR`. Geometry scales with the image side `size`
(64..512); at size 96 shapes are 15-28 px wide, faces 24-32 px, signs 32 x 15 px.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHAPES = ("circle", "square", "triangle", "star", "hexagon")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 80, 230),
    "yellow": (245, 225, 20),
    "purple": (150, 50, 200),
    "orange": (255, 135, 0),
}
WORDS = ("CAT", "SUN", "DOG", "CAR", "MAP", "BOX")
EXPRESSIONS = ("smiling", "sad", "surprised", "angry")
SIZE_CLASSES = ("small", "medium", "large")
BACKGROUNDS = ("plain", "gradient", "noise", "stripes")
_BACKGROUND_PHRASES = {
    "plain": "a plain background", "gradient": "a gradient", "noise": "a noisy texture",
    "stripes": "stripes",
}
_COUNT_WORDS = ("no", "a", "two", "three", "four", "five", "six", "seven", "eight")

FACE_COLOUR = (255, 200, 90)
SIGN_COLOUR = (245, 245, 235)
INK_COLOUR = (25, 20, 20)

SHAPE_FRACTIONS = {"small": 0.16, "medium": 0.22, "large": 0.29}
FACE_FRACTIONS = {"small": 0.25, "medium": 0.29, "large": 0.33}
_FONT_FRACTION = 0.12
_MAX_SHAPE_OVERLAP = 0.2  # of the smaller box's area
_MIN_VISIBLE_FRACTION = 0.6
_PLACEMENT_TRIES = 64
_SIGN_PAD_FRACTION = 0.035


def _crop_to_mask(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    window = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return _frozen(rgb[window]), _frozen(mask[window])


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _regular_polygon(centre: float, radii: list[float], first_angle: float) -> list[tuple]:
    step = 2 * np.pi / len(radii)
    return [
        (centre + r * np.cos(first_angle + k * step), centre + r * np.sin(first_angle + k * step))
        for k, r in enumerate(radii)
    ]


@lru_cache(maxsize=1024)
def shape_patch(shape: str, colour: str, diameter: int) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (h, w, 3) uint8, mask (h, w) bool) of a shape drawn in a diameter x diameter box.

    The patch is cropped to the mask's bounding box; arrays are read-only (cached).
    """
    mask_image = Image.new("L", (diameter, diameter), 0)
    draw = ImageDraw.Draw(mask_image)
    last, half = diameter - 1, (diameter - 1) / 2
    if shape == "circle":
        draw.ellipse((0, 0, last, last), fill=255)
    elif shape == "square":
        inset = round(0.08 * diameter)
        draw.rectangle((inset, inset, last - inset, last - inset), fill=255)
    elif shape == "triangle":
        draw.polygon([(half, 0), (last, last), (0, last)], fill=255)
    elif shape == "star":
        draw.polygon(_regular_polygon(half, [half + 0.5, 0.42 * half] * 5, -np.pi / 2), fill=255)
    elif shape == "hexagon":
        draw.polygon(_regular_polygon(half, [half + 0.5] * 6, 0.0), fill=255)
    else:
        raise ValueError(f"shape {shape!r} is not one of {SHAPES}")
    mask = np.asarray(mask_image) > 0
    rgb = np.empty((*mask.shape, 3), np.uint8)
    rgb[:] = COLOURS[colour]
    return _crop_to_mask(rgb, mask)


@lru_cache(maxsize=256)
def face_patch(expression: str, diameter: int) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) of a cartoon face: a disc with eyes and a mouth showing `expression`."""
    if expression not in EXPRESSIONS:
        raise ValueError(f"expression {expression!r} is not one of {EXPRESSIONS}")
    d = diameter
    image = Image.new("RGB", (d, d), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((0, 0, d - 1, d - 1), fill=FACE_COLOUR)
    mask = np.asarray(image).any(2)
    stroke = max(1, round(0.08 * d))
    eye = max(1.0, 0.075 * d) * (1.3 if expression == "surprised" else 1.0)
    eye_y = 0.4 * d
    for eye_x in (0.34 * d, 0.66 * d):
        draw.ellipse((eye_x - eye, eye_y - eye, eye_x + eye, eye_y + eye), fill=INK_COLOUR)
    if expression == "smiling":
        draw.arc((0.24 * d, 0.3 * d, 0.76 * d, 0.8 * d), 15, 165, fill=INK_COLOUR, width=stroke)
    elif expression == "sad":
        draw.arc((0.26 * d, 0.64 * d, 0.74 * d, 1.08 * d), 200, 340, fill=INK_COLOUR, width=stroke)
    elif expression == "surprised":
        draw.ellipse((0.39 * d, 0.6 * d, 0.61 * d, 0.86 * d), fill=INK_COLOUR)
    else:
        draw.line((0.3 * d, 0.73 * d, 0.7 * d, 0.73 * d), fill=INK_COLOUR, width=stroke)
        for outer, inner in ((0.16, 0.46), (0.84, 0.54)):
            draw.line((outer * d, 0.17 * d, inner * d, 0.3 * d), fill=INK_COLOUR, width=stroke)
    rgb = np.asarray(image).copy()
    rgb[~mask] = 0
    return _crop_to_mask(rgb, mask)


@lru_cache(maxsize=16)
def _sign_font(image_size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(7, round(_FONT_FRACTION * image_size)))


@lru_cache(maxsize=256)
def sign_patch(word: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) of a sign: a light rectangle with `word` in dark letters, centred.

    Every sign at one image size has the same rectangle, so only the text tells them apart.
    """
    if word not in WORDS:
        raise ValueError(f"word {word!r} is not one of {WORDS}")
    font = _sign_font(image_size)
    boxes = [font.getbbox(w, anchor="mm") for w in WORDS]
    text_w = max(b[2] - b[0] for b in boxes)
    text_h = max(b[3] - b[1] for b in boxes)
    pad = max(2, round(_SIGN_PAD_FRACTION * image_size))
    width, height = text_w + 2 * pad, text_h + 2 * pad
    image = Image.new("RGB", (width, height), SIGN_COLOUR)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # no antialiasing: the sign holds exactly two colours
    draw.text((width / 2, height / 2), word, fill=INK_COLOUR, font=font, anchor="mm")
    return _frozen(np.asarray(image)), _frozen(np.ones((height, width), bool))


def object_patch(
    kind: str, name: str, colour: str | None, size_class: str, image_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (h, w, 3) uint8, mask (h, w) bool) of one object, cropped tight to its mask."""
    if kind == "shape":
        diameter = round(SHAPE_FRACTIONS[size_class] * image_size)
        return shape_patch(name, colour, diameter)
    if kind == "face":
        return face_patch(name, round(FACE_FRACTIONS[size_class] * image_size))
    if kind == "word":
        return sign_patch(name, image_size)
    raise ValueError(f"object kind {kind!r} is not one of ('shape', 'word', 'face')")


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour of low saturation (0.05-0.3) and middling value (0.3-0.7)."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.7)
    phase = (hue * 6 + np.array([0.0, 4.0, 2.0])) % 6
    weights = np.clip(np.abs(phase - 3) - 1, 0, 1)
    return 255 * value * (1 - saturation + saturation * weights)


def render_background(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted (size, size, 3) uint8 background of the given kind (one of `BACKGROUNDS`)."""
    base = _muted_colour(rng).astype(np.float32)
    axis = np.arange(size, dtype=np.float32)
    if kind == "plain":
        return np.broadcast_to(base.astype(np.uint8), (size, size, 3)).copy()
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * axis[None, :] + np.sin(angle) * axis[:, None]
        ramp = (ramp - ramp.min()) / np.ptp(ramp)
        image = base + ramp[..., None] * (_muted_colour(rng).astype(np.float32) - base)
    elif kind == "noise":
        cell = int(rng.integers(3, 9))
        coarse = rng.standard_normal((-(-size // cell),) * 2, np.float32) * 18
        texture = coarse.repeat(cell, 0).repeat(cell, 1)[:size, :size]
        image = base + (texture + 6 * rng.standard_normal((size, size), np.float32))[..., None]
    elif kind == "stripes":
        period = max(4, round(rng.uniform(0.06, 0.16) * size))
        step_x, step_y = ((1, 0), (0, 1), (1, 1), (1, -1))[rng.integers(4)]
        pixels = np.arange(size)
        band = (step_x * pixels[None, :] + step_y * pixels[:, None]) // period % 2
        return np.take(np.stack([_muted_colour(rng), base]).astype(np.uint8), band, axis=0)
    else:
        raise ValueError(f"background {kind!r} is not one of {BACKGROUNDS}")
    return np.clip(image, 0, 255).astype(np.uint8)


def composite_patches(
    background: np.ndarray,
    patches: list[tuple[np.ndarray, np.ndarray]],
    corners: list[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Paste patches in order (later ones occlude earlier ones) at their (x0, y0) corners.

    Returns (image (H, W, 3) uint8, instance_map (H, W) int16) where instance_map holds
    k for the visible pixels of patch k-1 and 0 for background.
    """
    image = background.copy()
    instance_map = np.zeros(background.shape[:2], np.int16)
    for index, ((rgb, mask), (x0, y0)) in enumerate(zip(patches, corners, strict=True), start=1):
        window = np.s_[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]]
        image[window][mask] = rgb[mask]
        instance_map[window][mask] = index
    return image, instance_map


@dataclass(frozen=True)
class WorldObject:
    """One object: kind "shape" | "word" | "face"; box is XYXY pixels, x1/y1 exclusive."""

    kind: str
    name: str
    colour: str | None
    box: tuple[int, int, int, int]

    @property
    def phrase(self) -> str:
        """Natural name: "red triangle", "the word CAT", "smiling face"."""
        if self.kind == "shape":
            return f"{self.colour} {self.name}"
        return f"the word {self.name}" if self.kind == "word" else f"{self.name} face"


@dataclass(frozen=True, eq=False)
class Scene:
    """image (H, W, 3) uint8; instance_map (H, W) int16: 0 background, k for objects[k-1]."""

    image: np.ndarray
    instance_map: np.ndarray
    objects: tuple[WorldObject, ...]
    seed: int
    background: str

    def object_mask(self, index: int) -> np.ndarray:
        """(H, W) bool visible pixels of objects[index]."""
        if not 0 <= index < len(self.objects):
            raise IndexError(f"object index {index} outside 0..{len(self.objects) - 1}")
        return self.instance_map == index + 1

    def union_mask(self, indices: Iterable[int]) -> np.ndarray:
        """(H, W) bool union of the visible pixels of the given objects (empty if none)."""
        mask = np.zeros(self.instance_map.shape, bool)
        for index in indices:
            mask |= self.object_mask(index)
        return mask


class LayoutDoesNotFit(Exception):
    """A random layout did not fit; the caller draws another with the same generator."""


def _overlap_allowed(kind: str, box: tuple, other: WorldObject) -> bool:
    width = min(box[2], other.box[2]) - max(box[0], other.box[0])
    height = min(box[3], other.box[3]) - max(box[1], other.box[1])
    if width <= 0 or height <= 0:
        return True
    if kind != "shape" or other.kind != "shape":
        return False
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in (box, other.box)]
    return width * height <= _MAX_SHAPE_OVERLAP * min(areas)


class SceneLayout:
    """A scene under construction: objects placed one by one, then rendered in random order.

    Placement draws from `rng`; when an object finds no free place, or an object ends up
    less than 60% visible, `LayoutDoesNotFit` is raised and the caller starts a new layout.
    """

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng, self.size = rng, size
        self.objects: list[WorldObject] = []
        self.size_classes: list[str] = []

    def add(
        self,
        kind: str,
        name: str,
        colour: str | None = None,
        size_class: str | None = None,
        accept: Callable[[tuple[int, int, int, int]], bool] | None = None,
        region: tuple[int, int, int, int] | None = None,
    ) -> WorldObject:
        """Place one object (size class random if None) fully inside `region` (XYXY, default
        the image) where `accept(box)` holds and it overlaps no sign or face and each shape
        by at most a fifth of the smaller box."""
        size_class = size_class or SIZE_CLASSES[self.rng.integers(len(SIZE_CLASSES))]
        height, width = object_patch(kind, name, colour, size_class, self.size)[1].shape
        left, top, right, bottom = (
            min(max(edge, 0), self.size) for edge in region or (0, 0, self.size, self.size)
        )
        if right - left < width or bottom - top < height:
            raise LayoutDoesNotFit
        corners = self.rng.integers(
            (left, top), (right - width + 1, bottom - height + 1), (_PLACEMENT_TRIES, 2)
        )
        for x0, y0 in corners.tolist():
            box = (x0, y0, x0 + width, y0 + height)
            if all(_overlap_allowed(kind, box, o) for o in self.objects) and (
                accept is None or accept(box)
            ):
                self.objects.append(WorldObject(kind, name, colour, box))
                self.size_classes.append(size_class)
                return self.objects[-1]
        raise LayoutDoesNotFit

    def render(self, seed: int) -> Scene:
        """Draw a random background, then the objects in a random order (which sets occlusion
        and the object indices)."""
        order = self.rng.permutation(len(self.objects))
        objects = tuple(self.objects[i] for i in order)
        patches = [
            object_patch(o.kind, o.name, o.colour, self.size_classes[i], self.size)
            for o, i in zip(objects, order, strict=True)
        ]
        background = BACKGROUNDS[self.rng.integers(len(BACKGROUNDS))]
        image, instance_map = composite_patches(
            render_background(background, self.rng, self.size),
            patches,
            [o.box[:2] for o in objects],
        )
        visible = np.bincount(instance_map.ravel(), minlength=len(objects) + 1)[1:]
        full = np.array([mask.sum() for _, mask in patches])
        if np.any(visible < _MIN_VISIBLE_FRACTION * full):
            raise LayoutDoesNotFit
        return Scene(image, instance_map, objects, seed, background)


def with_articles(text: str) -> str:
    """Turn "a" into "an" before a vowel: "a orange star" -> "an orange star"."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _noun(obj: WorldObject, count: int) -> str:
    plural = "s" if count > 1 else ""
    if obj.kind == "word":
        return f"{_COUNT_WORDS[count]} sign{plural} saying {obj.name}"
    return f"{_COUNT_WORDS[count]} {obj.phrase}{plural}"


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A short caption in random object order, e.g. "two red stars and a smiling face on
    stripes"; the background is named half of the time (always when there are no objects)."""
    counts: dict[str, int] = {}
    examples: dict[str, WorldObject] = {}
    for index in rng.permutation(len(scene.objects)):
        obj = scene.objects[index]
        counts[obj.phrase] = counts.get(obj.phrase, 0) + 1
        examples.setdefault(obj.phrase, obj)
    parts = [_noun(examples[phrase], count) for phrase, count in counts.items()]
    background = _BACKGROUND_PHRASES[scene.background]
    if not parts:
        return background
    text = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return with_articles(f"{text} on {background}" if rng.random() < 0.5 else text)

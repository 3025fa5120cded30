"""The playground: try prompts on an image with widgets, in JupyterLab or as a Voila app.

`Playground(model)` builds an ipywidgets 8 app; show `app.widget`. Parts: `inputs` (scenes,
photos, uploads and prompts, checked), `view` (the widgets), `app` (what each event does).
"""

from clipseg_lib.playground.app import (
    EMPTY_PROMPT_MESSAGE,
    IMAGE_PROMPT_LABEL,
    LAYER_TRIPLES,
    Playground,
)
from clipseg_lib.playground.inputs import (
    IMAGES_DIR,
    MAX_IMAGE_SIDE,
    SCENE_SIZE,
    BundledImage,
    decode_upload,
    photos,
    prompt_lines,
    synthetic_scenes,
)
from clipseg_lib.playground.view import NO_DISTORTION

__all__ = [
    "EMPTY_PROMPT_MESSAGE",
    "IMAGE_PROMPT_LABEL",
    "IMAGES_DIR",
    "LAYER_TRIPLES",
    "MAX_IMAGE_SIDE",
    "NO_DISTORTION",
    "SCENE_SIZE",
    "BundledImage",
    "Playground",
    "decode_upload",
    "photos",
    "prompt_lines",
    "synthetic_scenes",
]

"""Turn a data SPEC of the command line into fine-tuning samples.

- `DIR`: a folder with `images/`, `masks/` and `prompts.csv` (`clipseg_lib.finetune.folder`).
- `world:KIND[+KIND...][:N]`: N (default 200) train-split queries of each kind from the
  synthetic world, seed 0, e.g. `world:negation+word:500`.
"""

from __future__ import annotations

from pathlib import Path

from clipseg_lib import world
from clipseg_lib.finetune.folder import PROMPTS_FILE, is_folder, read_folder
from clipseg_lib.finetune.samples import Sample
from clipseg_lib.finetune.world_data import query_samples, world_queries

WORLD_PREFIX = "world:"
DEFAULT_WORLD_QUERIES = 200
SPEC_FORMS = (
    f"a folder with images/, masks/ and {PROMPTS_FILE}",
    f"{WORLD_PREFIX}KIND[+KIND...][:N] (synthetic world; kinds: "
    f"{', '.join(k for k in world.QUERY_KINDS if k != 'image')})",
)


def open_data(spec: str) -> list[Sample]:
    """The samples `spec` names (see the module), or ValueError saying what SPEC may be."""
    if spec.startswith(WORLD_PREFIX):
        return _world(spec.removeprefix(WORLD_PREFIX))
    path = Path(spec).expanduser()
    if is_folder(path):
        return read_folder(path)
    reason = f"{path} has no {PROMPTS_FILE}" if path.is_dir() else "no such directory"
    raise ValueError(f"data {spec!r}: {reason}; SPEC is {' or '.join(SPEC_FORMS)}")


def _world(rest: str) -> list[Sample]:
    kinds_text, _, count_text = rest.partition(":")
    kinds = [k for k in kinds_text.split("+") if k]
    unknown = [k for k in kinds if k not in world.QUERY_KINDS or k == "image"]
    if not kinds or unknown:
        raise ValueError(f"data {WORLD_PREFIX}{rest!r}: unknown or no kinds {unknown}; "
                         f"SPEC is {SPEC_FORMS[1]}")
    if count_text and not (count_text.isdigit() and int(count_text) > 0):
        raise ValueError(f"data {WORLD_PREFIX}{rest!r}: N must be a positive integer")
    count = int(count_text) if count_text else DEFAULT_WORLD_QUERIES
    return [
        sample for kind in kinds
        for sample in query_samples(world_queries(kind, count, seed=0, split="train"))
    ]

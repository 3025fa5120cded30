"""Turn a data SPEC of the command line into fine-tuning samples.

- `DIR`: a folder with `images/`, `masks/` and `prompts.csv` (`clipseg_lib.finetune.folder`).
- `phrasecut:ROOT[:SPLIT]`, `pascal5i:ROOT[:SPLIT]`, `refcoco:ROOT[:SPLIT]`: a dataset on
  disk read by `clipseg_lib.datasets` (split default: the adapter's; Pascal-5i with text
  prompts, fold 0). Text samples only; Pascal's ignored pixels count as background.
- `world:KIND[+KIND...][:N]`: N (default 200) train-split queries of each kind from the
  synthetic world, seed 0, e.g. `world:negation+word:500`.
"""

from __future__ import annotations

from pathlib import Path

from clipseg_lib import world
from clipseg_lib.datasets import DATASETS, open_dataset
from clipseg_lib.finetune.folder import PROMPTS_FILE, is_folder, read_folder
from clipseg_lib.finetune.samples import Sample
from clipseg_lib.finetune.world_data import query_samples, world_queries

WORLD_PREFIX = "world:"
DEFAULT_WORLD_QUERIES = 200
SPEC_FORMS = (
    f"a folder with images/, masks/ and {PROMPTS_FILE}",
    f"{'|'.join(DATASETS)}:ROOT[:SPLIT] (a dataset on disk)",
    f"{WORLD_PREFIX}KIND[+KIND...][:N] (synthetic world; kinds: "
    f"{', '.join(k for k in world.QUERY_KINDS if k != 'image')})",
)


def open_data(spec: str) -> list[Sample]:
    """The samples `spec` names (see the module), or ValueError saying what SPEC may be."""
    if spec.startswith(WORLD_PREFIX):
        return _world(spec.removeprefix(WORLD_PREFIX))
    name, _, rest = spec.partition(":")
    if name in DATASETS and rest:
        return dataset_samples(name, *_root_and_split(rest))
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
                         f"SPEC is {SPEC_FORMS[2]}")
    if count_text and not (count_text.isdigit() and int(count_text) > 0):
        raise ValueError(f"data {WORLD_PREFIX}{rest!r}: N must be a positive integer")
    count = int(count_text) if count_text else DEFAULT_WORLD_QUERIES
    return [
        sample for kind in kinds
        for sample in query_samples(world_queries(kind, count, seed=0, split="train"))
    ]


def _root_and_split(rest: str) -> tuple[str, str | None]:
    """"ROOT[:SPLIT]" -> (ROOT, SPLIT or None); a ROOT may itself hold ':' (C:/data)."""
    root, _, split = rest.rpartition(":")
    if root and split and not any(c in split for c in "/\\"):
        return root, split
    return rest, None


def dataset_samples(name: str, root: str, split: str | None = None) -> list[Sample]:
    """Every text sample of a dataset adapter's split, image by image (masks in memory)."""
    adapter = open_dataset(name, root, split, shots=0) if name == "pascal5i" else (
        open_dataset(name, root, split))
    samples = []
    for image_id in adapter.image_ids():
        group = adapter.image_samples(image_id)
        samples += [
            Sample(group.image_path, item.prompt, item.target, f"{name} {item.sample_id}")
            for item in group.samples if isinstance(item.prompt, str)
        ]
    return samples

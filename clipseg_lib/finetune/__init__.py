"""Fine-tune a CLIPSeg decoder on your own (image, prompt, mask) data, CLIP frozen.

    from clipseg_lib.finetune import FinetuneConfig, finetune, read_folder
    result = finetune("CIDAS/clipseg-rd64-refined", read_folder("my_data"), "my_model",
                      FinetuneConfig(steps=500))
    load_segmenter("my_model")      # the fine-tuned model

The command line is `clipseg-study finetune --model M --data SPEC --output DIR`.
"""

from clipseg_lib.finetune.folder import read_folder, write_folder
from clipseg_lib.finetune.samples import Sample, load_mask
from clipseg_lib.finetune.sources import open_data
from clipseg_lib.finetune.state import OutputDirError
from clipseg_lib.finetune.trainer import DivergedError, FinetuneConfig, FinetuneResult, finetune
from clipseg_lib.finetune.world_data import query_samples, world_queries

__all__ = [
    "DivergedError",
    "FinetuneConfig",
    "FinetuneResult",
    "OutputDirError",
    "Sample",
    "finetune",
    "load_mask",
    "open_data",
    "query_samples",
    "read_folder",
    "world_queries",
    "write_folder",
]

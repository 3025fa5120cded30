"""Dataset adapters read the exported world back exactly; bad files are refused clearly."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipseg_lib.datasets import (
    DatasetError,
    dataset_provenance,
    load_plain_pickle,
    load_samples,
    open_dataset,
)
from clipseg_lib.datasets.export import export_world, world_images
from clipseg_lib.datasets.pascal5i import fold_classes
from clipseg_lib.datasets.samples import mask_to_rectangles, rasterise_polygons
from clipseg_lib.model.prompts import ImagePrompt

N_IMAGES = {"phrasecut": 4, "refcoco": 4, "pascal5i": 24}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("exports")
    return {name: export_world(name, root / name, n_images=n) for name, n in N_IMAGES.items()}


def test_rectangles_rasterise_back_to_the_mask_exactly():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((19, 27)) > 0.5
        assert np.array_equal(rasterise_polygons(mask_to_rectangles(mask), 19, 27), mask)
    triangle = rasterise_polygons([[(0, 0), (4, 0), (0, 4)]], 6, 6)
    assert triangle.sum() == 15 and triangle[0, 4] and not triangle[4, 4]


@pytest.mark.parametrize("name", ["phrasecut", "refcoco", "pascal5i"])
def test_adapter_reads_back_the_world_exactly(exports, name):
    world = {image.image_id: image for image in world_images(name, N_IMAGES[name])}
    folds = fold_classes(0) if name == "pascal5i" else None
    adapter = open_dataset(name, exports[name], fold=0, shots=0)
    expected = {
        sample.sample_id: sample
        for image in world.values()
        for sample in image.samples
        if folds is None or sample.class_id in folds
    }
    read = {}
    for image_id in adapter.image_ids():
        group = adapter.image_samples(image_id)
        assert group.image_path.is_file()
        read.update({sample.sample_id: sample for sample in group.samples})
    assert sorted(read) == sorted(expected) and len(read) > 3
    for sample_id, sample in read.items():
        truth = expected[sample_id]
        assert (sample.prompt, sample.class_id) == (truth.prompt, truth.class_id)
        assert np.array_equal(sample.target, truth.target)
        assert (sample.ignore is None) == (truth.ignore is None)
        if sample.ignore is not None:
            assert np.array_equal(sample.ignore, truth.ignore)


def test_pascal_folds_prompts_and_ignore(exports):
    adapter = open_dataset("pascal5i", exports["pascal5i"], fold=1, shots=0)
    samples = [s for i in adapter.image_ids() for s in adapter.image_samples(i).samples]
    assert {s.class_id for s in samples} == set(range(6, 11))
    names = json.loads((exports["pascal5i"] / "class_names.json").read_text())
    assert samples[0].prompt == f"a photo of a {names[samples[0].class_id - 1]}."
    assert any(s.ignore.any() for s in samples)  # signs and faces are 255


def test_one_shot_support_is_seeded_and_another_image_of_the_class(exports):
    adapter = open_dataset("pascal5i", exports["pascal5i"], fold=0, shots=1, seed=0)
    again = open_dataset("pascal5i", exports["pascal5i"], fold=0, shots=1, seed=0)
    other_seed = open_dataset("pascal5i", exports["pascal5i"], fold=0, shots=1, seed=1)
    pairs = [(i, s.class_id) for i in adapter.image_ids() for s in adapter.image_samples(i).samples]
    supports = [adapter.support_image_id(*pair) for pair in pairs]
    assert supports == [again.support_image_id(*pair) for pair in pairs]
    assert supports != [other_seed.support_image_id(*pair) for pair in pairs]
    for (image_id, class_id), support in zip(pairs, supports, strict=True):
        assert support != image_id
        assert class_id in [s.class_id for s in adapter.image_samples(support).samples]
    prompt = adapter.image_samples(pairs[0][0]).samples[0].prompt
    assert isinstance(prompt, ImagePrompt) and prompt.mask.any()


def test_malicious_refs_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    root = tmp_path / "refcoco"
    root.mkdir()
    (root / "instances.json").write_text(json.dumps({"images": [], "annotations": []}))
    (root / "refs(unc).p").write_bytes(pickle.dumps([{"split": "val", "x": Exploit()}], 2))
    with pytest.raises(DatasetError, match=r"refers to (posix|os)\.system"):
        open_dataset("refcoco", root)
    assert not marker.exists()
    (root / "refs(unc).p").write_bytes(pickle.dumps([{"s": {1, 2}, "t": (1.5, "a", None)}], 2))
    assert load_plain_pickle(root / "refs(unc).p") == [{"s": {1, 2}, "t": (1.5, "a", None)}]


def test_bad_roots_and_files_are_named(tmp_path, exports):
    with pytest.raises(DatasetError, match="not a directory"):
        open_dataset("phrasecut", tmp_path / "missing")
    with pytest.raises(DatasetError, match="refer_val.json is not a file"):
        open_dataset("phrasecut", exports["phrasecut"], "val")
    with pytest.raises(DatasetError, match="not one of"):
        open_dataset("coco", exports["phrasecut"])
    with pytest.raises(DatasetError, match="fold 4"):
        open_dataset("pascal5i", exports["pascal5i"], fold=4)
    broken = tmp_path / "voc"
    broken.mkdir()
    (broken / "val.txt").write_text("JPEGImages/a.jpg\n")
    with pytest.raises(DatasetError, match=r"val.txt:1: expected"):
        open_dataset("pascal5i", broken)


def test_load_samples_draws_a_seeded_set(exports):
    first = load_samples("phrasecut", exports["phrasecut"], limit=5, seed=3)
    again = load_samples("phrasecut", exports["phrasecut"], limit=5, seed=3)
    assert len(first) == 5
    assert [s.sample.sample_id for s in first] == [s.sample.sample_id for s in again]
    assert first[0].image.shape == (*first[0].sample.target.shape, 3)
    provenance = dataset_provenance(open_dataset("phrasecut", exports["phrasecut"]))
    assert sorted(provenance["files"]) == ["image_data_split.json", "refer_test.json"]
    assert all(len(digest) == 64 for digest in provenance["files"].values())


def test_export_refuses_a_non_empty_directory(exports):
    with pytest.raises(FileExistsError, match="--force"):
        export_world("phrasecut", exports["phrasecut"], n_images=2)


def _pascal_copy(exports, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(exports["pascal5i"], root)
    first = (root / "val.txt").read_text().splitlines()[0]
    return root, first.split()


def test_pascal_refuses_a_label_of_another_size_and_a_missing_or_broken_image(exports, tmp_path):
    root, (image, label) = _pascal_copy(exports, tmp_path)
    stem = Path(image).stem
    with Image.open(root / label) as original:
        original.resize((original.width // 2, original.height // 2), Image.NEAREST).save(
            root / label)
    adapter = open_dataset("pascal5i", root, fold=0, shots=0)
    with pytest.raises(DatasetError, match=rf"{stem}.jpg: size \(\d+, \d+\) differs from its "
                       "label map's"):
        adapter.image_samples(stem)
    (root / image).unlink()
    with pytest.raises(DatasetError, match=rf"Pascal-5i image: .*{stem}.jpg is not a file"):
        adapter.image_samples(stem)
    (root / image).write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=rf"{stem}.jpg: not a readable image"):
        adapter.image_samples(stem)
    (root / label).write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match=rf"{stem}.png: not a readable label PNG"):
        open_dataset("pascal5i", root, fold=0, shots=0)


@pytest.mark.parametrize(("line", "problem"), [
    ("/etc/passwd SegmentationClassAug/x.png", "must be a path inside"),
    ("JPEGImages/../../x.jpg SegmentationClassAug/x.png", "must be a path inside"),
    ("JPEGImages/x.jpg ../x.png", "must be a path inside"),
    (None, "is listed twice"),
])
def test_pascal_list_lines_stay_inside_the_root_and_name_each_image_once(exports, tmp_path, line,
                                                                         problem):
    root, fields = _pascal_copy(exports, tmp_path)
    lines = (root / "val.txt").read_text().splitlines()
    (root / "val.txt").write_text("\n".join([*lines, line or " ".join(fields)]) + "\n")
    with pytest.raises(DatasetError, match=rf"val.txt:{len(lines) + 1}: .*{problem}"):
        open_dataset("pascal5i", root, fold=0, shots=0)

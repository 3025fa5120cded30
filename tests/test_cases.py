"""The real-photo cases file: the shipped set loads; bad files fail naming the line."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from clipseg_lib.datasets.export import export_world
from clipseg_lib.experiments.cases import (
    QUICK_CASES_FILE,
    CasesError,
    by_image,
    dataset_cases,
    load_cases,
)


@pytest.fixture
def folder(tmp_path):
    """tmp_path with images/a.png (20 x 30) and masks/a.png (its left half white)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "images" / "a.png")
    mask = np.zeros((20, 30), np.uint8)
    mask[:, :15] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    return tmp_path


def write(folder, text: str):
    path = folder / "cases.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_cases_load_with_shared_read_only_images():
    cases = load_cases()
    assert len(cases) == 9
    assert [case.prompt for case in cases[:3]] == ["a person", "a flag", "a cat"]
    horse = cases[-1]
    assert horse.name == "horse.png" and horse.mask.shape == horse.image.shape[:2]
    assert 0.3 < horse.mask.mean() < 0.36
    assert all(case.mask is None for case in cases[:-1])
    assert cases[0].image is cases[1].image and not cases[0].image.flags.writeable
    assert max(case.image.shape[0] for case in cases) <= 512
    assert list(by_image(cases)) == [
        "astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg", "grace_hopper.jpg", "horse.png",
    ]


def test_masks_quoted_prompts_and_optional_mask_column(folder):
    cases = load_cases(
        write(folder, 'image,prompt,mask\na.png,"grey, flat",masks/a.png\na.png,grey\n'),
        folder / "images",
    )
    assert [case.prompt for case in cases] == ["grey, flat", "grey"]
    assert cases[0].mask.sum() == 20 * 15 and cases[1].mask is None
    reordered = load_cases(write(folder, "prompt,image\nsky,a.png\n"), folder / "images")
    assert reordered[0].name == "a.png" and reordered[0].prompt == "sky"


def test_missing_files_and_folders(folder):
    with pytest.raises(FileNotFoundError, match="cases file .*nothing.csv"):
        load_cases(folder / "nothing.csv", folder / "images")
    with pytest.raises(FileNotFoundError, match="images dir"):
        load_cases(write(folder, "image,prompt\na.png,x\n"), folder / "photos")


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty, expected a header"),
    ("image,prompt\n", "no cases after the header"),
    ("image,text\na.png,x\n", "missing \\['prompt'\\]"),
    ("image,prompt,notes\na.png,x,y\n", "unknown \\['notes'\\]"),
    ("image,prompt\na.png,x\na.png,\n", "line 3: the prompt column is empty"),
    ("image,prompt\n,x\n", "line 2: the image column is empty"),
    ("image,prompt\na.png,x,extra\n", "line 2: more fields than the header's 2"),
    ("image,prompt\nb.png,x\n", "line 2: image .*b.png.*no such file"),
    ("image,prompt,mask\na.png,x,masks/b.png\n", "line 2: mask .*b.png: no such file"),
    ("image,prompt,mask\na.png,x,cases.csv\n", "line 2: mask .*not an image file"),
])
def test_bad_cases_files_name_the_problem(folder, text, message):
    with pytest.raises(CasesError, match=message):
        load_cases(write(folder, text), folder / "images")


def test_a_mask_of_another_size_is_refused(folder):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "masks" / "small.png")
    with pytest.raises(CasesError, match="10x10 but its image is 30x20"):
        load_cases(write(folder, "image,prompt,mask\na.png,x,masks/small.png\n"), folder / "images")


def test_the_quick_cases_are_two_photos_of_the_shipped_set():
    quick = load_cases(QUICK_CASES_FILE)
    assert list(by_image(quick)) == ["chelsea.jpg", "horse.png"]
    assert [case.prompt for case in quick] == ["a cat", "a horse"]
    assert quick[1].mask is not None and quick[0].mask is None


def test_text_that_is_not_utf8_names_the_line(folder):
    path = folder / "cases.csv"
    path.write_bytes("image,prompt\na.png,x\na.png,café\n".encode("latin-1"))
    with pytest.raises(CasesError, match="cases.csv line 3: byte 0xe9 is not UTF-8; save the file"):
        load_cases(path, folder / "images")


def test_a_utf8_byte_order_mark_is_accepted(folder):
    path = folder / "cases.csv"
    path.write_bytes("image,prompt\na.png,café\n".encode("utf-8-sig"))
    assert load_cases(path, folder / "images")[0].prompt == "café"


@pytest.mark.parametrize(("text", "message"), [
    ("image,prompt\na.png,x\na.png," + "y" * 200_000 + "\n",
     "line 3: not a valid CSV row \\(field larger than field limit"),
    ("image,prompt,prompt\na.png,x,y\n", "header repeats the columns \\['prompt'\\]"),
    ("image,prompt\n../a.png,x\n", "line 2: image '../a.png' reaches outside .*images"),
    ("image,prompt\nsub/../../a.png,x\n", "line 2: image 'sub/../../a.png' reaches outside"),
    ("image,prompt\n/etc/passwd,x\n", "line 2: image '/etc/passwd' reaches outside"),
    ("image,prompt,mask\na.png,x,../outside/m.png\n", "line 2: mask '../outside/m.png' reaches"),
    ("image,prompt,mask\na.png,x,/tmp/m.png\n", "line 2: mask '/tmp/m.png' reaches outside"),
])
def test_files_reaching_outside_or_malformed_are_refused(folder, text, message):
    with pytest.raises(CasesError, match=message):
        load_cases(write(folder, text), folder / "images")


def test_images_in_sub_folders_of_the_images_dir_are_fine(folder):
    (folder / "images" / "sub").mkdir()
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(folder / "images" / "sub" / "b.png")
    [case] = load_cases(write(folder, "image,prompt\nsub/b.png,dark\n"), folder / "images")
    assert case.image.shape == (5, 6, 3) and case.name == "sub/b.png"



def test_dataset_cases_turn_a_phrasecut_export_into_cases_with_its_checksums(tmp_path):
    root = export_world("phrasecut", tmp_path / "export", n_images=6)
    drawn, provenance = dataset_cases("phrasecut", root, limit=5, seed=0)
    assert len(drawn) == 5
    assert {"dataset": "phrasecut", "split": "test"}.items() <= provenance.items()
    tasks = root / "refer_test.json"
    assert provenance["files"]["refer_test.json"] == hashlib.sha256(tasks.read_bytes()).hexdigest()
    phrases = {(str(task["image_id"]), task["phrase"]) for task in json.loads(tasks.read_text())}
    for group in by_image(drawn).values():
        assert all(case.image is group[0].image for case in group)
        assert not group[0].image.flags.writeable
    for case in drawn:
        assert (case.name, case.prompt) in phrases
        assert case.mask.dtype == bool and case.mask.shape == case.image.shape[:2]
        assert 0 < case.mask.sum() < case.mask.size
    again, _ = dataset_cases("phrasecut", root, limit=5, seed=0)
    assert [(c.name, c.prompt) for c in again] == [(c.name, c.prompt) for c in drawn]


def test_dataset_cases_without_a_root_name_the_missing_parameter():
    with pytest.raises(ValueError, match="dataset 'phrasecut' needs dataset_root"):
        dataset_cases("phrasecut", None, limit=4)

"""Malformed benchmark data is refused in one line (exit status 2) naming the file and the
problem, before or instead of a number; nothing is coerced into a prompt or a mask."""

from __future__ import annotations

import json
import math
import pickle
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from clipseg_lib.cli.main import main
from clipseg_lib.datasets.export import export_world

N_IMAGES = {"phrasecut": 3, "refcoco": 3}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("worlds")
    return {name: export_world(name, root / name, n_images=n) for name, n in N_IMAGES.items()}


def _edit_json(path: Path, change: Callable) -> None:
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def _task(change: Callable) -> Callable[[Path], None]:
    return lambda root: _edit_json(root / "refer_test.json", lambda tasks: change(tasks[0], tasks))


def _first_image(root: Path) -> Path:
    return sorted((root / "images").iterdir())[0]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` pixels (and holds almost none)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _refs(change: Callable) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        refs = pickle.loads((root / "refs(unc).p").read_bytes())
        change(refs)
        (root / "refs(unc).p").write_bytes(pickle.dumps(refs, 2))
    return edit


PHRASECUT_CASES = {
    "task without phrase": (_task(lambda task, _: task.pop("phrase")), "lacks 'phrase'"),
    "null phrase": (_task(lambda task, _: task.update(phrase=None)),
                    "phrase None is not a non-empty string"),
    "empty phrase": (_task(lambda task, _: task.update(phrase=" ")),
                     "phrase ' ' is not a non-empty string"),
    "image id that is a path": (_task(lambda task, _: task.update(image_id="../../etc/passwd")),
                                "image_id '../../etc/passwd' is not a numeric id"),
    "polygons that are text": (_task(lambda task, _: task.update(Polygons="abc")),
                               "Polygons must be a list of instances"),
    "NaN coordinate": (_task(lambda task, _: task["Polygons"][0][0][0].__setitem__(0, math.nan)),
                       "polygon coordinate nan is not a finite number"),
    "task id twice": (
        _task(lambda task, tasks: tasks.append(dict(tasks[1], task_id=task["task_id"]))),
        "appears twice"),
    "image without height": (
        lambda root: _edit_json(root / "image_data_split.json",
                                lambda images: images[0].pop("height")),
        "image entry 0: lacks 'height'"),
    "not an image": (lambda root: _first_image(root).write_bytes(b"<html>"),
                     "not a readable image"),
    "truncated JPEG": (lambda root: _first_image(root).write_bytes(
        _first_image(root).read_bytes()[:400]), "Truncated"),
    "decompression bomb": (lambda root: _first_image(root).write_bytes(_png_header(40000, 40000)),
                           "not a readable image"),
}
REFCOCO_CASES = {
    "odd-length segmentation": (
        lambda root: _edit_json(root / "instances.json", lambda instances: [
            annotation["segmentation"][0].append(1.0) for annotation in instances["annotations"]]),
        "odd number"),
    "image missing from instances.json": (
        lambda root: _edit_json(root / "instances.json",
                                lambda instances: instances["images"].pop(0)),
        "lacks images"),
    "ref without image_id": (_refs(lambda refs: refs[0].pop("image_id")), "lacks 'image_id'"),
}


@pytest.mark.parametrize(("dataset", "case"), [
    *[("phrasecut", case) for case in PHRASECUT_CASES],
    *[("refcoco", case) for case in REFCOCO_CASES],
])
def test_malformed_data_is_one_line_and_status_2(exports, tmp_path, capsys, dataset, case):
    break_it, problem = {**PHRASECUT_CASES, **REFCOCO_CASES}[case]
    root = tmp_path / dataset
    shutil.copytree(exports[dataset], root)
    break_it(root)
    output = tmp_path / "scores.json"
    status = main(["evaluate", "--dataset", dataset, "--root", str(root), "--model", "mini",
                   "--output", str(output)])
    printed = capsys.readouterr().err  # the progress bar, if scoring started, then the error
    lines = [line for line in printed.replace("\r", "\n").splitlines() if line]
    assert status == 2 and lines[-1].startswith("clipseg-study: error: ") and problem in lines[-1]
    assert "Traceback" not in printed and all(line.startswith("evaluate ") for line in lines[:-1])
    assert not output.exists()


def test_export_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    status = main(["export-world", "--format", "phrasecut", str(tmp_path / "file" / "world")])
    error = capsys.readouterr().err
    assert status == 2 and error.count("\n") == 1 and "file" in error

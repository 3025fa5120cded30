"""The study runner on tiny fixture notebooks: failure isolation, parameters, reruns, report."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from clipseg_lib.study import cli, runner
from clipseg_lib.study.report import build_report
from clipseg_lib.study.results import load_results

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
FIXTURE_SOURCE = "pathlib.Path(output_dir"


def injected_parameters(executed: Path) -> dict[str, object]:
    """The values papermill injected into an executed notebook."""
    notebook = nbformat.read(executed, as_version=4)
    [cell] = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    namespace: dict[str, object] = {}
    exec(cell.source, namespace)
    return {name: value for name, value in namespace.items() if not name.startswith("__")}


def run_main(argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(autouse=True)
def fixture_notebooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", FIXTURES)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """Every fixture notebook run once through ``main``: (exit code, stdout, output dir)."""
    output_dir = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "NOTEBOOKS_DIR", FIXTURES)
        code, stdout, _ = run_main(
            ["run", "--model", "mini", "--output-dir", str(output_dir), "--cell-timeout", "120"]
        )
    return code, stdout, output_dir


def test_failures_are_recorded_and_the_run_goes_on(full_run: tuple[int, str, Path]) -> None:
    code, stdout, output_dir = full_run
    manifest = json.loads((output_dir / "run.json").read_text())
    outcomes = {entry["stem"]: entry for entry in manifest["notebooks"]}

    assert code == 1
    assert list(outcomes) == ["00_ok", "01_fails", "02_dies", "03_ok_again"]
    assert [outcomes[stem]["status"] for stem in outcomes] == ["ok", "failed", "failed", "ok"]
    assert outcomes["01_fails"]["error_type"] == "ValueError"
    assert outcomes["01_fails"]["error_message"] == "fixture failure"
    assert outcomes["02_dies"]["error_type"] == "DeadKernelError"
    assert outcomes["00_ok"]["parameters"] == {"model": "mini", "output_dir": str(output_dir)}
    assert (manifest["model_requested"], manifest["model_resolved"]) == ("mini", "mini")
    assert manifest["quick"] is False
    assert manifest["provenance"]["seed"] is None
    assert all(entry["seconds"] > 0 for entry in manifest["notebooks"])
    assert "FAILED 01_fails" in stdout and "ValueError: fixture failure" in stdout
    assert "OK     03_ok_again" in stdout


def test_outputs_of_ok_notebooks_and_partial_failed_notebooks_are_kept(
    full_run: tuple[int, str, Path],
) -> None:
    _, _, output_dir = full_run
    results = load_results(output_dir)
    executed = sorted(path.name for path in (output_dir / "notebooks").iterdir())
    failed_notebook = nbformat.read(output_dir / "notebooks" / "01_fails.ipynb", as_version=4)
    error_outputs = [
        output
        for cell in failed_notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]

    assert sorted(results) == ["00_ok", "03_ok_again"]
    assert results["03_ok_again"]["results"] == {"n_cases": 10, "model": "mini", "seed": 0}
    assert executed == ["00_ok.ipynb", "01_fails.ipynb", "02_dies.ipynb", "03_ok_again.ipynb"]
    assert [output.ename for output in error_outputs] == ["ValueError"]


def test_report_hides_code_and_names_the_model(full_run: tuple[int, str, Path]) -> None:
    _, _, output_dir = full_run
    index = (output_dir / "report" / "index.html").read_text()
    page = (output_dir / "report" / "00_ok.html").read_text()

    assert "Model: mini (bundled, trained on the synthetic world)" in index
    assert '<a href="02_dies.html">02_dies</a>' in index
    assert "failed: DeadKernelError" in index
    assert "Conclusion" not in index
    assert "playground" not in index
    assert "fixture output: wrote 10 cases" in page
    assert FIXTURE_SOURCE not in page


def test_report_shows_conclusion_table_and_pretrained_banner(
    full_run: tuple[int, str, Path], tmp_path: Path
) -> None:
    output_dir = tmp_path / "study"
    shutil.copytree(full_run[2], output_dir)
    manifest = json.loads((output_dir / "run.json").read_text())
    manifest.update(model_requested="auto", model_resolved="CIDAS/clipseg-rd64-refined")
    (output_dir / "run.json").write_text(json.dumps(manifest))
    claims = [
        {"claim": "Prompts <b>matter</b>", "evidence": "mIoU 0.41 vs 0.33", "verdict": "supported"},
        {"claim": "Blur hurts", "evidence": "mIoU drops 0.12", "verdict": "refuted"},
    ]
    conclusion = {"name": "conclusion", "results": {"claims": claims}, "provenance": {}}
    (output_dir / "conclusion.json").write_text(json.dumps(conclusion))

    index = build_report(output_dir).read_text()

    assert "Model: CIDAS/clipseg-rd64-refined (pretrained CLIPSeg weights)" in index
    assert "(requested: auto)" in index
    assert "<td>Prompts &lt;b&gt;matter&lt;/b&gt;</td><td>mIoU 0.41 vs 0.33</td>" in index
    assert "<td>Blur hurts</td><td>mIoU drops 0.12</td><td>refuted</td>" in index
    assert index.count("<tr>") == 3


def test_quick_auto_model_and_clean_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requested_sources: list[str] = []

    def resolve_model_source(source: str) -> str:
        requested_sources.append(source)
        return "mini"

    monkeypatch.setitem(
        sys.modules,
        "clipseg_lib.model.loading",
        SimpleNamespace(resolve_model_source=resolve_model_source),
    )
    output_dir = tmp_path / "study"
    executed = output_dir / "notebooks" / "00_ok.ipynb"

    quick = runner.run_study(FIXTURES, output_dir, model="auto", selected=["00"], quick=True)
    assert requested_sources == ["auto"]
    assert quick.model_resolved == "mini" and not quick.failed
    assert injected_parameters(executed) == {
        "model": "mini",
        "output_dir": str(output_dir),
        "n_cases": runner.QUICK_CASES,
    }
    manifest = json.loads((output_dir / "run.json").read_text())
    assert (manifest["model_requested"], manifest["model_resolved"]) == ("auto", "mini")
    assert "Quick run" in (output_dir / "report" / "index.html").read_text()

    (output_dir / "other.json").write_text('{"name": "other", "results": {"kept": true}}')
    rerun = runner.run_study(
        FIXTURES, output_dir, model="mini", selected=["00_ok"], parameters=["seed=5"]
    )
    assert [outcome.status for outcome in rerun.notebooks] == ["ok"]
    assert injected_parameters(executed) == {
        "model": "mini",
        "output_dir": str(output_dir),
        "seed": 5,
    }
    results = load_results(output_dir)
    assert results["00_ok"]["results"] == {"n_cases": 10, "model": "mini", "seed": 5}
    assert results["other"]["results"] == {"kept": True}
    assert "Quick run" not in (output_dir / "report" / "index.html").read_text()
    assert "fixture output: wrote 10 cases" in (output_dir / "report" / "00_ok.html").read_text()


def test_cell_timeout_fails_the_notebook_and_the_run_goes_on(tmp_path: Path) -> None:
    notebooks_dir = tmp_path / "notebooks"
    notebooks_dir.mkdir()
    sleeper = nbformat.read(FIXTURES / "00_ok.ipynb", as_version=4)
    sleeper.cells[1].source = "import time\n\ntime.sleep(30)"
    nbformat.write(sleeper, notebooks_dir / "00_sleeps.ipynb")
    shutil.copy(FIXTURES / "03_ok_again.ipynb", notebooks_dir / "01_ok.ipynb")

    study = runner.run_study(notebooks_dir, tmp_path / "study", model="mini", cell_timeout=2)

    assert [outcome.status for outcome in study.notebooks] == ["failed", "ok"]
    assert study.notebooks[0].error_type == "CellTimeoutError"
    assert "2 seconds" in study.notebooks[0].error_message
    assert (tmp_path / "study" / "03_ok_again.json").is_file()


@pytest.mark.parametrize(
    ("arguments", "expected_message"),
    [
        (
            ["-p", "n_frames=3"],
            "no selected notebook declares n_frames; valid names: device, n_cases, seed",
        ),
        (["-p", "n_cases=many"], "parameter n_cases of notebook 00_ok expects int"),
        (["-p", "seed"], "-p expects name=value"),
        (["-p", "model=mini"], "use --model"),
        (["--notebooks", "07"], "no study notebook matches 07; available: 00_ok, 01_fails"),
        (["--notebooks", "04_playground"], "no study notebook matches 04_playground"),
        (["--cell-timeout", "0"], "cell timeout must be positive"),
    ],
)
def test_invalid_input_exits_2_before_executing(
    tmp_path: Path, arguments: list[str], expected_message: str
) -> None:
    output_dir = tmp_path / "study"
    code, _, stderr = run_main(
        ["run", "--model", "mini", "--output-dir", str(output_dir), *arguments]
    )
    assert code == 2
    assert expected_message in stderr
    assert not output_dir.exists()


def test_output_dir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    output_file = tmp_path / "study"
    output_file.write_text("not a directory")
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_file)])
    assert code == 2
    assert "is not a directory" in stderr
    assert output_file.read_text() == "not a directory"


def test_discover_notebooks_filters_and_skips_playground() -> None:
    all_stems = [path.stem for path in runner.discover_notebooks(FIXTURES)]
    selected = runner.discover_notebooks(FIXTURES, ["03", "01_fails"])
    assert all_stems == ["00_ok", "01_fails", "02_dies", "03_ok_again"]
    assert [path.stem for path in selected] == ["01_fails", "03_ok_again"]


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("True", False, True),
        ("0", True, False),
        ("12", 10, 12),
        ("0.25", 0.5, 0.25),
        ("3", 0.5, 3.0),
        ("[1, 2]", [0], [1, 2]),
        ("[1, 2]", (0,), (1, 2)),
        ("cuda", "cpu", "cuda"),
        ("7", None, 7),
        ("text", None, "text"),
    ],
)
def test_parse_parameter_follows_the_default_type(
    raw: str, default: object, expected: object
) -> None:
    value = runner.parse_parameter(raw, default)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("raw", "default"), [("yes", True), ("1.5", 10), ("abc", 0.5), ("3", [0]), ("[1", [0])]
)
def test_parse_parameter_rejects_values_of_another_type(raw: str, default: object) -> None:
    with pytest.raises(ValueError):
        runner.parse_parameter(raw, default)

"""clipseg-study verify: results compared quantity by quantity within declared tolerances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipseg_lib.cli import main as cli
from clipseg_lib.report import verify
from clipseg_lib.report.tolerances import EXACT, TOLERANCES, tolerance_for

pytestmark = pytest.mark.slow  # left out of `make test-fast`

MINI = {"model": "mini", "weights_sha256": "d3" * 32, "dtype": "float32"}


def write_run(directory: Path, results: dict, *, parameters: dict | None = None,
              provenance: dict | None = None, name: str = "06_negation") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "results": results,
               "parameters": {"threshold": 0.5, "output_dir": str(directory), **(parameters or {})},
               "provenance": {**MINI, **(provenance or {})}}
    (directory / f"{name}.json").write_text(json.dumps(payload))
    return directory


RESULTS = {"mean_iou": 0.8815, "n": 40, "ious": [0.9, 0.5, 0.0],
           "finding": "On mini, negation hurts: 0.020 [0.008, 0.035] (n=40)."}


def test_a_run_agrees_with_itself_up_to_rounding_and_location(tmp_path: Path) -> None:
    reference = write_run(tmp_path / "reference", RESULTS)
    rounded = {**RESULTS, "mean_iou": 0.8815 + 0.004,
               "finding": "On mini, negation hurts: 0.021 [0.008, 0.036] (n=40)."}
    ours = write_run(tmp_path / "ours", rounded, provenance={"machine": {"kernel_path": "AVX2"}})
    verification = verify.verify(ours, reference)
    assert verification.failures == []
    assert len(verification.checks) == 7  # 6 results leaves + threshold; output_dir is a place
    assert "all 7 quantities in 1 results files agree" in verification.summary()


@pytest.mark.parametrize(("changed", "quantity"), [
    ({"mean_iou": 0.8815 * 0.97}, "06_negation/results/mean_iou"),
    ({"n": 39}, "06_negation/results/n"),
    ({"ious": [0.9, 0.5, 0.02]}, "06_negation/results/ious[2]"),
    ({"finding": "On mini, negation helps: 0.020 [0.008, 0.035] (n=40)."},
     "06_negation/results/finding"),
    ({"finding": "On mini, negation hurts: 0.050 [0.008, 0.035] (n=40)."},
     "06_negation/results/finding"),
])
def test_a_changed_result_is_named(tmp_path: Path, changed: dict, quantity: str) -> None:
    reference = write_run(tmp_path / "reference", RESULTS)
    ours = write_run(tmp_path / "ours", {**RESULTS, **changed})
    assert [check.quantity for check in verify.verify(ours, reference).failures] == [quantity]


def test_a_changed_parameter_is_named_beside_the_numbers_it_moved(tmp_path: Path) -> None:
    reference = write_run(tmp_path / "reference", RESULTS)
    ours = write_run(tmp_path / "ours", {**RESULTS, "mean_iou": 0.5}, parameters={"threshold": 0.4})
    failed = [(check.quantity, check.ours, check.theirs)
              for check in verify.verify(ours, reference).failures]
    assert failed == [("06_negation/parameters/threshold", 0.4, 0.5),
                      ("06_negation/results/mean_iou", 0.5, 0.8815)]


def test_a_missing_or_extra_quantity_fails(tmp_path: Path) -> None:
    reference = write_run(tmp_path / "reference", RESULTS)
    ours = write_run(tmp_path / "ours", {"mean_iou": 0.8815, "n": 40, "ious": [0.9, 0.5],
                                         "finding": RESULTS["finding"], "extra": 1})
    failed = [check.quantity for check in verify.verify(ours, reference).failures]
    assert failed == ["06_negation/results/ious[2]", "06_negation/results/extra"]


@pytest.mark.parametrize(("arrange", "message"), [
    (lambda ours: None, "no such folder"),
    (lambda ours: ours.mkdir(), "no results files"),
    (lambda ours: write_run(ours, RESULTS, provenance={"weights_sha256": "ab" * 32}),
     "different model: weights_sha256"),
    (lambda ours: write_run(ours, RESULTS, provenance={"dtype": "bfloat16"}),
     "dtype 'bfloat16' (ours) vs 'float32' (reference)"),
    (lambda ours: write_run(ours, RESULTS, name="99_other"), "99_other not in the reference"),
    (lambda ours: (ours.mkdir(), (ours / "x.json").write_text("{")), "x.json: not readable"),
])
def test_bad_input_is_refused_with_the_problem_named(tmp_path: Path, arrange, message: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    reference = write_run(tmp_path / "reference", RESULTS)
    arrange(tmp_path / "ours")
    assert cli.main(["verify", str(tmp_path / "ours"), "--against", str(reference)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_the_command_prints_the_differing_quantities_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    reference = write_run(tmp_path / "reference", RESULTS)
    ours = write_run(tmp_path / "ours", {**RESULTS, "mean_iou": 0.7})
    assert cli.main(["verify", str(ours), "--against", str(reference)]) == 1
    printed = capsys.readouterr().out
    assert "| 06_negation/results/mean_iou | 0.7 | 0.8815 | ±0.01 | NO |" in printed
    assert printed.splitlines()[-1] == (
        "verify: 1 of 7 quantities in 1 results files differ beyond their tolerance")
    write_run(ours, RESULTS)
    assert cli.main(["verify", str(ours), "--against", str(reference)]) == 0


def test_counts_and_words_are_exact_and_every_float_has_a_declared_tolerance() -> None:
    assert tolerance_for("06_negation/results/n", 40) is EXACT
    assert tolerance_for("06_negation/results/flag", True) is EXACT
    assert tolerance_for("06_negation/results/mean", 0.5) is TOLERANCES[-1]
    assert TOLERANCES[-1].pattern == "*" and all(t.why for t in TOLERANCES)


def test_verify_json_is_written_into_a_run_dir_only(tmp_path: Path) -> None:
    reference = write_run(tmp_path / "reference", RESULTS)
    loose = write_run(tmp_path / "loose", {**RESULTS, "n": 39})
    assert cli.main(["verify", str(loose), "--against", str(reference)]) == 1
    assert sorted(path.name for path in loose.iterdir()) == ["06_negation.json"]
    run = write_run(tmp_path / "run", {**RESULTS, "n": 39})
    (run / "run.json").write_text("{}")
    for _ in range(2):  # the second reads past the first's verify.json
        assert cli.main(["verify", str(run), "--against", str(reference)]) == 1
    record = json.loads((run / "verify.json").read_text())
    assert {key: record[key] for key in ("against", "quantities", "failed", "exit_status")} == {
        "against": str(reference), "quantities": 7, "failed": 1, "exit_status": 1}
    assert record["outcome"] == "1 of 7 quantities in 1 results files differ beyond their tolerance"
    assert not (run / "report").exists()
    other_model = write_run(tmp_path / "other", RESULTS, provenance={"model": "CIDAS/x"})
    (other_model / "run.json").write_text("{}")
    assert cli.main(["verify", str(other_model), "--against", str(reference)]) == 2
    record = json.loads((other_model / "verify.json").read_text())
    assert (record["quantities"], record["exit_status"]) == (0, 2)
    assert record["outcome"].startswith("not comparable: 06_negation: results of a different model")

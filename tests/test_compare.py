"""`clipseg-study compare`: two (or a grid of) fabricated runs side by side."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
from fabricated_runs import CLAIMS, fabricate_run

from clipseg_lib.cli import main as cli

pytestmark = pytest.mark.slow  # left out of `make test-fast`

WORD, LAYERS = (claim for claim, _ in CLAIMS)


def run_main(argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main([str(argument) for argument in argv])
    return code, stdout.getvalue(), stderr.getvalue()


def claim_rows(page: str) -> dict[str, str]:
    """Claim text -> its whole <tr> element."""
    return {re.search(r"<td>([^<]*)</td>", row).group(1): row
            for row in re.findall(r"<tr[^>]*>.*?</tr>", page, re.S) if "<td>" in row}


def test_a_claim_the_runs_disagree_on_is_marked_as_a_disagreement(tmp_path):
    mini = fabricate_run(tmp_path / "mini", seed=0, quick=False)
    other = fabricate_run(tmp_path / "seed1", seed=1, quick=False,
                          verdicts={WORD: "not reproduced", LAYERS: "reproduced"})
    code, stdout, stderr = run_main(["compare", mini, other, "--output", tmp_path / "out"])
    assert (code, stderr) == (0, "")
    page = (tmp_path / "out" / "compare.html").read_text()
    assert stdout == (f"the runs disagree on: {WORD}\n"
                      f"comparison: {tmp_path / 'out' / 'compare.html'}\n")
    rows = claim_rows(page)
    assert rows[WORD].startswith('<tr class="disagree">')
    assert 'class="verdict-reproduced"' in rows[WORD]
    assert 'class="verdict-not-reproduced"' in rows[WORD]
    assert rows[WORD].endswith('<td class="verdict disagree">disagreement</td></tr>')
    assert rows[LAYERS].startswith("<tr>") and rows[LAYERS].endswith("<td>agree</td></tr>")
    assert "mIoU 0.330 [0.280, 0.380] (n=16)" in rows[LAYERS]
    assert "The runs disagree on 1 of 2 claims." in page
    assert "<th>mini</th><th>seed1</th>" in page
    assert "not what the released CLIPSeg does; seed 1</li>" in page


def test_runs_in_folders_of_one_name_are_labelled_by_their_parent(tmp_path):
    first = fabricate_run(tmp_path / "a" / "results", seed=0)
    second = fabricate_run(tmp_path / "b" / "results", seed=1)
    code, _, stderr = run_main(["compare", first, second, "--output", tmp_path / "out"])
    assert (code, stderr) == (0, "")
    assert "<th>a/results</th><th>b/results</th>" in (tmp_path / "out" / "compare.html").read_text()


def test_runs_of_incompatible_parameters_are_refused(tmp_path):
    quick = fabricate_run(tmp_path / "quick", quick=True)
    full = fabricate_run(tmp_path / "full", quick=False)
    code, stdout, stderr = run_main(["compare", quick, full, "--output", tmp_path / "out"])
    assert code == 2 and stdout == ""
    assert stderr.startswith("clipseg-study: error: runs are not comparable: parameter quick "
                             "is True in quick, False in full;")
    assert stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_parameter_only_the_results_record_is_compared_too(tmp_path):
    first = fabricate_run(tmp_path / "a")
    second = fabricate_run(tmp_path / "b", seed=1)
    for run, threshold in ((first, 0.5), (second, 0.3)):
        payload = json.loads((run / "05_specific_word.json").read_text())
        payload["parameters"]["threshold"] = threshold
        (run / "05_specific_word.json").write_text(json.dumps(payload))
    code, _, stderr = run_main(["compare", first, second, "--output", tmp_path / "out"])
    assert code == 2
    assert "parameter 05_specific_word.threshold is 0.5 in a, 0.3 in b" in stderr
    assert stderr.endswith(", or name it with --vary threshold\n")


def test_vary_threshold_compares_one_study_at_two_mask_thresholds(tmp_path):
    # Issue 27, item 17: does any verdict flip between t = 0.5 and the paper's 0.3?
    runs = []
    for name, threshold, verdict in (("t05", 0.5, "reproduced"), ("t03", 0.3, "mixed")):
        run = fabricate_run(tmp_path / name, quick=False,
                            verdicts={WORD: verdict, LAYERS: "mixed"})
        payload = json.loads((run / "05_specific_word.json").read_text())
        payload["parameters"]["threshold"] = threshold
        (run / "05_specific_word.json").write_text(json.dumps(payload))
        runs.append(run)
    code, stdout, stderr = run_main(["compare", *runs, "--output", tmp_path / "out"])
    assert code == 2 and "or name it with --vary threshold" in stderr
    code, stdout, stderr = run_main(["compare", *runs, "--vary", "threshold",
                                     "--output", tmp_path / "out"])
    assert (code, stderr) == (0, "")
    assert stdout.startswith(f"the runs disagree on: {WORD}\n")


def test_a_failed_notebook_makes_its_claim_not_current_not_a_disagreement(tmp_path):
    ok = fabricate_run(tmp_path / "a", model="mini")
    failed = fabricate_run(tmp_path / "b", model="CIDAS/clipseg-rd64-refined",
                           failed=("05_specific_word",))
    assert run_main(["compare", ok, failed, "--output", tmp_path / "out"])[0] == 0
    page = (tmp_path / "out" / "compare.html").read_text()
    rows = claim_rows(page)
    assert "not current: 05_specific_word failed" in rows[WORD]
    assert rows[WORD].endswith("<td>agree</td></tr>")
    assert "Hugging Face checkpoint CIDAS/clipseg-rd64-refined" in page


def test_the_runs_of_a_grid_are_compared_cell_by_cell(tmp_path):
    grid = tmp_path / "grid"
    for seed in (0, 1, 2):
        fabricate_run(grid / f"seed={seed}", seed=seed, quick=False,
                      verdicts={WORD: "mixed" if seed == 2 else "reproduced", LAYERS: "mixed"})
    assert run_main(["compare", grid, "--output", tmp_path / "out"])[0] == 0
    page = (tmp_path / "out" / "compare.html").read_text()
    assert "<th>seed=0</th><th>seed=1</th><th>seed=2</th>" in page
    assert claim_rows(page)[WORD].startswith('<tr class="disagree">')


def test_bad_inputs_are_one_line_errors(tmp_path):
    run = fabricate_run(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    code, _, stderr = run_main(["compare", run, tmp_path / "empty", "--output", tmp_path / "o"])
    assert code == 2 and stderr == (f"clipseg-study: error: {tmp_path / 'empty'}: no run.json "
                                    "here or in its subfolders (not an output dir of "
                                    "clipseg-study run)\n")
    code, _, stderr = run_main(["compare", run, "--output", tmp_path / "o"])
    assert code == 2 and "need at least two runs to compare, got 1" in stderr
    other = fabricate_run(tmp_path / "other", seed=3)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "compare.html").write_text("my notes")
    code, _, stderr = run_main(["compare", run, other, "--output", tmp_path / "o"])
    assert code == 2 and "was not written by compare; use --force" in stderr
    assert (tmp_path / "o" / "compare.html").read_text() == "my notes"
    assert run_main(["compare", run, other, "--output", tmp_path / "o", "--force"])[0] == 0
    assert run_main(["compare", run, other, "--output", tmp_path / "o"])[0] == 0


def test_a_run_that_did_not_finish_is_refused(tmp_path):
    finished = fabricate_run(tmp_path / "finished", seed=0)
    failed = fabricate_run(tmp_path / "failed", seed=1)
    manifest = json.loads((failed / "run.json").read_text())
    (failed / "run.json").write_text(json.dumps({**manifest, "status": "failed"}))
    code, _, stderr = run_main(["compare", finished, failed, "--output", tmp_path / "out"])
    assert code == 2 and "failed: run.json says the run failed (a lost scheduler" in stderr
    assert not (tmp_path / "out").exists()


def test_quick_runs_show_no_verdicts_and_cannot_disagree(tmp_path):
    first = fabricate_run(tmp_path / "a", seed=0)
    second = fabricate_run(tmp_path / "b", seed=1, verdicts={WORD: "not reproduced",
                                                             LAYERS: "reproduced"})
    code, stdout, _ = run_main(["compare", first, second, "--output", tmp_path / "out"])
    assert code == 0 and stdout.startswith("the runs agree on every claim\n")
    page = (tmp_path / "out" / "compare.html").read_text()
    not_judged = ('<td class="verdict-not-judged">not judged: n = 4 per cell; the conclusion '
                  "needs 40</td>")
    assert claim_rows(page)[WORD].count(not_judged) == 2
    assert "reproduced" not in page.split("</style>")[1]
    assert "<img" not in page and not (tmp_path / "out" / "compare_forest_plot.svg").exists()


def test_full_runs_share_one_forest_plot_that_links_to_itself(tmp_path):
    first = fabricate_run(tmp_path / "a", seed=0, quick=False)
    second = fabricate_run(tmp_path / "b", seed=1, quick=False,
                           verdicts={WORD: "not reproduced", LAYERS: "reproduced"})
    assert run_main(["compare", first, second, "--output", tmp_path / "out"])[0] == 0
    page = (tmp_path / "out" / "compare.html").read_text()
    figures = re.findall(r'<figure class="forest"><a href="([^"]+)"><img src="([^"]+)" '
                         r'alt="([^"]+)"></a>', page)
    assert len(figures) == 1 and page.count("<img") == 1
    link, source, alt = figures[0]
    assert link == source == "compare_forest_plot.svg"
    assert (tmp_path / "out" / source).read_text().lstrip().startswith("<?xml")
    assert alt.startswith("Forest plot of the tests of 2 runs on one axis")
    assert f"a: {WORD} reproduced" in alt and f"b: {WORD} not reproduced" in alt
    assert page.index("<figure") < page.index('<table class="compare">')

"""The study report built from fabricated output directories: its front page shows the
conclusion, the caveat, a figure and a table per experiment, and never a stale result as current."""

from __future__ import annotations

import itertools
import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import html5lib
import pytest
from fabricated_runs import CLAIMS, age, fabricate_run, reference_run, write_executed

from clipseg_lib.cli import main as cli
from clipseg_lib.experiments.conclusion import VERDICT_COLOURS
from clipseg_lib.report.compare import compare_runs
from clipseg_lib.report.conclusion import summary_text
from clipseg_lib.report.html import format_value, main_table, rows_table
from clipseg_lib.report.model_description import describe_model
from clipseg_lib.report.pages import build_report
from clipseg_lib.study.run_records import conclusion_of, read_run

pytestmark = pytest.mark.slow  # left out of `make test-fast`


class Elements(HTMLParser):
    """Every start tag as (tag, attributes), and every table row's cell texts joined by " | "
    (a row of a table nested in a cell counts as its own row, and in its cell's text)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[str] = []
        self.image_links: list[tuple[str, str | None]] = []  # (img src, href of the link around)
        self._open_rows: list[list[list[str]]] = []
        self._links: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "a":
            self._links.append(dict(attrs).get("href"))
        elif tag == "img":
            self.image_links.append((dict(attrs)["src"], self._links[-1] if self._links else None))
        if tag == "tr":
            self._open_rows.append([])
        elif tag in ("td", "th") and self._open_rows:
            self._open_rows[-1].append([])

    def handle_endtag(self, tag):
        if tag == "a" and self._links:
            self._links.pop()
        if tag == "tr" and self._open_rows:
            row = self._open_rows.pop()
            self.rows.append(" | ".join(" ".join("".join(cell).split()) for cell in row))

    def handle_data(self, data):
        for row in self._open_rows:
            if row:
                row[-1].append(data)


def parse(path: Path) -> tuple[str, Elements]:
    text = path.read_text(encoding="utf-8")
    elements = Elements()
    elements.feed(text)
    return text, elements


def section(text: str, stem: str) -> str:
    start = text.index(f'<h2 id="{stem}">')
    return text[start:text.index("</section>", start)]


def test_front_page_holds_conclusion_caveat_and_one_figure_and_table_per_experiment(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=False,
                        verdicts={CLAIMS[0][0]: "reproduced", CLAIMS[1][0]: "not reproduced"})
    index = build_report(run)
    text, elements = parse(index)
    claim_rows = [row for row in elements.rows if row.startswith(("Fails", "Robust"))]
    assert claim_rows[0].startswith(
        "Fails to segment a specific word in the image (05) | mIoU against the control: "
        "-0.550 [-0.610, -0.490] against 0, n = 16. mIoU below the control; picked not shown "
        "above chance.Full evidence")
    assert claim_rows[0].endswith("| reproducedon mini | 16")
    assert re.search(r'class="verdict verdict-reproduced">reproduced', text)
    assert re.search(r'class="verdict verdict-not-reproduced">not reproduced', text)
    assert "Quick run" not in text
    caveat = text[text.index('class="box caveat"'):]
    assert "mini, the small model bundled with this repository" in caveat[:600]
    assert "pretrained CLIPSeg weights" not in text.replace("not CLIPSeg's pretrained weights", "")
    assert (index.parent / "model_card.html").is_file()
    assert "Model card: <code>mini</code>" in (index.parent / "model_card.html").read_text()
    for stem in ("04_extract_layers", "05_specific_word"):
        part = section(text, stem)
        figure = f"{stem}_figure.png"
        assert part.count(f'<a href="{figure}"><img src="{figure}" ') == 1
        assert (index.parent / figure).read_bytes() == (run / figure).read_bytes()
        assert "<table>" in part and f'href="{stem}.html"' in part
        assert (index.parent / f"{stem}.html").is_file()
        assert "Cases per condition: 16. Intervals are 95% over n = 16." in part
    extract = section(text, "04_extract_layers")
    assert "The poster's numbers" in extract
    assert "(3,6,9) | 0.88 | 0.94 | 0.797 | 0.967" in elements.rows
    assert "(5,7,8) | 0.56 | 0.87 | 0.00031 | 0.437" in elements.rows
    assert "0.800 [0.750, 0.850] n=16" in " ".join(elements.rows)


def test_the_forest_plot_comes_first_and_each_claim_has_a_headline_and_folded_evidence(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=False,
                        verdicts={CLAIMS[0][0]: "inconclusive", CLAIMS[1][0]: "not judged"})
    index = build_report(run)
    text, elements = parse(index)
    images = [attributes for tag, attributes in elements.tags if tag == "img"]
    forest = images[0]
    assert forest["src"] == "forest_plot.svg"
    assert forest["alt"].startswith("Forest plot of every claim's tests")
    assert "Robust to other extract layers: not judged (2 tests)" in forest["alt"]
    assert (index.parent / "forest_plot.svg").read_text().lstrip().startswith("<?xml")
    assert text.index('src="forest_plot.svg"') < text.index('<table class="claims">')
    claims = text[text.index('<table class="claims">'):text.index("</table>\n", text.index(
        '<table class="claims">'))]
    assert claims.count("<details><summary>Full evidence</summary>") == 2
    assert "<li><b>Control</b>: composite prompts 0.880</li>" in claims
    assert "(3,6,9): -0.030 [-0.045, -0.015] against -0.05, n = 16. Every change above -0.05." \
        in claims
    assert 'class="verdict verdict-inconclusive">inconclusive' in text
    assert 'class="verdict verdict-not-judged">not judged' in text
    style = text[text.index("<style>"):text.index("</style>")]
    assert ".verdict-inconclusive { background: #f9e7bf; border-left: 0.4rem solid #E69F00; }" \
        in style
    assert ".verdict-not-judged {" in style


def test_a_quick_run_shows_no_verdicts_but_says_why(tmp_path):
    index = build_report(fabricate_run(tmp_path / "run", quick=True))
    text, elements = parse(index)
    conclusion = text[text.index('<h2 id="conclusion">'):text.index('<aside class="box')]
    assert "Quick run: no verdicts.</b> n = 4 per cell; the conclusion needs 40." in conclusion
    assert 'class="claims"' not in text and "verdict-" not in text.split("</style>")[1]
    assert "forest_plot.svg" not in text and not (index.parent / "forest_plot.svg").exists()
    assert ("dt", {}) in elements.tags and "<dd>quick (a smoke test)</dd>" in text


def test_the_verdict_counts_read_as_a_sentence():
    summary = {"configuration_problems": {}, "verdicts": {
        "mixed": 1, "not measured": 0, "not reproduced": 1, "reproduced": 4}}
    assert summary_text(summary) == "Verdicts: 1 mixed, 1 not reproduced, 4 reproduced."
    assert summary_text({"configuration_problems": {"02_distorted_images": "seed 1 vs 0"}}) == (
        "Configuration problems: 02_distorted_images (seed 1 vs 0).")


class Cells(HTMLParser):
    """The text of every ``<td>``, links' targets beside it; ``shown``: what shows in each
    outermost cell before any ``<details>`` is opened."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.links: list[list[str]] = []
        self.shown: list[str] = []
        self._folded = 0
        self._open_cells = 0

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self.cells.append("")
            self.links.append([])
            self._open_cells += 1
            if self._open_cells == 1:
                self.shown.append("")
        elif tag == "a" and self.cells:
            self.links[-1].append(dict(attrs).get("href", ""))
        elif tag == "details":
            self._folded += 1

    def handle_endtag(self, tag):
        if tag == "td":
            self._open_cells -= 1
        elif tag == "details":
            self._folded -= 1

    def handle_data(self, data):
        if self.cells:
            self.cells[-1] += data
        if self._open_cells and not self._folded:
            self.shown[-1] += data


RAW_NUMBERS = re.compile(r"\[\s*-?[\d.e+-]+(\s*,\s*\[?\s*-?[\d.e+-]+\]?){4,}")


def test_no_table_cell_holds_raw_data_but_a_count_and_a_link_to_the_results(tmp_path):
    index = build_report(reference_run(tmp_path / "run"))
    cells = Cells()
    cells.feed(index.read_text(encoding="utf-8"))
    assert len(cells.cells) > 200
    assert [cell[:80] for cell in cells.cells if RAW_NUMBERS.search(cell)] == []
    assert max(len(cell) for cell in cells.shown) < 400
    assert not any("values" in cell or "points" in cell for cell in cells.shown)
    text = index.read_text(encoding="utf-8")
    assert ('<p class="note">Not in the table: images (iou_gt: 64 values; iou_vs_clean: 64 '
            'values); per_case (iou_gt: 64 values; iou_vs_clean: 64 values) per row, in '
            '<a href="../02_distorted_images.json">the results JSON</a>.</p>'
            in section(text, "02_distorted_images"))
    benchmarks = section(text, "12_benchmarks")
    assert ("curves (biniou: 49 values; fgiou: 49 values; miou: 49 values; "
            "thresholds: 49 values); pr_curve (49 points) per row" in benchmarks)


def test_the_front_page_names_the_run_model_settings_machine_and_versions(tmp_path):
    run = reference_run(tmp_path / "run", run_id="2026-12-04T05-00-mini")
    text = build_report(run).read_text(encoding="utf-8")
    box = text[text.index('<aside class="box provenance"'):text.index("</aside>")]
    entries = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", box))
    sha = json.loads((run / "05_specific_word.json").read_text())["provenance"]["weights_sha256"]
    assert entries == {
        "Run": "2026-12-04T05-00-mini", "Model": "mini", "Weights sha256": sha,
        "Data": "phrasecut, world", "Seed": "0", "dtype": "float32", "Threshold": "0.5",
        "n per claim": "64, 64, 40, 40, 40, 40", "Mode": "full",
        "Machine": "AMD EPYC (avx2 fma avx512f avx512_vnni avx512_bf16), AVX512 kernels, "
                   "2 threads",
        "Versions": "python 3.11.7, torch 2.13.0+cpu, transformers 5.25.0, numpy 2.4.6",
        "Verified": "not verified (clipseg-study verify compares a run with the reference)",
    }
    assert len(sha) == 64


def test_the_provenance_box_shows_what_verify_found_for_this_run_only(tmp_path, capsys):
    run = reference_run(tmp_path / "run")
    build_report(run)
    assert cli.main(["verify", str(run), "--against", str(run)]) == 0
    assert capsys.readouterr().out.endswith(f"report: {run / 'report' / 'index.html'}\n")
    record = json.loads((run / "verify.json").read_text())
    quantities = record["quantities"]  # every leaf of data/reference's 13 files: thousands
    assert (record["failed"], record["exit_status"]) == (0, 0) and quantities > 10_000
    text = (run / "report" / "index.html").read_text(encoding="utf-8")
    assert (f"<dt>Verified</dt><dd>exit 0: all {quantities:,} quantities in 13 results files "
            f"agree within their tolerances; against {run}, {record['verified_at']}</dd>") in text
    manifest = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**manifest, "run_id": "a later run"}))
    text = build_report(run).read_text(encoding="utf-8")
    assert ("<dt>Verified</dt><dd>not verified: the verify.json here is about an earlier run"
            "</dd>") in text
    assert text.index('id="conclusion"') < text.index('id="provenance"') < text.index("<nav>")


def test_every_page_parses_strictly_and_every_image_has_alt_text(tmp_path):
    index = build_report(reference_run(tmp_path / "run"))
    pages = sorted(index.parent.glob("*.html"))
    assert len(pages) == 15
    alts = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        html5lib.HTMLParser(strict=True).parse(text)
        elements = Elements()
        elements.feed(text)
        images = [attributes for tag, attributes in elements.tags if tag == "img"]
        assert all(image.get("alt") for image in images), page.name
        alts += [image["alt"] for image in images]
    assert "Figure 1 of 05 specific_word, after: The sweep, per distortion." in alts
    assert "Key figure of 05 specific_word (05_specific_word_figure.png)" in alts
    assert len(alts) == 1 + 13 + 13


def test_every_figure_links_to_its_own_file_beside_the_page(tmp_path):
    index = build_report(reference_run(tmp_path / "run"))
    links = []
    for page in sorted(index.parent.glob("*.html")):
        links += [(page, *link) for link in parse(page)[1].image_links]
    assert len(links) == 1 + 13 + 13
    for page, source, href in links:
        assert href == source, (page.name, source, href)
        assert not source.startswith("data:") and (page.parent / source).is_file()
    assert (index.parent / "05_specific_word_files" / "output_4_1.png").is_file()


def test_notebook_pages_are_titled_by_notebook_without_inputs_or_mid_word_wrapping(tmp_path):
    run = fabricate_run(tmp_path / "run")
    build_report(run)
    page = (run / "report" / "05_specific_word.html").read_text()
    assert "<title>05 specific_word</title>" in page
    assert "print(finding)" not in page and "A finding sentence" in page
    assert "word-break: normal" in page[page.rindex("word-break: break-all"):]
    assert "cdnjs" not in page and "<script src=" not in page


def test_a_notebook_that_failed_in_this_run_shows_no_older_numbers(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=False)
    fabricate_run(run, quick=False, failed=("05_specific_word",))
    text, elements = parse(build_report(run))
    part = section(text, "05_specific_word")
    assert "failed in this run</b>: ValueError: broke. No results shown." in part
    assert "<table>" not in part and "<img" not in part
    assert "left out: 05_specific_word.json: from an earlier run" in part
    word_claim = next(row for row in elements.rows if row.startswith("Fails to segment"))
    assert word_claim.endswith("| not current: 05_specific_word failed in this run")


def test_a_full_rerun_of_one_notebook_shows_no_quick_results_as_current(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=True)
    fabricate_run(run, quick=False, stems=("05_specific_word",))
    record = read_run(run)
    assert [(nb.stem, nb.status, bool(nb.results)) for nb in record.notebooks] == [
        ("04_extract_layers", "earlier", False), ("05_specific_word", "ok", True),
        ("10_conclusion", "earlier", True)]
    assert record.notebooks[0].left_out == [
        "04_extract_layers.json: n_cases 4 in that run vs 'its default' in this one"]
    text, elements = parse(build_report(run))
    assert "Quick run" not in text
    rows = {row.split(" (")[0].split(" |")[0]: row for row in elements.rows}
    assert rows[CLAIMS[0][0]].endswith(
        "| not current: drawn before 05_specific_word was re-run; re-run the conclusion")
    assert rows[CLAIMS[1][0]].endswith(
        "| not current: 04_extract_layers was not run with this run's parameters")


def test_results_of_another_configuration_are_left_out(tmp_path):
    quick = fabricate_run(tmp_path / "run", quick=True, run_id="20260105T141502Z-aaaaaa")
    full = fabricate_run(tmp_path / "full", quick=False, run_id="20260105T141502Z-aaaaaa")
    (quick / "04_extract_layers.json").write_bytes((full / "04_extract_layers.json").read_bytes())
    text, _ = parse(build_report(quick))
    part = section(text, "04_extract_layers")
    assert "n_cases 16 in the results vs 4" in part and "<table>" not in part
    assert "<img" not in part


def test_a_run_killed_mid_way_lists_no_deleted_page_as_ok(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=False)
    build_report(run)
    # what `clipseg-study run --notebooks 05` removes before it starts, then kill -9
    (run / "notebooks" / "05_specific_word.ipynb").unlink()
    (run / "report" / "05_specific_word.html").unlink()
    record = read_run(run)
    assert [nb.status for nb in record.notebooks] == ["ok", "interrupted", "ok"]
    text, elements = parse(build_report(run))
    assert "A later run in this directory did not finish" in text
    assert "05_specific_word.html" not in text
    assert "interrupted in this run" in section(text, "05_specific_word")
    assert "Quick run" not in text


def test_a_notebook_executed_again_after_the_run_is_not_the_runs(tmp_path):
    run = fabricate_run(tmp_path / "run")
    copied = read_run(run)
    for path in run.rglob("*"):  # file times say nothing: a copy moves them
        age(path, -30)
    assert [nb.status for nb in read_run(run).notebooks] == [nb.status for nb in copied.notebooks]
    # executed again by hand (no run id), then by a later run that was killed (another id)
    for run_id in (None, "20270101T000000Z-bbbbbb"):
        write_executed(run / "notebooks" / "04_extract_layers.ipynb", "04 again", time.time(),
                       run_id=run_id)
        record = read_run(run)
        assert record.notebooks[0].status == "interrupted" and not record.notebooks[0].results
        assert "04_extract_layers: executed again since this run" in record.interrupted


def test_files_from_before_run_ids_are_taken_as_one_run_whatever_their_times(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=False, run_id=None)
    for path in run.rglob("*.*"):
        age(path, 100)
    age(run / "04_extract_layers.json", 1000)  # older than its notebook: not judged by time
    record = read_run(run)
    assert [(nb.stem, nb.status, sorted(nb.results)) for nb in record.notebooks] == [
        ("04_extract_layers", "ok", ["04_extract_layers"]),
        ("05_specific_word", "ok", ["05_specific_word"]), ("10_conclusion", "ok", ["conclusion"])]
    assert all(claim.current for claim in conclusion_of(record).claims)


def test_run_ids_not_file_times_say_which_results_and_claims_are_current(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=False, run_id="20260105T141502Z-aaaaaa")
    fabricate_run(run, quick=False, stems=("05_specific_word",), run_id="20260106T090000Z-bbbbbb")
    for path in run.rglob("*.*"):  # times that say the opposite: the conclusion written last
        age(path, 100)
    age(run / "conclusion.json", 10)
    record = read_run(run)
    assert [(nb.stem, nb.status, sorted(nb.results)) for nb in record.notebooks] == [
        ("04_extract_layers", "earlier", ["04_extract_layers"]),
        ("05_specific_word", "ok", ["05_specific_word"]),
        ("10_conclusion", "earlier", ["conclusion"])]
    assert [(claim.current, claim.why) for claim in conclusion_of(record).claims] == [
        (False, "drawn before 05_specific_word was re-run; re-run the conclusion"), (True, "")]
    payload = json.loads((run / "05_specific_word.json").read_text())
    (run / "05_specific_word.json").write_text(json.dumps({**payload, "run_id": None}))
    assert read_run(run).notebooks[1].left_out == [
        "05_specific_word.json: written by a notebook executed outside a study run"]


@pytest.mark.parametrize(("model", "kind", "words"), [
    ("mini", "bundled", "not CLIPSeg's pretrained weights"),
    ("CIDAS/clipseg-rd64-refined", "hub", "Hugging Face checkpoint CIDAS/clipseg-rd64-refined"),
    ("rd64-uni-refined.pth", "original checkpoint", "original repository's decoder checkpoint"),
    ("random CLIPSeg ViT-B/16 rd64-refined", "random", "say nothing about CLIPSeg"),
    (None, "unknown", "unrecorded model"),
])
def test_the_model_is_described_as_what_it_is(model, kind, words):
    description = describe_model(model, "cd" * 32)
    assert description.kind == kind and words in description.sentence


def test_a_local_directory_is_never_called_pretrained_weights(tmp_path):
    (tmp_path / "README.md").write_text("# my model")
    description = describe_model(str(tmp_path), "cd" * 32)
    assert description.kind == "local directory"
    assert "pretrained" not in description.sentence and "cdcdcdcdcdcd" in description.sentence
    assert description.card_file == tmp_path / "README.md"


def test_tables_are_read_generically_with_intervals():
    results = {"other": [{"a": 1}], "sweep": [
        {"distortion": "blur", "severity": 1, "iou_gt": {"mean": 0.5, "n": 8, "ci_low": 0.4,
                                                         "ci_high": 0.6}, "note": None},
        {"distortion": "noise", "severity": 2, "rate": 0.25},
    ]}
    key, rows = main_table(results)
    assert key == "sweep"
    html = rows_table(rows)
    assert html.count("<tr>") == 3 and "<th>rate</th>" in html
    assert '0.500 <span class="ci">[0.400, 0.600]</span> <span class="n">n=8</span>' in html
    assert format_value(float("nan")) == "–" and format_value(None) == "–"
    assert format_value("Prompts <b>matter</b>") == "Prompts &lt;b&gt;matter&lt;/b&gt;"
    raw = rows_table([{"case": "a", "per_case": [0.1, 0.2, 0.3, 0.4, 0.5], "held": [1, 2]},
                      {"case": "b", "per_case": None, "held": [1, 2, 3, 4, 5, 6]}],
                     data_link="../x.json")
    assert "per_case" not in raw.split("</table>")[0]
    assert raw.endswith('<p class="note">Not in the table: per_case (5 values) per row, in '
                        '<a href="../x.json">the results JSON</a>.</p>')
    assert "<td>1, 2</td>" in raw and '<td>6 values <a href="../x.json">(JSON)</a></td>' in raw
    assert main_table({"summary": {"x": 1}}) is None
    assert main_table({"nested": {"rows": [{"b": 2}]}}) == ("nested.rows", [{"b": 2}])


def test_malformed_files_are_named_not_fatal(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=False)
    manifest = json.loads((run / "run.json").read_text())
    manifest["provenance"] = "garbled"
    (run / "run.json").write_text(json.dumps(manifest))
    payload = json.loads((run / "04_extract_layers.json").read_text())
    (run / "04_extract_layers.json").write_text(json.dumps({**payload, "results": [1, 2]}))
    payload = json.loads((run / "05_specific_word.json").read_text())
    (run / "05_specific_word.json").write_text(json.dumps({**payload, "provenance": None}))
    (run / "notebooks" / "10_conclusion.ipynb").write_text("{ half-written by a killed run")
    with pytest.warns(UserWarning, match="10_conclusion.ipynb"):
        text, _ = parse(build_report(run))
    assert "04_extract_layers.json: its &#x27;results&#x27; is not an object" in text
    assert "<table>" in section(text, "05_specific_word")
    assert "No conclusion from this run" in text
    assert "interrupted in this run" in section(text, "10_conclusion")


def test_a_notebook_the_runner_left_out_is_named_with_the_reason(tmp_path):
    run = fabricate_run(tmp_path / "run", quick=False)
    manifest = json.loads((run / "run.json").read_text())
    manifest["skipped"] = {"13_finetuning": "trains decoders; run it with --notebooks 13"}
    (run / "run.json").write_text(json.dumps(manifest))
    text, _ = parse(build_report(run))
    assert "Not run: 13_finetuning, which trains decoders; run it with --notebooks 13." in text


def test_a_hostile_model_card_reaches_the_report_without_script(tmp_path):
    model = tmp_path / "downloaded-model"
    model.mkdir()
    (model / "README.md").write_text(
        "# A fine model\n\nIt segments well.<script>alert('card')</script>\n\n"
        '<img src="x.png" onerror="alert(1)"> <a href="javascript:alert(2)">docs</a>\n'
        '<p onmouseover="alert(3)">hover</p>\n'
    )
    build_report(fabricate_run(tmp_path / "run", model=str(model)))
    card = (tmp_path / "run" / "report" / "model_card.html").read_text()
    assert "<h1>A fine model" in card and "It segments well." in card and "hover" in card
    for hostile in ("alert", "onerror", "onmouseover", "javascript:"):
        assert hostile not in card


def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb``."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two colours, 1 to 21."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_every_page_has_a_main_landmark_headings_in_order_and_readable_verdicts(tmp_path):
    assert round(contrast("#777777", "#ffffff"), 2) == 4.48  # WCAG's own borderline grey
    run = reference_run(tmp_path / "run")
    index = build_report(run)
    second = fabricate_run(tmp_path / "a", quick=False)
    compare_runs([fabricate_run(tmp_path / "b", quick=False, seed=1), second], tmp_path / "out")
    pages = [*sorted(index.parent.glob("*.html")), tmp_path / "out" / "compare.html"]
    for page in pages:
        _, elements = parse(page)
        tags = [tag for tag, _ in elements.tags]
        assert tags.count("main") == 1, page.name
        levels = [int(tag[1]) for tag in tags if re.fullmatch(r"h[1-6]", tag)]
        assert levels[0] == 1, page.name
        assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), (page.name, levels)
    text = index.read_text(encoding="utf-8")
    body_colour = re.search(r"body \{[^}]*?[^-]color: (#[0-9a-f]{6})", text).group(1)
    backgrounds = dict(re.findall(r"\.verdict-([a-z-]+) \{ background: (#[0-9a-f]{6})", text))
    assert len(backgrounds) == len(VERDICT_COLOURS) + 1  # and verdict-other
    ratios = {verdict: contrast(colour, body_colour) for verdict, colour in backgrounds.items()}
    assert min(ratios.values()) >= 4.5, ratios


def test_printing_opens_folded_evidence_and_keeps_table_rows_whole(tmp_path):
    text = build_report(fabricate_run(tmp_path / "run", quick=False)).read_text(encoding="utf-8")
    assert "<details>" in text
    start = text.index("@media print {")
    print_rules = text[start:text.index("\n}\n", start)]
    assert re.search(r"\btr\b[^{]*\{ break-inside: avoid; \}", print_rules)
    assert "details::details-content { content-visibility: visible; display: block; }" in (
        print_rules)
    assert ('addEventListener("beforeprint", () => document.querySelectorAll("details")'
            ".forEach(details => { details.open = true; }));") in text

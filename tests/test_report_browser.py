"""The study report opened in a real browser (Debian's chromium, driven by Playwright).

Checks a full run's forest plot and conclusion table and its verdict colours, or a quick run's
banner, that every figure loaded and shows at its own size, that no table is wider than the
window, that every link resolves (local files exist, anchors exist), that every notebook page
shows each of its notebook's figures loaded, with alt text, at its own size within the window,
and that the print style hides the navigation. By default three reports are built: a fabricated
full run, the reference results as a full run of the committed notebooks (their real figures),
and a fabricated quick run; REPORT_DIR=<a run's output dir> (e.g. results/ after `make quick`)
builds it from that run instead, in a copy under tmp_path. With UPDATE_SCREENSHOT=1 and
REPORT_DIR, the report's top is saved to docs/report.png for the README.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import matplotlib.pyplot as plt
import pytest
from fabricated_runs import CLAIMS, REFERENCE, fabricate_run, inline_pngs, reference_run

from clipseg_lib.analysis.plotting import save_figure
from clipseg_lib.experiments import mitigation_study
from clipseg_lib.report.pages import build_report
from clipseg_lib.study.run_records import conclusion_of, read_run

pytestmark = pytest.mark.slow  # left out of `make test-fast`

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "report.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(params=["full", "reference", "quick"])
def output_dir(request, tmp_path) -> Path:
    """A run's output dir under tmp_path: a copy of REPORT_DIR; else a fabricated full run,
    the reference results as a full run of the committed notebooks (its 09 figure saved as a
    notebook saves it, PNG and SVG), or a fabricated quick run."""
    source = os.environ.get("REPORT_DIR")
    if source:
        if request.param != "full":
            pytest.skip("REPORT_DIR is one run")
        return Path(shutil.copytree(source, tmp_path / "run", copy_function=shutil.copy2))
    if request.param == "reference":
        run = reference_run(tmp_path / "run", committed_notebooks=True)
        rows = json.loads((run / "09_mitigations.json").read_text())["results"]["rows"]
        figure = mitigation_study.before_after_figure(rows)
        save_figure(figure, run / "09_mitigations_figure.png")
        plt.close(figure)
        return run
    return fabricate_run(tmp_path / "run", quick=request.param == "quick",
                         verdicts={CLAIMS[0][0]: "reproduced", CLAIMS[1][0]: "not reproduced"})


def local_target(href: str, page_path: Path) -> Path | None:
    """The file a relative or file:// link points to, or None for web links and anchors."""
    parsed = urlparse(href)
    if parsed.scheme in ("http", "https") or href.startswith("#"):
        return None
    path = Path(unquote(parsed.path))
    return path if path.is_absolute() else page_path.parent / path


def check_quick_banner(page) -> None:
    """A quick run's front page: the banner above the fold, saying why there are no verdicts,
    and no forest plot or verdict."""
    banner = page.locator(".quick-banner")
    assert banner.is_visible() and banner.bounding_box()["y"] < VIEWPORT["height"]
    assert "no verdicts" in banner.inner_text() and "the conclusion needs" in banner.inner_text()
    assert page.locator("img[src='forest_plot.svg'], td.verdict").count() == 0


def check_conclusion(page, conclusion, current) -> None:
    """A full run's front page: the forest plot above the fold, a row per claim whose evidence
    opens, each current verdict coloured by what it says."""
    forest = page.locator("img[src='forest_plot.svg']")
    assert forest.get_attribute("alt").startswith("Forest plot")
    box = forest.bounding_box()
    assert forest.is_visible() and box["y"] < VIEWPORT["height"], box
    rows = page.locator("table.claims > tbody > tr")
    assert rows.count() == 1 + len(conclusion.claims)
    details = page.locator("table.claims details").first
    details.locator("summary").click()
    assert details.evaluate("d => d.open") and details.locator("table.tests").is_visible()
    verdicts = page.locator("table.claims td.verdict")
    assert verdicts.count() == len(current) > 0
    for position, claim in enumerate(current):
        cell = verdicts.nth(position)
        assert cell.inner_text().startswith(str(claim.claim["verdict"]))
    colours = {cell.get_attribute("class"): cell.evaluate(
        "c => getComputedStyle(c).backgroundColor") for cell in verdicts.all()}
    if len(colours) > 1:
        assert len(set(colours.values())) == len(colours), colours


def check_notebook_page(page, html: Path, executed: Path) -> int:
    """The notebook page `html`: one image per figure of the notebook `executed`, each loaded,
    with alt text, at its own size and within the window, which does not scroll sideways;
    return how many."""
    page.goto(html.as_uri())
    images = page.evaluate("""() => [...document.images].map(img => ({
        alt: img.alt, loaded: img.complete && img.naturalWidth > 0, width: img.width,
        natural: img.naturalWidth, right: img.getBoundingClientRect().right}))""")
    window = page.evaluate("document.documentElement.clientWidth")
    assert len(images) == inline_pngs(executed), html.name
    for image in images:
        assert image["loaded"] and image["alt"], (html.name, image)
        assert image["width"] >= 0.99 * image["natural"], (html.name, image)
        assert image["right"] <= window, (html.name, image)
    assert page.evaluate("document.documentElement.scrollWidth") <= window, html.name
    return len(images)


def test_the_report_reads_in_a_browser(output_dir, tmp_path, request):
    update = os.environ.get("UPDATE_SCREENSHOT") == "1"
    if update and not os.environ.get("REPORT_DIR"):
        pytest.fail("UPDATE_SCREENSHOT=1 needs REPORT_DIR=<a real run's output dir>: "
                    "a fabricated report must not go into the README")
    index = build_report(output_dir)
    run = read_run(output_dir)
    conclusion = conclusion_of(run)
    current = [claim for claim in conclusion.claims if claim.current] if conclusion else []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(index.as_uri())
            assert page.title() == "CLIPSeg study report"

            # every figure shown at its own size, so its 9 pt text stays 9 pt, and no table
            # wider than the window
            assert page.evaluate("""() => [...document.images]
                .filter(img => img.width < 0.99 * img.naturalWidth).map(img => img.alt)""") == []
            assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
            if run.quick:
                check_quick_banner(page)
            else:
                check_conclusion(page, conclusion, current)
            if (output_dir / "09_mitigations_figure.svg").is_file():
                assert page.locator("img[src='09_mitigations_figure.svg']").count() == 1
            assert "Every verdict here is about one model" in page.locator(".caveat").inner_text()

            images = page.locator("img")
            assert images.count() >= 3
            assert page.evaluate("() => [...document.images].filter(img => !img.alt).length") == 0
            broken = page.evaluate("""() => [...document.images]
                .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.alt)""")
            assert broken == []

            links = page.locator("a[href]").evaluate_all(
                "anchors => anchors.map(a => a.getAttribute('href'))")
            anchors = [href[1:] for href in links if href.startswith("#")]
            assert anchors and all(page.locator(f"[id='{anchor}']").count() == 1
                                   for anchor in anchors)
            files = [local_target(href, index) for href in links]
            files = [path for path in files if path is not None]
            assert len(files) >= 2 and [path for path in files if not path.is_file()] == []

            notebook_page = next(path for path in files
                                 if path.suffix == ".html" and path.stem[:2].isdigit())
            heading = page.locator(f"h2[id='{notebook_page.stem}']").inner_text()
            page.goto(notebook_page.as_uri())
            assert page.title() == heading
            assert page.locator(".jp-CodeCell .jp-InputArea").count() == 0
            text_output = page.locator(".jp-OutputArea-output pre").first
            assert text_output.evaluate("p => getComputedStyle(p).wordBreak") == "normal"
            notebook_pages = sorted({path for path in files
                                     if path.suffix == ".html" and path.stem[:2].isdigit()})
            assert {path.stem for path in notebook_pages} == {
                record.stem for record in run.notebooks
                if record.executed is not None and record.status != "interrupted"}
            shown = sum(check_notebook_page(page, html, output_dir / "notebooks" / f"{html.stem}"
                                            ".ipynb") for html in notebook_pages)
            if request.node.callspec.params["output_dir"] == "reference":  # the real figures
                assert shown == sum(file.endswith(".png") for path in REFERENCE.glob("*.json")
                                    for file in json.loads(path.read_text())["figures"])
            page.goto(index.as_uri())

            assert errors == []
            page.emulate_media(media="print")
            assert page.locator("nav").evaluate("n => getComputedStyle(n).display") == "none"
            page.emulate_media(media="screen")
            page.screenshot(path=str(tmp_path / "report.png"))
        finally:
            browser.close()
    if update:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "report.png", SCREENSHOT)

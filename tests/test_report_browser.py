"""The study report opened in a real browser (Debian's chromium, driven by Playwright).

Checks the conclusion table and its verdict colours, that every figure loaded, that every link
resolves (local files exist, anchors exist) and that the print style hides the navigation.
By default the report is built from fabricated results; REPORT_DIR=<a run's output dir> (e.g.
results/ after `make quick`) builds it from that run instead, in a copy under tmp_path. With
UPDATE_SCREENSHOT=1 and REPORT_DIR, the report's top is saved to docs/report.png for the README.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from fabricated_runs import CLAIMS, fabricate_run

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


@pytest.fixture
def output_dir(tmp_path) -> Path:
    """A run's output dir under tmp_path: a copy of REPORT_DIR, or a fabricated run."""
    source = os.environ.get("REPORT_DIR")
    if source:
        # copy2 keeps modification times, which decide what the report counts as current
        return Path(shutil.copytree(source, tmp_path / "run", copy_function=shutil.copy2))
    return fabricate_run(tmp_path / "run", quick=False, verdicts={CLAIMS[0][0]: "reproduced",
                                                     CLAIMS[1][0]: "not reproduced"})


def local_target(href: str, page_path: Path) -> Path | None:
    """The file a relative or file:// link points to, or None for web links and anchors."""
    parsed = urlparse(href)
    if parsed.scheme in ("http", "https") or href.startswith("#"):
        return None
    path = Path(unquote(parsed.path))
    return path if path.is_absolute() else page_path.parent / path


def test_the_report_reads_in_a_browser(output_dir, tmp_path):
    update = os.environ.get("UPDATE_SCREENSHOT") == "1"
    if update and not os.environ.get("REPORT_DIR"):
        pytest.fail("UPDATE_SCREENSHOT=1 needs REPORT_DIR=<a real run's output dir>: "
                    "a fabricated report must not go into the README")
    index = build_report(output_dir)
    conclusion = conclusion_of(read_run(output_dir))
    current = [claim for claim in conclusion.claims if claim.current]
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

            forest = page.locator("img[src='forest_plot.svg']")
            assert forest.get_attribute("alt").startswith("Forest plot")
            box = forest.bounding_box()
            assert forest.is_visible() and box["y"] < VIEWPORT["height"], box
            # shown at its own size, so its 9 pt text stays 9 pt
            assert forest.evaluate("img => img.width / img.naturalWidth") >= 0.99

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

"""The report validates: the front page of a full and of a quick run, a notebook page, the model
card and a compare page parse as strict HTML5 (html5lib: the W3C checker, vnu.jar, needs Java)
and keep the rules a parser does not check: one element per id, every in-page link lands, a
language, a character set and a title, alt text on every image, nothing fetched from a network."""

from __future__ import annotations

from pathlib import Path

import html5lib
import pytest
from fabricated_runs import CLAIMS, fabricate_run, reference_run
from html5lib.html5parser import ParseError

from clipseg_lib.report.compare import compare_runs
from clipseg_lib.report.pages import build_report

#: Elements whose attribute would fetch something when the page opens.
FETCHED = {"img": "src", "script": "src", "link": "href", "iframe": "src", "source": "src"}


def problems(text: str) -> list[str]:
    """What a validator would flag in the page ``text``; [] for a valid one."""
    try:
        html5lib.HTMLParser(strict=True).parse(text)
    except ParseError as error:
        return [f"not strict HTML5: {error}"]
    root = html5lib.parse(text, namespaceHTMLElements=False)
    elements = list(root.iter())
    found = []
    ids = [element.get("id") for element in elements if element.get("id")]
    found += [f"id {name!r} used {ids.count(name)} times" for name in sorted(set(ids))
              if ids.count(name) > 1]
    found += [f"link to missing #{href[1:]}" for element in elements
              if element.tag == "a" and (href := element.get("href") or "").startswith("#")
              and len(href) > 1 and href[1:] not in ids]
    if not root.get("lang"):
        found.append("no lang on <html>")
    if not any(element.tag == "meta" and element.get("charset", "").lower() == "utf-8"
               for element in elements):
        found.append("no <meta charset=utf-8>")
    if not any(element.tag == "title" and (element.text or "").strip() for element in elements):
        found.append("no title")
    found += [f"<img src={element.get('src')!r}> without alt" for element in elements
              if element.tag == "img" and not (element.get("alt") or "").strip()]
    fetched = [(element.tag, element.get(FETCHED[element.tag]) or "") for element in elements
               if element.tag in FETCHED]
    found += [f"<{tag}> fetches {source}" for tag, source in fetched
              if source.startswith(("http:", "https:", "//"))]
    return found


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    return build_report(reference_run(tmp_path_factory.mktemp("full") / "run")).parent


@pytest.mark.parametrize("page", ["index.html", "05_specific_word.html", "model_card.html"])
def test_a_full_runs_pages_validate(full_report, page):
    assert problems((full_report / page).read_text(encoding="utf-8")) == []


def test_a_quick_runs_front_page_and_a_compare_page_validate(tmp_path):
    quick = fabricate_run(tmp_path / "quick", quick=True)
    assert problems(build_report(quick).read_text(encoding="utf-8")) == []
    first = fabricate_run(tmp_path / "a", seed=0, quick=False)
    second = fabricate_run(tmp_path / "b", seed=1, quick=False,
                           verdicts={claim: "not reproduced" for claim, _ in CLAIMS})
    page, _ = compare_runs([first, second], tmp_path / "out")
    text = page.read_text(encoding="utf-8")
    assert "<img" in text and problems(text) == []


def test_the_checks_flag_what_a_validator_would():
    head = '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title></head>'
    assert problems(head + '<body><main><p id="a">x</p></main></body></html>') == []
    assert problems(head + "<body><main><p>x</span></main></body></html>")[0].startswith(
        "not strict HTML5")
    assert problems(head + '<body><p id="a"></p><p id="a"></p><a href="#b">b</a>'
                    '<img src="f.svg"><img src="https://cdn.example/x.png" alt="x"></body>'
                    "</html>") == [
        "id 'a' used 2 times", "link to missing #b", "<img src='f.svg'> without alt",
        "<img> fetches https://cdn.example/x.png"]
    assert problems("<!DOCTYPE html><html><head></head><body></body></html>") == [
        "no lang on <html>", "no <meta charset=utf-8>", "no title"]

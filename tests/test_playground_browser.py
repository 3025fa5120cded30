"""The playground notebook served by Voila and used in a real browser (Debian's chromium).

Types two prompts, clicks Run, and checks that the overlays shown differ from the plain image
exactly where the masks are; then swaps a prompt and checks that the displayed mask changed.
With UPDATE_SCREENSHOT=1 (and the trained `mini`) the screenshot is saved to
docs/playground.png for the README.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

pytestmark = pytest.mark.slow  # left out of `make test-fast`

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "11_playground.ipynb"
SCREENSHOT = REPO / "docs" / "playground.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]
VENV_BIN = Path(sys.executable).parent
SERVER_START_S = 120
#: Kernel start, imports and model load on a busy 2-core machine.
PAGE_READY_MS = 240_000
UPDATE_MS = 60_000
#: Reads an <img>'s (blob) source back as base64, to compare the pixels shown.
FETCH_IMAGE_JS = """async (img) => {
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let text = ""; for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}"""

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(server: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"voila exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"voila did not listen on port {port} within {SERVER_START_S} s")


@pytest.fixture
def voila_url(tmp_path) -> Iterator[str]:
    """Serve the playground notebook (its default model, mini) and yield its URL."""
    voila = VENV_BIN / "voila"
    if not voila.is_file():
        pytest.skip(f"{voila} is missing: install the project with its dependencies")
    port = free_port()
    log = tmp_path / "voila.log"
    # The venv first on PATH, so the notebook's "python3" kernel is the venv's interpreter.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [str(voila), str(NOTEBOOK), "--no-browser", f"--port={port}",
             "--Voila.ip=127.0.0.1"],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(server, port, log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.send_signal(signal.SIGTERM)  # voila shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def shown_pixels(image) -> np.ndarray:
    """The RGB pixels an <img> element shows, (H, W, 3) uint8."""
    content = base64.b64decode(image.evaluate(FETCH_IMAGE_JS))
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def shown_area(caption: str) -> float:
    return float(re.search(r"area ([0-9.]+)%", caption).group(1)) / 100


def test_typed_prompts_show_their_overlays_in_the_browser(voila_url, tmp_path):
    update = os.environ.get("UPDATE_SCREENSHOT") == "1"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(voila_url, timeout=PAGE_READY_MS)
            page.wait_for_selector(".clipseg-image img", timeout=PAGE_READY_MS)
            app = page.locator(".clipseg-playground")
            assert "Ready" in app.inner_text()
            hint = app.locator(".widget-html").first.inner_text()
            phrases = hint.removeprefix("In this scene: ").split(", ")
            assert len(phrases) >= 3, hint
            plain = shown_pixels(page.locator(".clipseg-image img"))

            app.locator("textarea").fill(f"{phrases[0]}\n{phrases[1]}")
            app.get_by_role("button", name="Run").click()
            page.wait_for_function(
                "document.querySelectorAll('.clipseg-overlay img').length == 2", timeout=UPDATE_MS
            )
            overlays = page.locator(".clipseg-overlay")
            first_mask = None
            for index, phrase in enumerate(phrases[:2]):
                caption = overlays.nth(index).inner_text()
                assert caption.startswith(phrase) and "presence" in caption
                shown = shown_pixels(overlays.nth(index).locator("img"))
                assert shown.shape == plain.shape
                # The overlay outlines the mask (an inner edge and a 1-pixel halo outside it):
                # filling the outline and peeling the halo off gives the mask back.
                outline = (shown != plain).any(axis=2)
                mask = ndimage.binary_erosion(ndimage.binary_fill_holes(outline))
                assert 0.0 < mask.mean() < 1.0
                assert mask.mean() == pytest.approx(shown_area(caption), abs=0.006)
                first_mask = mask if first_mask is None else first_mask
            assert "2 prompts on scene 1 (synthetic)" in app.inner_text()
            app.screenshot(path=str(tmp_path / "playground.png"))

            source = overlays.nth(0).locator("img").get_attribute("src")
            app.locator("textarea").fill(f"{phrases[2]}\n{phrases[1]}")
            app.get_by_role("button", name="Run").click()
            page.wait_for_function(
                """([before, phrase]) => {
                  const panel = document.querySelector('.clipseg-overlay');
                  return panel.querySelector('img').src != before
                    && panel.innerText.startsWith(phrase);
                }""",
                arg=[source, phrases[2]], timeout=UPDATE_MS,
            )
            swapped_mask = (shown_pixels(overlays.nth(0).locator("img")) != plain).any(axis=2)
            assert (swapped_mask != first_mask).mean() > 0.0
        finally:
            browser.close()
    if update:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "playground.png", SCREENSHOT)

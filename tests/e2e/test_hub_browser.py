"""A real browser (Debian's Chromium via Playwright) logs into the hub, opens a notebook and runs a
cell that starts a gateway cluster from eolab's options form, then opens the cluster's dashboard,
stops the cluster and shows a map whose tiles come through the hub's tile gate."""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path

import pytest

from eolab import hub
from eolab.testing.hub import running_demo_hub
from eolab.testing.stack import free_port_base

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install chromium)"),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
CELLS = [
    "import eolab.widgets\nform = eolab.widgets.options_widget()\nform.widget",
    "print('RESULT', form.client.submit(lambda: 6 * 7).result(), len(form.client.scheduler_info()['workers']))",
    "form.stop()\nprint('STOPPED', form.status.value)",
    "from eolab.widgets import AreaTimePicker\npicker = AreaTimePicker()\ndisplay(picker)",
]


PREFIX = "eolabb-"  # as root, demo mode runs login alice as system user eolabb-alice
AS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def browser_hub(catalog_stack, tmp_path_factory):
    base = free_port_base(width=9, start=15000)
    settings = hub.HubSettings(port=base, users=["alice"], max_worker_cores=1, system_user_prefix=PREFIX,
                               max_worker_memory=1.0)
    with running_demo_hub(catalog_stack, settings, "eolab-browser-",
                          run_dir=tmp_path_factory.mktemp("browser-hub-run")) as config:
        yield config, settings


def _home(config) -> tuple[Path, str]:
    """Alice's home and her hub name (as root: her own system account)."""
    if AS_ROOT:
        return Path(pwd.getpwnam(PREFIX + "alice").pw_dir), PREFIX + "alice"
    return hub.hub_dir(config) / "homes" / "alice", "alice"


def _notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
             for src in CELLS]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": cells, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}))


def test_browser_login_notebook_gateway_cell(browser_hub, playwright):
    # pytest-playwright's session-wide Playwright: a second sync_playwright() in the same process
    # (the other browser tests use its `page` fixture) would refuse to start.
    config, settings = browser_hub
    base = f"http://127.0.0.1:{settings.port}"
    home, _ = _home(config)
    _notebook(home / "browser-test.ipynb")
    if AS_ROOT:  # hers, as if she had uploaded it
        account = pwd.getpwnam(PREFIX + "alice")
        os.chown(home / "browser-test.ipynb", account.pw_uid, account.pw_gid)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    page = browser.new_context().new_page()
    net = []  # the tile and login traffic, kept for the failure report
    page.on("response", lambda r: net.append([r.status, r.url[:160], r.headers.get("location", "")[:160]])
            if "/services/tiles" in r.url or "oauth" in r.url or "/login" in r.url else None)
    page.on("requestfailed", lambda r: net.append(["failed", r.url[:160], r.failure]))
    try:
        _drive(page, base, config)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hub-browser-failure.png"), full_page=True)
        outputs = page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts()
        tiles = page.evaluate("() => [...document.querySelectorAll('img.leaflet-tile')].map("
                              "t => [t.src, t.complete, t.naturalWidth, t.className])")
        fetched = page.evaluate("async u => { try { const r = await fetch(u); return [r.status, r.url, "
                                "(await r.text()).slice(0, 500)]; } catch (e) { return String(e); } }",
                                tiles[0][0]) if tiles else None
        (ARTIFACTS / "hub-browser-failure.txt").write_text(json.dumps({"outputs": outputs, "tiles": tiles,
                                                                       "fetched": fetched, "net": net[:80]},
                                                                      indent=1))
        raise
    finally:
        browser.close()


def _run_cell(page, index: int) -> None:
    """Run one cell; a keypress sent while the kernel connects is dropped, so retry until it counts."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    for _ in range(5):
        cell.click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function("el => /\\[(\\*|\\d+)\\]/.test(el.textContent)", arg=prompt.element_handle(),
                                   timeout=5_000)
            return
        except Exception:  # noqa: BLE001 - not executed yet: press again
            continue
    raise AssertionError(f"cell {index} never started executing")


def _drive(page, base, config) -> None:
    page.route("**/*", lambda route: route.abort())  # registered first: everything not local is blocked
    page.route("http://127.0.0.1:*/**", lambda route: route.continue_())
    page.goto(f"{base}/hub/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", hub.credentials(config)["passwords"]["alice"])
    page.click("input[type=submit], button[type=submit]")
    name = _home(config)[1]
    page.wait_for_url(f"**/user/{name}/lab**", timeout=90_000)
    page.goto(f"{base}/user/{name}/lab/tree/browser-test.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=60_000)
    # Run the first cell: the form appears; start a cluster from it.
    _run_cell(page, 0)
    page.wait_for_selector(".eolab-compute-start button, button.eolab-compute-start", timeout=60_000)
    page.click("button.eolab-compute-start")
    status = page.wait_for_selector(".eolab-compute-status:has-text('running')", timeout=90_000)
    link = status.query_selector("a").get_attribute("href")
    assert "/services/dask-gateway/clusters/" in link
    # Second cell computes on that cluster.
    _run_cell(page, 1)
    page.wait_for_selector(".jp-OutputArea-output:has-text('RESULT 42 1')", timeout=60_000)
    # The dashboard link works in the user's browser (hub OAuth through the gate, owner only).
    dash = page.context.new_page()
    sockets = []
    dash.on("websocket", lambda ws: sockets.append(ws))
    response = dash.goto(f"{base}{link}" if link.startswith("/") else link)
    assert response.status == 200
    # What the user sees: Bokeh's plots drawn (canvases inside its shadow roots), fed over a websocket
    # through the gate that stays open and carries frames.
    dash.wait_for_selector("canvas", state="attached", timeout=60_000)
    ws = next(s for s in sockets if s.url.endswith("/ws") or "/ws?" in s.url)
    if not ws.is_closed():
        ws.wait_for_event("framereceived", timeout=30_000)
    assert not ws.is_closed(), "the dashboard's websocket was closed"
    drawn = dash.evaluate("""() => {
        const all = []; const walk = (root) => { for (const el of root.querySelectorAll('*')) {
            if (el.tagName === 'CANVAS') all.push(el); if (el.shadowRoot) walk(el.shadowRoot); } };
        walk(document); return all.filter(c => c.width > 50 && c.height > 50).length; }""")
    assert drawn > 0, "no Bokeh plot was drawn"
    dash.close()
    # Stopping the cluster from the notebook shows no error (the gate used to answer 500).
    _run_cell(page, 2)
    page.wait_for_selector(".jp-OutputArea-output:has-text('STOPPED Cluster stopped.')", timeout=60_000)
    outputs = page.locator(".jp-Notebook .jp-Cell").nth(2).inner_text()
    assert "Traceback" not in outputs and "500" not in outputs, outputs[-500:]
    # A map's base layer: the browser fetches tiles through the hub's /services/tiles (its login
    # decides; the tile service itself answers only the stack's account and token holders).
    _run_cell(page, 3)
    page.wait_for_selector(".eolab-map .leaflet-container", timeout=60_000)
    page.wait_for_function(
        "() => { const tiles = [...document.querySelectorAll('.eolab-map img.leaflet-tile')];"
        " return tiles.length > 0 && tiles.every(t => t.src.includes('/services/tiles/base/'))"
        " && tiles.every(t => t.complete && t.naturalWidth === 256"
        " && t.classList.contains('leaflet-tile-loaded')); }", timeout=60_000)
    # The stopped cluster's client, collected later, printed nothing into this cell.
    later = page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-OutputArea").inner_text()
    assert "Exception ignored" not in later and "Traceback" not in later, later[:500]

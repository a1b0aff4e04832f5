"""A parcel's evidence dossier opened from disk in chromium with every request that is not the file
itself blocked: nothing is requested, the chips and the series are drawn."""

from __future__ import annotations

import pytest

from tests.e2e._lab import HAVE_CHROMIUM
from tests.unit._cap_scene import DATES, make_scene

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120),
              pytest.mark.skipif(not HAVE_CHROMIUM, reason="no chromium: apt-get install -y chromium")]


def test_dossier_opens_offline(page, tmp_path):
    from eolab.analysis import dossier

    run, result, items = make_scene(tmp_path)
    path = dossier.write(run, result, items, "RED-1", tmp_path / "dossiers")
    url = path.resolve().as_uri()
    requested, blocked = [], []

    def guard(route):
        requested.append(route.request.url)
        if route.request.url == url or route.request.url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.goto(url)
    page.wait_for_load_state("load")
    assert blocked == [] and requested == [url]
    assert page.title() == "Parcel RED-1"
    sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
    assert {alt for alt, _, _ in sizes} == {f"{kind} {d}" for d in DATES for kind in ("true colour", "NDVI")}
    assert all(done and width > 0 for _, done, width in sizes)
    assert page.locator("svg polyline").count() >= 1
    assert "images look like soybean" in page.inner_text("body")

"""A Compare link copied from one browser opens the same view in another (a fresh context: no
cookies, no session), and a stale link opens the page with a note instead of an error.

Same server, browser and skip rules as tests/test_browser.py (Playwright + /usr/bin/chromium).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from tests import test_browser as tb

server = tb.server
pytestmark = tb.pytestmark


def selected(page, label: str) -> str:
    """The shown value of a selectbox (its text, or its input's value)."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    inputs = box.locator("input")
    value = inputs.first.input_value() if inputs.count() else ""
    return value or box.inner_text()


def view(page) -> dict:
    """What a Compare view shows: its two selected runs, the checked radio options and the
    titles of its charts."""
    runs = [selected(page, name) for name in ("run A", "run B", "fold")]
    checked = page.locator('[data-testid="stRadio"] input[type="radio"]:checked')
    radios = [
        checked.nth(i).locator("xpath=ancestor::label[1]").inner_text().strip() for i in range(checked.count())
    ]
    titles = page.locator(".js-plotly-plot .gtitle").all_inner_texts()
    return {"runs": runs, "radios": radios, "titles": titles}


def test_a_compare_link_opens_the_same_view_elsewhere(server, app_store):
    url = server["url"]
    with tb.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=tb.CHROMIUM, headless=True, args=tb.CHROMIUM_ARGS
        )
        first = browser.new_context(viewport={"width": 1280, "height": 800})
        page = first.new_page()
        try:
            tb.open_page(page, url, "compare", "Accuracy and discriminability")
            # a view other than the default (A baseline, B center loss): swapped, test points
            for label, run_id in (("run A", app_store.center), ("run B", app_store.baseline)):
                page.get_by_label(label).click()
                page.get_by_role("option", name=run_id, exact=False).first.click()
                tb.settle(page)
            page.locator('[data-testid="stRadio"]').filter(has_text="points").get_by_text(
                "test", exact=True
            ).click()
            tb.settle(page)
            page.wait_for_function("() => location.search.includes('points=test')")
            link = page.url
            query = parse_qs(urlparse(link).query)
            assert query["a"] == [app_store.center] and query["b"] == [app_store.baseline]
            assert query["points"] == ["test"]
            here = view(page)
            assert app_store.center in here["runs"][0] and "test" in here["radios"]

            second = browser.new_context(viewport={"width": 1280, "height": 800})
            other = second.new_page()
            other.goto(link)
            tb.expect(other.get_by_text("Accuracy and discriminability")).to_be_visible(
                timeout=120_000
            )
            tb.settle(other)
            assert view(other) == here
            assert parse_qs(urlparse(other.url).query) == query

            stale = second.new_page()
            stale.goto(f"{url}/compare?a=run-that-was-deleted&map=tsne")
            tb.expect(
                stale.get_by_text("This link was made for other runs or data", exact=False)
            ).to_be_visible(timeout=120_000)
            tb.settle(stale)
            assert stale.get_by_text("Accuracy and discriminability").is_visible()
            tb.shot(stale, "compare-stale-link")
        except Exception:
            tb.shot(page, "share-failure")
            raise
        finally:
            browser.close()

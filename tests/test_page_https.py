"""The page with HTTPS, in a real headless Chromium against a real lab: the HTTPS toggle,
what the balancer says it sees, a padlock on each encrypted hop, and the SNI name of real
TLS handshakes in the decision log."""

from __future__ import annotations

import pytest
from conftest import needs_chromium, wait_for, watched_page
from page_helpers import command

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
expect = sync_api.expect


def logged_sni(page, layer_7: bool) -> set[str]:
    """The SNI names in the decision log's rows of one layer: a request answered 200 at
    Layer 7; a connection at Layer 4 (kept alive: still open, or closed)."""
    rows = page.locator("#log li").filter(has=page.locator(".mark", has_text="200"))
    if not layer_7:
        rows = page.locator("#log li").filter(has_not=page.locator(".mark", has_text="200"))
    return set(rows.locator(".sni").all_text_contents())


def test_https_on_the_page_terminated_then_passed_through(chromium, lab_url):
    with watched_page(chromium, "https") as page:
        page.goto(lab_url)
        expect(page.locator("#connection")).to_have_text("connected")
        box = page.locator("#balancer")
        sees = box.locator('[data-part="balancer-sees"]')
        lock_in = box.locator('[data-part="lock-in"]')
        lock_out = box.locator('[data-part="lock-out"]')
        expect(sees).to_have_text("sees: method, path, headers")
        expect(lock_in).to_be_hidden()
        # The lab's CA, offered for download: what a client needs to trust the lab's HTTPS.
        ca = page.locator('[data-part="ca-link"]')
        pem = page.evaluate("(href) => fetch(href).then((r) => r.text())", ca.get_attribute("href"))
        assert pem.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" not in pem

        # Layer 7 with HTTPS: the balancer decrypts; the hop to the backends stays plain.
        page.get_by_label("HTTPS").check()
        expect(sees).to_have_text("sees: method, path, headers (it decrypts)")
        expect(box.locator('[data-part="balancer-mode"]')).to_have_text(
            "Layer 7 · HTTP requests · HTTPS"
        )
        expect(lock_in).to_be_visible()
        expect(lock_out).to_be_hidden()
        command(page, action="send", count=8)
        names = wait_for(
            lambda: logged_sni(page, layer_7=True), what="the SNI of real handshakes in the log"
        )
        assert names <= {"shop.lab.test", "api.lab.test"}

        # Switching to Layer 4 keeps HTTPS on: now passed through, locked end to end.
        page.get_by_label("L4 · TCP").check()
        expect(sees).to_have_text("sees: SNI name only")
        expect(lock_in).to_be_visible()
        expect(lock_out).to_be_visible()
        expect(box).to_have_class("balancer sealed")
        expect(page.get_by_label("HTTPS")).to_be_checked()
        command(page, action="send", count=8)
        names = wait_for(
            lambda: logged_sni(page, layer_7=False), what="passed-through connections' SNI"
        )
        assert names <= {"shop.lab.test", "api.lab.test"}
        # A rule on the server name, as the cards word it.
        pools = [{"name": "default", "backends": ["b1"]}, {"name": "api", "backends": ["b2", "b3"]}]
        rules = [{"name": "api", "sni": "api.lab.test", "pool": "api"}]
        command(page, action="configure", settings={"pools": pools, "rules": rules})
        expect(page.get_by_text("rule api (SNI api.lab.test)").first).to_be_visible()
        command(page, action="configure", settings={"pools": [], "rules": []})

        # And off again: no padlock, plain TCP.
        page.get_by_label("HTTPS").uncheck()
        expect(sees).to_have_text("sees: addresses and ports")
        expect(lock_in).to_be_hidden()
        expect(lock_out).to_be_hidden()
        expect(page.get_by_label("HTTPS")).not_to_be_checked()

"""Browser test: Debian's Chromium (Playwright) against a real `streamlit run` and a real OpenID provider.

sign in (OIDC) -> browse -> file a demand application -> (reviewer, separate sign-in) assess and
approve -> (operator admin) create the subscription and sign -> (unit admin) sign both agreements
-> subscription active -> credentials issued. Screenshots of the main pages go to
artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from domain.licensing import Subscription
from marketplace.bootstrap import build
from marketplace.config import Config
from tests.scenario import listed_product, qualified_unit, staff

ROOT = Path(__file__).resolve().parents[2]
OIDC_DIR = ROOT / "tests" / "e2e" / "oidc"
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
PRODUCT = "District water use"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("SHUYUN_BROWSER_TESTS", "1") == "0", reason="SHUYUN_BROWSER_TESTS=0"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/install-system-deps.sh installs it)")
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True)
    base = tmp_path_factory.mktemp("e2e")
    config = Config(data_dir=base / "data")
    mp = build(config)
    try:
        people = staff(mp)
        listed_product(mp, people, name=PRODUCT)
        listed_product(mp, people, name="District power use", plan=None)
        qualified_unit(mp, people)
    finally:
        mp.close()
    op_port, ui_port = free_port(), free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    (base / ".streamlit").mkdir()
    (base / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "{ui}/oauth2callback"\n'
        'cookie_secret = "e2e-cookie-secret-not-for-production"\n'
        'client_id = "shuyun"\n'
        'client_secret = "e2e-client-secret"\n'
        f'server_metadata_url = "http://127.0.0.1:{op_port}/.well-known/openid-configuration"\n'
        'client_kwargs = { prompt = "login" }\n'
    )
    oidc = subprocess.Popen(["node", str(OIDC_DIR / "provider.mjs"), str(op_port), "shuyun", "e2e-client-secret",
                             f"{ui}/oauth2callback"], cwd=OIDC_DIR, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    env = dict(os.environ, SHUYUN_DATA_DIR=str(config.data_dir), PYTHONPATH=str(ROOT))
    env.pop("SHUYUN_DATABASE_URL", None)
    app = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app" / "Home.py"),
         "--server.headless", "true", "--server.fileWatcherType", "none",
         "--server.address", "127.0.0.1", "--server.port", str(ui_port),
         "--browser.gatherUsageStats", "false"],
        cwd=base, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{op_port}/.well-known/openid-configuration")
        wait_http(f"{ui}/_stcore/health")
        yield {"ui": ui, "config": config}
    finally:
        stop(app)
        stop(oidc)


def test_art21_to_art23_browser_flow_with_openid_connect(stack: dict[str, object]) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    ui = str(stack["ui"])
    config = stack["config"]
    assert isinstance(config, Config)
    SHOTS.mkdir(parents=True, exist_ok=True)

    def shot(page: Page, name: str) -> None:
        page.wait_for_timeout(600)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def sign_in(page: Page, user: str, goto: str) -> None:
        page.context.clear_cookies()
        page.goto(f"{ui}/?page={goto}")
        page.get_by_role("button", name="Sign in").click()
        page.locator("input[name=login]").fill(user)
        page.locator("input[name=password]").fill("any")
        page.locator("button[type=submit]").click()
        consent = page.get_by_role("button", name="Continue")
        consent.wait_for(timeout=15_000)
        consent.click()
        page.wait_for_url(f"{ui}/**", timeout=20_000)
        expect(page.get_by_text("Signed in as")).to_be_visible(timeout=30_000)
        page.goto(f"{ui}/?page={goto}")
        expect(page.get_by_text("Signed in as")).to_be_visible(timeout=30_000)

    def form(page: Page, text: str):  # type: ignore[no-untyped-def]
        return page.locator('[data-testid="stForm"]').filter(has_text=text)

    def done(page: Page, message: str) -> None:
        expect(page.get_by_text(message).first).to_be_visible(timeout=30_000)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        # -- browse anonymously, then sign in as the unit's analyst
        page.goto(f"{ui}/?page=Storefront")
        expect(page.get_by_text("Baotou public data storefront")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=60_000)
        shot(page, "01-storefront")
        page.get_by_role("tab", name="Policy").click()
        shot(page, "02-product-policy")
        sign_in(page, "unit-analyst", "Unit+portal")
        page.locator('[data-testid="stMultiSelect"]').filter(has_text="Products (scope)").click()
        page.get_by_role("option", name=PRODUCT).click()
        page.keyboard.press("Escape")
        # the form re-renders with the product's fields: fill it only once that rerun is done
        expect(page.get_by_text(f"Fields of {PRODUCT}")).to_be_visible()
        page.wait_for_timeout(1000)
        apply = form(page, "Application scenario")
        apply.get_by_role("textbox", name="Application scenario", exact=True).fill(
            "Forecast water demand per district to plan crews")
        apply.get_by_role("textbox", name="Purpose", exact=True).fill("maintenance planning")
        apply.get_by_role("textbox", name="Security controls (one per line)", exact=True).fill(
            "results stay in the sandbox\nnamed analysts")
        shot(page, "03-unit-portal-apply")
        apply.get_by_role("button", name="File application").click()
        done(page, "Application filed")
        # -- the compliance reviewer assesses and approves (a separate sign-in)
        sign_in(page, "reviewer", "Operator+console")
        assess = form(page, "Risk assessment")
        assess.get_by_role("textbox", name="Assessment notes", exact=True).fill("district aggregates only")
        assess.get_by_role("button", name="Record assessment").click()
        done(page, "Risk assessed.")
        decide = form(page, "Decision (by someone other than the filer)")
        decide.get_by_role("textbox", name="Reason (recorded with the decision)", exact=True).fill(
            "purpose and controls adequate")
        decide.get_by_role("button", name="Decide").click()
        done(page, "Application decided.")
        shot(page, "04-operator-console")
        # -- the operator admin creates the subscription and signs for the operator
        sign_in(page, "admin", "Operator+console")
        create = form(page, "Create subscription")
        create.get_by_role("textbox", name="Plan id", exact=True).fill("basic")
        create.get_by_role("button", name="Create subscription").click()
        done(page, "Subscription created")
        page.get_by_role("button", name="Sign service agreement for the operator").click()
        done(page, "service agreement signed for the operator.")
        page.get_by_role("button", name="Sign confidentiality agreement for the operator").click()
        done(page, "confidentiality agreement signed for the operator.")
        page.get_by_role("tab", name="Audit trail").click()
        shot(page, "05-audit-trail")
        # -- the unit admin signs both agreements: the subscription becomes active
        sign_in(page, "unit-admin", "Unit+portal")
        page.get_by_role("tab", name="Subscriptions").click()
        page.get_by_role("button", name="Sign the service agreement").click()
        done(page, "service agreement signed.")
        page.get_by_role("tab", name="Subscriptions").click()
        page.get_by_role("button", name="Sign the confidentiality agreement").click()
        done(page, "confidentiality agreement signed.")
        page.get_by_role("tab", name="Subscriptions").click()
        expect(page.get_by_text("Queries left this month")).to_be_visible()
        shot(page, "06-unit-subscriptions")
        # -- credentials
        page.get_by_role("tab", name="Credentials & workspace").click()
        issue = form(page, "Issue credentials")
        issue.get_by_role("textbox", name="Label", exact=True).fill("analysis notebook")
        issue.locator('[data-testid="stMultiSelect"]').click()
        page.get_by_role("option").first.click()
        page.keyboard.press("Escape")
        issue.get_by_role("button", name="Issue credentials").click()
        done(page, "Client id")
        shot(page, "07-credentials-issued")
        # -- sign out
        page.get_by_role("button", name="Sign out").click()
        # Sign-out clears Streamlit's session cookie and visits the provider's end-session
        # endpoint; once it has, a fresh visit must show the signed-out storefront.
        signed_out = False
        for _ in range(10):
            page.wait_for_timeout(1500)
            page.goto(f"{ui}/?page=Storefront")
            try:
                expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=6_000)
            except AssertionError:
                continue
            signed_out = True
            break
        assert signed_out, "still signed in 45 s after signing out"
        browser.close()

    mp = build(config)
    try:
        unit = mp.parties.get(__import__("domain.parties", fromlist=["x"]).ApplicationUnit,
                              qualified_unit(mp, staff(mp)).id)
        subscriptions = [mp.licensing.get(Subscription, s) for s in unit.subscription_ids]
        assert [s.is_active for s in subscriptions] == [True]
    finally:
        mp.close()

"""The dashboard (/ui) and the API reference (/docs) in a real headless Chromium, against a real
API, worker and agents.

Chromium comes from the system (`apt-get install chromium`; CHROMIUM names
another binary); Playwright drives it without a browser download of its own. Without one these
tests skip, except with $CI set, where they fail: CI must not pass without having run them.

With UI_SCREENSHOTS=<dir>, the screenshot test writes the README's pictures there
(`python3 dev.py screenshots`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from agentfield_arq.core.credentials import Role
from tests.e2e.conftest import System, deployed
from tests.e2e.nodes import execution_fields, start_node
from tests.e2e.receiver import Plan, Receiver
from tests.keys import ADMIN_KEY, bearer

pytestmark = pytest.mark.e2e

REPORT = "orchestrator.generate_quarterly_report"
EXAMPLE_NODES = ("finance", "research", "analytics", "orchestrator")
# How long the browser waits for what the page shows (each expectation is bounded by it).
SHOWN_WITHIN_MS = 20_000
expect.set_options(timeout=SHOWN_WITHIN_MS)


def chromium() -> str:
    """The Chromium binary; without one, skip (fail in CI)."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if found is None:
        reason = "no chromium on PATH (apt-get install chromium, or set CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def ui_system(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API, a worker, the test agent and the example agents (for a run of four executions);
    webhooks to 127.0.0.1 allowed, retried briefly."""
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        agent_timeout_s=30,
        sweep_interval_s=1,
        worker_poll_delay_s=0.02,
        webhook_allowed_hosts="127.0.0.1",
        webhook_retry_schedule_s="0.2",
    ) as deployment:
        for node_id in EXAMPLE_NODES:
            start_node(deployment, node_id)
        yield deployment


@pytest.fixture(scope="module")
def caller_key(ui_system: System) -> str:
    return ui_system.issue_key(Role.CALLER)


@pytest.fixture(scope="module")
def browser(ui_system: System, caller_key: str) -> Iterator[Browser]:
    """Chromium, started after the keys are issued: Playwright's sync API runs an event loop of
    its own, where the harness's `asyncio.run` cannot."""
    executable = chromium()
    with sync_playwright() as playwright:
        # --no-sandbox: CI and these machines run the tests as root, where Chromium's sandbox
        # cannot start.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, ui_system: System) -> Iterator[Page]:
    """A fresh browser context (its own sessionStorage) that may reach only this API: a request
    anywhere else (a CDN) fails the test."""
    context = browser.new_context(
        base_url=ui_system.api_url, viewport={"width": 1280, "height": 860}
    )
    elsewhere: list[str] = []

    def only_ours(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(ui_system.api_url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            elsewhere.append(url)
            route.abort()  # type: ignore[attr-defined]

    context.route("**/*", only_ours)
    context.set_default_timeout(SHOWN_WITHIN_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert elsewhere == [], f"the page fetched from elsewhere: {elsewhere}"
    assert errors == [], f"the page's scripts failed: {errors}"


def log_in(page: Page, key: str = ADMIN_KEY, where: str = "") -> None:
    page.goto(f"/ui/{where}")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")


def row(page: Page, execution_id: str) -> Locator:
    return page.locator(f"tr[data-id='{execution_id}']")


def test_an_unknown_key_is_refused_with_a_clear_message(page: Page) -> None:
    log_in(page, "afk_" + "x" * 30)
    expect(page.locator("#login-error")).to_have_text(re.compile("refused"))
    expect(page.locator("#nav")).to_be_hidden()


def test_a_caller_key_sees_its_own_executions_live_and_no_operators_pages_or_buttons(
    page: Page, ui_system: System, caller_key: str
) -> None:
    as_caller = bearer(caller_key)
    theirs = ui_system.submit("e2e.echo")
    hang = ui_system.http.post(
        "/api/v1/execute/async/e2e.hang", json={"input": {}}, headers=as_caller
    )
    mine = hang.json()["execution_id"]
    log_in(page, caller_key)
    expect(page.locator("#who")).to_contain_text("(caller)")
    expect(page.locator("#nav a[href='#/']")).to_be_hidden()
    expect(page.locator("#nav a[href='#/webhooks']")).to_be_hidden()
    expect(page.locator("h1")).to_have_text("Executions")
    expect(row(page, mine)).to_be_visible()
    expect(row(page, theirs)).to_have_count(0)
    expect(page.locator("#live")).to_be_visible()
    echo = ui_system.http.post(
        "/api/v1/execute/async/e2e.echo", json={"input": {}}, headers=as_caller
    )
    expect(row(page, echo.json()["execution_id"]).locator(".badge")).to_have_text("succeeded")
    row(page, mine).locator("a").first.click()
    expect(page.locator("h1 code")).to_have_text(mine)
    expect(page.locator(".input details.json")).to_be_visible()
    expect(page.locator("#run")).to_contain_text("1 executions")
    page.click("button.cancel")
    expect(page.locator("td[data-field=status] .badge")).to_have_text("cancelled")
    expect(page.locator("button.retry")).to_be_visible()
    expect(page.locator("button.redrive-webhook")).to_have_count(0)


def test_a_caller_key_is_not_shown_another_keys_execution(
    page: Page, ui_system: System, caller_key: str
) -> None:
    theirs = ui_system.submit("e2e.echo")
    log_in(page, caller_key, where=f"#/executions/{theirs}")
    expect(page.locator("p.error")).to_contain_text("not found")


def test_the_overview_shows_workers_nodes_and_the_chart(page: Page) -> None:
    log_in(page)
    expect(page.locator("[data-metric=workers]")).to_have_text("1")
    expect(page.locator("[data-metric=nodes]")).to_have_text(str(len(EXAMPLE_NODES) + 1))
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("(admin)")


def test_the_chart_shows_the_executions_of_the_last_hour_on_first_load(
    page: Page, ui_system: System
) -> None:
    for _ in range(3):
        ui_system.wait(ui_system.submit("e2e.echo"))
    log_in(page)  # a fresh tab: nothing sampled before
    minutes = page.locator("svg.chart g[data-minute]")
    expect(minutes).to_have_count(60)
    totals = minutes.evaluate_all("gs => gs.map(g => Number(g.dataset.total))")
    assert sum(totals) >= 3, totals
    expect(page.locator("svg.chart rect.bar.succeeded").first).to_be_visible()


def test_a_new_execution_appears_and_turns_succeeded_without_a_reload(
    page: Page, ui_system: System
) -> None:
    log_in(page, where="#/executions")
    expect(page.locator("#live")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    execution_id = ui_system.submit("e2e.slow", {"input": {"s": 1.0}})
    status = page.locator(f"tr[data-id='{execution_id}'] .badge")
    expect(status).to_have_attribute("data-status", re.compile("queued|running"))
    expect(status).to_have_text("succeeded")
    assert page.evaluate("window.notReloaded") is True


def test_the_filters_narrow_the_table(page: Page, ui_system: System) -> None:
    echo = ui_system.wait(ui_system.submit("e2e.echo"))["execution_id"]
    failed = ui_system.wait(ui_system.submit("e2e.boom"))["execution_id"]
    log_in(page, where="#/executions")
    expect(page.locator(f"tr[data-id='{failed}']")).to_be_visible()
    page.fill("input[name=target]", "e2e.echo")
    page.click("form.filters button")
    expect(page.locator(f"tr[data-id='{echo}']")).to_be_visible()
    expect(page.locator(f"tr[data-id='{failed}']")).to_have_count(0)
    page.select_option("select[name=status]", "failed")
    page.fill("input[name=target]", "")
    page.click("form.filters button")
    expect(page.locator(f"tr[data-id='{failed}']")).to_be_visible()
    expect(page.locator(f"tr[data-id='{echo}']")).to_have_count(0)


def test_one_execution_shows_its_input_its_result_and_its_run_tree_links_to_the_others(
    page: Page, ui_system: System
) -> None:
    report = ui_system.wait(ui_system.submit(REPORT, {"input": {"quarter": "Q3"}}), 30)
    log_in(page, where=f"#/executions/{report['execution_id']}")
    expect(page.locator(".input details.json pre")).to_contain_text('"quarter": "Q3"')
    expect(page.locator(".result details.json summary")).to_contain_text("Result")
    expect(page.locator(".result details.json pre")).to_contain_text("revenue_growth_pct")
    children = page.locator("ul.tree ul.tree > li > a")
    expect(children).to_have_count(3)
    expect(page.locator("#run")).to_contain_text("4 executions")
    child = children.first.inner_text()
    children.first.click()
    expect(page.locator("h1 code")).to_have_text(child)
    expect(page.locator("ul.tree > li > a").first).to_have_text(report["execution_id"])


def test_a_large_input_is_cut_and_folded(page: Page, ui_system: System) -> None:
    execution_id = ui_system.submit("e2e.echo", {"input": {"blob": "x" * 50_000}})
    log_in(page, where=f"#/executions/{execution_id}")
    folded = page.locator(".input details.json")
    expect(folded.locator("summary")).to_contain_text("first 20000 shown")
    expect(folded).not_to_have_attribute("open", "")
    folded.locator("summary").click()
    text = folded.locator("pre").inner_text()
    assert 20_000 <= len(text) < 20_100


def test_the_timeline_is_the_stored_history_and_grows_with_callbacks_and_progress(
    page: Page, ui_system: System, receiver: Receiver
) -> None:
    url = receiver.plan("/timeline", Plan(then=200))
    execution_id = ui_system.submit("e2e.late", {"input": {}, "webhook": {"url": url}})
    ui_system.until(
        lambda: execution_fields(ui_system, execution_id).get("phase") == "awaiting_callback",
        f"{execution_id} to be accepted with 202",
    )
    log_in(page, where=f"#/executions/{execution_id}")
    steps = page.locator("ol.timeline li[data-kind=lifecycle]")
    expect(steps).to_have_count(3)  # queued, attempt 1 started, accepted: read back, not seen live
    expect(steps.nth(1)).to_contain_text("attempt 1 started")
    expect(steps.nth(2)).to_contain_text("waiting for its callback")
    callback = f"/api/v1/executions/{execution_id}/status"
    report = {"status": "running", "progress": {"pct": 40}, "message": "reading filings"}
    assert ui_system.http.post(callback, json=report).status_code == 200
    expect(page.locator("ol.timeline li[data-status=progress]")).to_contain_text("reading filings")
    done = {"status": "succeeded", "result": {"ok": True}}
    assert ui_system.http.post(callback, json=done).status_code == 200
    ui_system.until(
        lambda: ui_system.doc(execution_id).get("webhook_status") == "delivered",
        f"{execution_id}'s webhook to be delivered",
    )
    page.reload()
    expect(page.locator("ol.timeline li")).to_have_count(6)
    shown = page.locator("ol.timeline li").evaluate_all(
        "lis => lis.map(li => li.dataset.kind + ':' + li.dataset.status)"
    )
    assert shown == [
        "lifecycle:queued",
        "lifecycle:running",
        "lifecycle:accepted",
        "lifecycle:progress",
        "lifecycle:succeeded",
        "webhook:delivered",
    ], shown


def test_cancel_stops_a_running_execution(page: Page, ui_system: System) -> None:
    execution_id = ui_system.submit("e2e.hang")
    ui_system.until(
        lambda: ui_system.doc(execution_id)["status"] == "running", f"{execution_id} to start"
    )
    log_in(page, where=f"#/executions/{execution_id}")
    page.click("button.cancel")
    expect(page.locator("td[data-field=status] .badge")).to_have_text("cancelled")
    expect(page.locator("button.cancel")).to_have_count(0)
    assert ui_system.doc(execution_id)["status"] == "cancelled"


def test_a_dead_webhook_is_redriven_from_its_list(
    page: Page, ui_system: System, receiver: Receiver
) -> None:
    url = receiver.plan("/gone-then-back", Plan(statuses=[410], then=200))
    answer = ui_system.http.post(
        "/api/v1/execute/async/e2e.echo", json={"input": {}, "webhook": {"url": url}}
    )
    execution_id = answer.json()["execution_id"]
    ui_system.until(
        lambda: ui_system.doc(execution_id).get("webhook_status") == "failed",
        f"{execution_id}'s webhook to die",
    )
    log_in(page, where=f"#/executions/{execution_id}")
    expect(page.locator("button.redrive-webhook")).to_be_visible()  # an admin's
    page.goto("/ui/#/webhooks")
    page.click(f"tr[data-id='{execution_id}'] button.redrive")
    expect(page.locator("p.notice")).to_contain_text(execution_id)
    ui_system.until(
        lambda: ui_system.doc(execution_id).get("webhook_status") == "delivered",
        f"{execution_id}'s webhook to be delivered again",
    )
    assert len(receiver.requests("/gone-then-back")) == 2


def test_the_nodes_show_their_owner_and_lease(page: Page) -> None:
    log_in(page, where="#/nodes")
    finance = page.locator("tr[data-id=finance]")
    expect(finance.locator("td[data-field=owner]")).to_have_text(re.compile(r"^key_"))
    expect(finance.locator("td[data-field=lease]")).not_to_be_empty()


def test_the_api_reference_tries_a_route_with_the_dashboards_key(page: Page) -> None:
    log_in(page)
    expect(page.locator("#nav")).to_be_visible()
    page.goto("/docs/")
    operation = page.locator("#operations-default-get_api_v1_nodes")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("agentfield-arq")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    expect(operation.locator(".live-responses-table .response .response-col_status")).to_have_text(
        "200"
    )


def test_screenshots_of_each_page(
    page: Page, ui_system: System, receiver: Receiver, tmp_path: Path
) -> None:
    out = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    report = ui_system.wait(ui_system.submit(REPORT, {"input": {"quarter": "Q4"}}), 30)
    url = receiver.plan("/gone", Plan(then=410))
    answer = ui_system.http.post(
        "/api/v1/execute/async/e2e.echo", json={"input": {}, "webhook": {"url": url}}
    )
    dead = answer.json()["execution_id"]
    ui_system.until(
        lambda: ui_system.doc(dead).get("webhook_status") == "failed", f"{dead}'s webhook to die"
    )
    pages = {
        "login": ("", "form.login"),
        "overview": ("#/", "[data-metric=workers]"),
        "executions": ("#/executions", "table.executions tbody tr"),
        "execution": (f"#/executions/{report['execution_id']}", "ul.tree"),
        "webhooks": ("#/webhooks", "table.dead tr[data-id]"),
        "nodes": ("#/nodes", "table.nodes tr[data-id]"),
    }
    page.goto("/ui/")
    for name, (where, shown) in pages.items():
        if name == "overview":
            page.fill("input[name=key]", ADMIN_KEY)
            page.click("button[type=submit]")
        page.goto(f"/ui/{where}")
        expect(page.locator(shown).first).to_be_visible()
        page.screenshot(path=out / f"{name}.png", full_page=True)
    page.goto("/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_be_visible()
    page.screenshot(path=out / "docs.png")
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{n}.png" for n in [*pages, "docs"])

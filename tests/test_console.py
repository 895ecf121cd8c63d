"""The web console in headless Chromium (Debian's, driven by Playwright) against the real stack.

Known data goes in first, part of it straight into Arc at past hours, so the timeline chart has a known
number of bars; each test then signs in like a person and checks what the page shows. Screenshots of every
page land in tests/artifacts/console/ (gitignored).
"""

from __future__ import annotations

import math
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from memtrace.arc.encode import encode_rows
from memtrace.ids import memory_id
from memtrace.rows import MemoryRow
from tests.procs import REPO, ArcLite, MemtraceServer
from tests.provision import Tenant, add_key, provision

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("MEMTRACE_CONSOLE_SHOTS", REPO / "tests" / "artifacts" / "console"))
HOUR_US = 3_600_000_000
TIMEOUT_MS = 10_000


@dataclass
class Seeded:
    url: str
    acme: Tenant
    read_only: str
    no_arc: Tenant
    empty: Tenant  # bound to Arc, nothing written yet
    agent: str
    session: str
    bars: int
    error_bars: int
    needle_id: str
    forget_tag: str


def _row(org_id: str, agent: str, t_us: int, memory_type: str = "episodic", event_type: str = "general") -> MemoryRow:
    return MemoryRow(id=memory_id(t_us), time_us=t_us, org_id=org_id, agent_id=agent, session_id="",
                     memory_type=memory_type, event_type=event_type, content=f"past work at {t_us}",
                     metadata_json="{}", tags_csv="past", dedup_key=f"past{t_us}", importance=0.5, parent_id="")


def _hour(rfc3339: str) -> int:
    us = round(datetime.fromisoformat(rfc3339).timestamp() * 1_000_000)
    return us - us % HOUR_US


def _seed(url: str, arc: ArcLite, acme: Tenant) -> tuple[str, str, set[int], set[int], str, str]:
    agent, forget_tag = "crawler", f"forget{uuid.uuid4().hex[:6]}"
    now = time.time_ns() // 1000
    h0 = now - now % HOUR_US
    past = [_row(acme.org_id, agent, h0 - 50 * HOUR_US + 1), _row(acme.org_id, agent, h0 - 50 * HOUR_US + 2),
            _row(acme.org_id, agent, h0 - 26 * HOUR_US + 1, "decision"),
            _row(acme.org_id, agent, h0 - 26 * HOUR_US + 2, event_type="error"),
            _row(acme.org_id, agent, h0 - 3 * HOUR_US + 1, "entity")]
    resp = httpx.post(f"{arc.url}/api/v1/write/msgpack", content=encode_rows("events", past),
                      headers={"x-arc-database": acme.database, "content-type": "application/msgpack"})
    assert resp.status_code == 204, resp.text
    with httpx.Client(base_url=url, headers={"x-api-key": acme.key}, timeout=30) as api:
        assert api.post("/api/v1/agents", json={"name": agent, "description": "crawls the web"}).status_code == 201
        session = api.post("/api/v1/sessions", json={"agent_id": agent, "metadata": {"task": "crawl"}}).json()["id"]
        first = api.post("/api/v1/memories", json={"agent_id": agent, "session_id": session, "content": "started",
                                                   "metadata": {"url": "https://example.com"}}).json()
        items: list[dict[str, Any]] = [
            {"agent_id": agent, "session_id": session, "content": f"crawled page {i} " + "x" * 40,
             "importance": round(0.1 + (i % 9) / 10, 1), "tags": ["batch"], "parent_id": first["id"]}
            for i in range(30)
        ]
        items += [
            {"agent_id": agent, "session_id": session, "content": "the needle in the haystack",
             "tags": ["batch", "shiny"], "metadata": {"found_by": "search"}, "importance": 0.9,
             "parent_id": first["id"]},
            {"agent_id": agent, "session_id": session, "content": "Skip pagination", "memory_type": "decision",
             "event_type": "decision", "metadata": {"reasoning": "only 2 pages"}},
            {"agent_id": agent, "session_id": session, "content": "rate limited", "event_type": "error"},
            {"agent_id": agent, "content": "please forget me", "tags": [forget_tag]},
            {"agent_id": agent, "content": "forget me alone", "tags": [forget_tag + "b"]},
        ]
        created = api.post("/api/v1/memories", json={"memories": items}).json()["memories"]
    needle = next(m["id"] for m in created if m["content"].startswith("the needle"))
    bars = {r.time_us - r.time_us % HOUR_US for r in past} | {_hour(m["time"]) for m in [first, *created]}
    error_bars = {h0 - 26 * HOUR_US} | {_hour(m["time"]) for m in created if m["event_type"] == "error"}
    return agent, session, bars, error_bars, needle, forget_tag


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    base: Path = tmp_path_factory.mktemp("console")
    arc = ArcLite(base / "arc", extra=["--delete-enabled"])  # forgetting deletes from Arc
    try:
        data = base / "mt"
        data.mkdir()
        acme = provision(data / "memtrace.db", "acme", arc.url)
        read_only = add_key(data / "memtrace.db", acme.org_id, "viewer", "read")
        no_arc = provision(data / "memtrace.db", "lonely", None)
        empty = provision(data / "memtrace.db", "blank", arc.url)
        server = MemtraceServer(data)
        try:
            agent, session, bars, error_bars, needle, forget_tag = _seed(server.url, arc, acme)
            with httpx.Client(base_url=server.url, headers={"x-api-key": no_arc.key}) as api:
                assert api.post("/api/v1/agents", json={"name": "orphan"}).status_code == 201
            yield Seeded(server.url, acme, read_only, no_arc, empty, agent, session, len(bars), len(error_bars),
                         needle, forget_tag)
        finally:
            server.stop()
    finally:
        arc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    failures: list[str] = []
    tab.on("pageerror", lambda exc: failures.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert not failures, f"JavaScript errors: {failures}"


def sign_in(page: Page, s: Seeded, key: str, accepted: bool = True) -> None:
    page.goto(f"{s.url}/console")
    page.fill("#api-key", key)
    page.click("#sign-in button[type=submit]")
    if accepted:
        expect(page.locator("#nav")).to_be_visible()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_page_is_served_without_a_key_and_with_a_strict_policy(seeded: Seeded) -> None:
    resp = httpx.get(f"{seeded.url}/console")
    assert resp.status_code == 200 and "mtk_" not in resp.text
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert "http" not in resp.text.split("<body>")[1]  # every asset is local
    assert httpx.get(f"{seeded.url}/console/assets/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{seeded.url}/console/assets/nope.js").status_code == 404


def test_sign_in_agents_and_the_timeline_chart(seeded: Seeded, page: Page) -> None:
    sign_in(page, seeded, seeded.acme.key)
    row = page.locator(f"#agents tr[data-agent={seeded.agent}]")
    expect(row.locator("td[data-stat=memory_count]")).to_have_text("41")  # 5 in Arc + 36 through the API
    expect(row.locator("td[data-stat=session_count]")).to_have_text("1")
    assert page.evaluate("sessionStorage.getItem('memtrace.apiKey')") == seeded.acme.key
    shot(page, "agents")
    row.locator("a").click()
    expect(page.locator("#agent-name")).to_have_text(seeded.agent)
    expect(page.locator("svg.chart g.bar")).to_have_count(seeded.bars)
    expect(page.locator("svg.chart circle.err")).to_have_count(seeded.error_bars)
    expect(page.locator("#timeline-summary")).to_contain_text("41 memories, 2 errors")
    assert page.locator("svg.chart rect.t-decision").count() >= 2
    expect(page.locator("table.sessions tr[data-session]")).to_have_count(1)
    expect(page.locator("#agent-memories table.memories tbody tr")).to_have_count(20)
    shot(page, "agent")
    page.select_option("#range", "24h")
    expect(page.locator("svg.chart g.bar")).to_have_count(seeded.bars - 2)  # the 50 h and 26 h old bars leave


def test_filter_search_page_and_detail(seeded: Seeded, page: Page) -> None:
    sign_in(page, seeded, seeded.acme.key)
    page.goto(f"{seeded.url}/console#/memories")
    rows = page.locator("#results tbody tr")
    page.fill("#f-agent_id", seeded.agent)
    page.fill("#f-tags", "batch")
    page.fill("#f-since", "7d")
    page.click("#apply")
    expect(rows).to_have_count(25)
    page.click("#next")
    expect(rows).to_have_count(6)  # 31 memories tagged batch
    expect(page.locator("#page-info")).to_have_text(" 26–31 ")
    expect(page.locator("#next")).to_be_disabled()
    page.fill("#f-q", "NEEDLE")
    page.click("#f-type-episodic")
    page.click("#f-type-decision")  # a text: the browser searches by relevance (POST /api/v1/search with query)
    page.click("#apply")
    expect(rows).to_have_count(1)
    expect(page.locator("#results th").first).to_have_text("score")
    expect(page.locator("#results td.score")).to_have_count(1)
    rows.first.click()
    detail = page.locator("#detail section.detail")
    expect(detail).to_have_attribute("data-id", seeded.needle_id)
    expect(page.locator("#metadata")).to_contain_text('"found_by": "search"')
    expect(detail).to_contain_text("shiny")
    expect(detail).to_contain_text("0.9")
    shot(page, "memories")
    detail.locator("a", has_text="mem_").click()  # the parent
    expect(page.locator("#metadata")).to_contain_text("https://example.com")
    page.fill("#f-q", "")
    page.fill("#f-tags", "")
    page.click("#f-type-episodic")
    page.click("#apply")
    expect(rows).to_have_count(2)  # decisions only: one from Arc, one through the API


def test_context_preview_at_two_budgets_and_close(seeded: Seeded, page: Page) -> None:
    sign_in(page, seeded, seeded.acme.key)
    page.goto(f"{seeded.url}/console#/sessions/{seeded.session}")
    with httpx.Client(base_url=seeded.url, headers={"x-api-key": seeded.acme.key}) as api:
        full = api.post(f"/api/v1/sessions/{seeded.session}/context", json={}).json()
        small = api.post(f"/api/v1/sessions/{seeded.session}/context", json={"max_tokens": 120}).json()
    context = page.locator("pre.context")
    expect(page.locator("#context-summary")).to_contain_text("nothing dropped")
    assert context.inner_text().rstrip("\n") == full["context"]
    page.fill("#max-tokens", "120")
    page.click("#preview")
    expect(page.locator("#context-summary")).to_contain_text(f"{small['omitted']} lines dropped to fit 120 tokens")
    assert small["truncated"] and small["omitted"] > 0
    assert context.inner_text().rstrip("\n") == small["context"]
    assert page.locator("pre.context span.dropped").count() >= 1
    expect(page.locator("#session-timeline svg.chart g.bar")).not_to_have_count(0)
    shot(page, "session")
    page.click("#close-session")
    expect(page.locator("#session-status")).to_have_text("closed")


def test_a_bad_key_is_refused_clearly(seeded: Seeded, page: Page) -> None:
    sign_in(page, seeded, "mtk_not_a_real_key", accepted=False)
    expect(page.locator("#error")).to_contain_text("The API key was refused (401")
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('memtrace.apiKey')") is None
    shot(page, "bad-key")


def test_a_read_only_key_cannot_close_a_session(seeded: Seeded, page: Page) -> None:
    with httpx.Client(base_url=seeded.url, headers={"x-api-key": seeded.acme.key}) as api:
        session = api.post("/api/v1/sessions", json={"agent_id": seeded.agent}).json()["id"]
    sign_in(page, seeded, seeded.read_only)
    page.goto(f"{seeded.url}/console#/sessions/{session}")
    page.click("#close-session")
    expect(page.locator("#error")).to_contain_text("(403: this API key lacks the 'write' permission)")
    expect(page.locator("#session-status")).to_have_text("active")
    shot(page, "read-only")


def test_an_org_without_arc_shows_the_hint(seeded: Seeded, page: Page) -> None:
    sign_in(page, seeded, seeded.no_arc.key)
    expect(page.locator("#agents tr[data-agent=orphan]")).to_be_visible()  # agents live in SQLite
    expect(page.locator("#error")).to_contain_text("This org has no Arc instance yet (503")
    expect(page.locator("#error")).to_contain_text("Hint: run:")
    shot(page, "no-arc")


def test_forget_with_a_dry_run_and_a_confirmation(seeded: Seeded, page: Page) -> None:
    """Forget from the memory browser: a dry-run count first, then a confirmation; read-only keys are refused."""
    sign_in(page, seeded, seeded.read_only)
    page.goto(f"{seeded.url}/console#/memories")
    page.fill("#f-tags", seeded.forget_tag)
    page.click("#apply")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    page.click("#forget-matching")
    # the read-only key may not forget: refused at the dry run, or at the latest when confirmed
    refused = page.locator("#error", has_text="(403:")
    expect(refused.or_(page.locator("#forget-count"))).to_be_visible()
    if not refused.is_visible():
        page.click("#forget-confirm")
        expect(refused).to_be_visible()
    page.click("#sign-out")
    sign_in(page, seeded, seeded.acme.key)
    page.goto(f"{seeded.url}/console#/memories")
    page.fill("#f-tags", seeded.forget_tag)
    page.click("#apply")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    page.click("#forget-matching")
    expect(page.locator("#forget-count")).to_have_text("1 memory matches these filters. Forget it for good?")
    shot(page, "forget-confirm")
    page.click("#forget-confirm")
    expect(page.locator("#forget-done")).to_have_text("Forgot 1 memory.")
    expect(page.locator("#results")).to_have_text("No memories.")
    page.fill("#f-tags", seeded.forget_tag + "b")
    page.click("#apply")
    page.locator("#results tbody tr").first.click()
    page.click("#forget-one")
    page.click("#forget-one-confirm")  # DELETE /api/v1/memories/{id}
    expect(page.locator("#results")).to_have_text("No memories.")
    expect(page.locator("#error")).to_be_hidden()


# --- the first hour: what a new user sees --------------------------------------------------------------------


def test_nav_and_sign_out_are_hidden_until_signed_in(seeded: Seeded, page: Page) -> None:
    page.goto(f"{seeded.url}/console")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("#sign-out")).to_be_hidden()
    shot(page, "sign-in")
    sign_in(page, seeded, seeded.acme.key)
    expect(page.locator("#sign-out")).to_be_visible()
    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()


def _lines(page: Page, selector: str) -> int:
    """How many lines the first element matching `selector` wraps its text on."""
    return int(page.eval_on_selector(selector, "el => { const r = document.createRange(); r.selectNodeContents(el);"
                                               " return r.getClientRects().length; }"))


def _width(page: Page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return float(box["width"])


def test_the_memories_table_takes_the_width_until_a_detail_opens(seeded: Seeded, page: Page) -> None:
    sign_in(page, seeded, seeded.acme.key)
    page.goto(f"{seeded.url}/console#/memories?agent_id={seeded.agent}")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(25)
    split = _width(page, "div.split")
    assert _width(page, "#results table.memories") > 0.95 * split  # no empty 40 % column for a detail
    assert _lines(page, "#results tbody tr td:first-child") == 1  # the time on one line
    shot(page, "memories-wide")
    rows.first.click()
    expect(page.locator("#detail section.detail")).to_be_visible()
    assert _width(page, "#results table.memories") < 0.7 * split  # the detail takes its column
    assert _lines(page, "#results tbody tr td:first-child") == 1
    shot(page, "memories-detail")


def test_counts_read_in_the_right_number(seeded: Seeded, page: Page) -> None:
    agent = f"single{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=seeded.url, headers={"x-api-key": seeded.acme.key}) as api:
        assert api.post("/api/v1/agents", json={"name": agent}).status_code == 201
        assert api.post("/api/v1/memories", json={"agent_id": agent, "content": "one failure",
                                                  "event_type": "error"}).status_code == 201
    sign_in(page, seeded, seeded.acme.key)
    page.goto(f"{seeded.url}/console#/agents/{agent}")
    expect(page.locator("#timeline-summary")).to_have_text("1 memory, 1 error in 1 bucket of 1h")
    shot(page, "agent-single")


def test_a_budget_below_the_headers_says_so(seeded: Seeded, page: Page) -> None:
    with httpx.Client(base_url=seeded.url, headers={"x-api-key": seeded.acme.key}) as api:
        tiny = api.post(f"/api/v1/sessions/{seeded.session}/context", json={"max_tokens": 40}).json()
    tokens = math.ceil(len(tiny["context"]) / 4)
    assert tiny["truncated"] and tokens > 40  # every line dropped, the headers alone still over the budget
    sign_in(page, seeded, seeded.acme.key)
    page.goto(f"{seeded.url}/console#/sessions/{seeded.session}")
    expect(page.locator("#context-summary")).to_contain_text("nothing dropped")
    page.fill("#max-tokens", "40")
    page.click("#preview")
    summary = page.locator("#context-summary")
    expect(summary).to_contain_text(f"{tiny['omitted']} lines dropped: the headers alone (about {tokens} tokens)"
                                    " exceed the budget of 40 tokens")
    expect(summary).not_to_contain_text("to fit")
    shot(page, "context-tiny-budget")


def test_an_empty_org_shows_how_to_write_the_first_memory(seeded: Seeded, page: Page) -> None:
    sign_in(page, seeded, seeded.empty.key)
    hint = page.locator("#first-memory pre")
    expect(hint).to_contain_text(f"curl -s -X POST {seeded.url}/api/v1/memories")
    expect(hint).to_contain_text('-H "x-api-key: $MTK"')
    assert seeded.empty.key not in page.content()  # a placeholder, never the secret
    shot(page, "empty-org")
    # The command works as shown, once $MTK holds the key.
    command = hint.inner_text().split("\n", 1)[1]
    done = subprocess.run(["sh", "-c", command], env={**os.environ, "MTK": seeded.empty.key}, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and '"id":"mem_' in done.stdout.replace(" ", ""), (done.stdout, done.stderr)
    page.reload()
    expect(page.locator("h2", has_text="Agents")).to_be_visible()
    expect(page.locator("#first-memory")).to_have_count(0)  # the org has a memory now


def test_a_page_that_fails_to_load_does_not_stay_loading(seeded: Seeded, page: Page) -> None:
    sign_in(page, seeded, seeded.acme.key)
    page.goto(f"{seeded.url}/console#/sessions/sess_nope")
    expect(page.locator("#error")).to_contain_text("(404)")
    expect(page.locator("#nothing")).to_be_visible()
    expect(page.locator("#main")).not_to_contain_text("Loading")
    shot(page, "not-found")

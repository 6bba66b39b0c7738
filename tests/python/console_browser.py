"""The console in a real headless Chromium, against a running `rapport up`.

Signs in, visits every page, and checks what people would see: no failed request, no request
off the machine, no console error; the at-risk list equals `rapport top-risk`; the customers
table's filters (band, stage, P(alive), RFM and custom segment) and its open-alert counts equal
the CLI's; a customer's contributions and their data's freshness equal ExplainHealth's, its
recent events ingestion's; acknowledging an alert and recording an intervention in the page
show in `rapport alerts show` and on the customer's page with the person's name; a new alert
appears on an open Alerts page without a reload.
Screenshots of every page go to SHOTS_DIR. Exits non-zero on any failure.

With MODE "look" it only looks (every page, the lists against the CLI and ExplainHealth), for a
platform whose data it must not change, such as a full CDNOW import.

usage: console_browser.py CONSOLE_URL SCORING_ADDR INGESTION_ADDR API_KEY RAPPORT_BIN WORK_DIR PROTO_DIR
       SHOTS_DIR [MODE]
"""

import datetime
import json
import pathlib
import subprocess
import sys
import time
import urllib.parse

import grpc
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from client import generate  # noqa: E402

PERSON = "Dana Ross"


def cli(rapport: str, work: str, *args: str) -> str:
    out = subprocess.run([rapport, *args], cwd=work, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"rapport {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def main() -> None:
    console, scoring_addr, ingestion_addr, api_key, rapport, work, proto_dir, shots = sys.argv[1:9]
    look_only = sys.argv[9:10] == ["look"]
    shots_dir = pathlib.Path(shots)
    shots_dir.mkdir(parents=True, exist_ok=True)
    generate(pathlib.Path(proto_dir), shots_dir / "stubs")
    from rapport.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
    from rapport.scoring.v1 import scoring_pb2, scoring_pb2_grpc

    auth = [("authorization", f"Bearer {api_key}")]

    host = urllib.parse.urlparse(console).netloc
    problems: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            # Leaving the Alerts page closes its live feed: that one is aborted, not failed.
            lambda r: ("/alerts/events" in r.url and "ERR_ABORTED" in (r.failure or ""))
            or problems.append(f"failed request: {r.url} {r.failure}"),
        )
        page.on(
            "request",
            lambda r: urllib.parse.urlparse(r.url).netloc not in (host, "")
            and problems.append(f"request off the machine: {r.url}"),
        )
        page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))

        # A loaded machine (the suite runs tests side by side) can be slow to draw a long page.
        page.set_default_timeout(90_000)

        def visit(path: str, shot: str) -> None:
            page.goto(console + path)
            page.wait_for_load_state("networkidle")
            # A large book's pages are long: their first screenful says enough.
            page.screenshot(path=str(shots_dir / f"{shot}.png"), full_page=not look_only)

        # Nobody signed in: the pages send people to sign in.
        page.goto(console + "/")
        assert page.url.endswith("/signin"), page.url
        page.screenshot(path=str(shots_dir / "signin.png"))
        page.fill("input[name=name]", PERSON)
        page.fill("input[name=key]", api_key)
        page.click("button[type=submit]")
        page.wait_for_url(console + "/")
        assert PERSON in page.inner_text("header"), page.inner_text("header")

        # My book: the at-risk list is `rapport top-risk`, in its order.
        visit("/", "book")
        shown = page.eval_on_selector_all("#at-risk tbody tr", "rows => rows.map(r => r.dataset.customer)")
        top_json = json.loads(cli(rapport, work, "top-risk", "--json"))
        top = [h["customer_id"] for h in top_json]
        assert shown == top, f"at risk: page {shown} vs top-risk {top}"
        assert shown, "nobody at risk"
        if not look_only:
            # This week's band counts are the re-score's: everyone, by band.
            weeks = page.eval_on_selector_all(
                "#band-weeks tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))"
            )
            assert weeks, "no band counts"
            counted = [int(x) for x in weeks[-1][1:4]]
            expected = [sum(1 for h in top_json if h["band"] == b) for b in ("red", "yellow", "green")]
            assert counted == expected, (weeks, expected)

        # Customers: the table and its CSV.
        visit("/customers?band=red", "customers")
        rows = page.eval_on_selector_all("#customers tbody tr", "rows => rows.map(r => r.dataset.customer)")
        bands = page.eval_on_selector_all("#customers tbody tr .badge", "b => b.map(x => x.textContent)")
        assert rows and set(bands) == {"red"}, (rows, bands)
        csv = page.request.get(console + "/customers.csv?band=red")
        assert csv.ok and csv.text().splitlines()[0].startswith("customer_id,score,band"), csv.text()[:200]
        assert len(csv.text().splitlines()) == len(rows) + 1, "the CSV has the table's rows"
        # Each row's open alerts are the customer's alerts not resolved.
        standing = page.eval_on_selector_all(
            "#customers tbody tr", "rows => rows.map(r => [r.dataset.customer, r.querySelector('.standing').textContent])"
        )
        for customer_id, shown_count in standing[:5]:
            alerts = json.loads(cli(rapport, work, "alerts", "--customer", customer_id, "--limit", "1000", "--json"))
            expected = sum(1 for a in alerts if a["state"] != "resolved")
            assert int(shown_count) == expected, (customer_id, shown_count, expected)

        # P(alive): the rows below a threshold are `rapport top-risk --p-alive-below`'s. The
        # example's three customers are too few to fit the models; the CDNOW book is not.
        known = sorted({h["p_alive"] for h in top_json if h.get("p_alive") is not None})
        assert len(known) >= 2 or not look_only, f"too few P(alive) values to filter by: {known}"
        if len(known) >= 2:
            # Exactly, not rounded: the lowest scores' P(alive) can all be far below 0.0001.
            threshold = (known[0] + known[-1]) / 2
            visit(f"/customers?p_alive={threshold}&limit=1000", "customers-p-alive")
            rows = page.eval_on_selector_all("#customers tbody tr", "rows => rows.map(r => r.dataset.customer)")
            below = json.loads(
                cli(rapport, work, "top-risk", "--p-alive-below", str(threshold), "--limit", "1000", "--json")
            )
            assert rows == [h["customer_id"] for h in below], ("p_alive", threshold, rows[:10], below[:3])
            assert rows and all(h["p_alive"] < threshold for h in below), threshold

        # An RFM segment: its members, as `rapport segments members --rfm` lists them.
        rfm = json.loads(cli(rapport, work, "tiers", "--json"))["rfm_segments"]
        largest = max(rfm, key=lambda name: rfm[name])
        visit(f"/customers?rfm={urllib.parse.quote(largest)}&limit=1000", "customers-rfm")
        rows = page.eval_on_selector_all("#customers tbody tr", "rows => rows.map(r => r.dataset.customer)")
        members = json.loads(cli(rapport, work, "segments", "members", "--rfm", largest, "--json"))["members"]
        assert rows and sorted(rows) == sorted(members[:1000]), (largest, len(rows), len(members))

        # A customer's page: its contributions are ExplainHealth's.
        customer = top[0]
        visit(f"/customers/{urllib.parse.quote(customer)}", "customer")
        shown = {
            m: float(c)
            for m, c in page.eval_on_selector_all(
                "#contributions tbody tr", "rows => rows.map(r => [r.dataset.measure, r.dataset.contribution])"
            )
        }
        with grpc.insecure_channel(scoring_addr) as channel:
            explained = scoring_pb2_grpc.ScoringServiceStub(channel).ExplainHealth(
                scoring_pb2.ExplainHealthRequest(customer_id=customer), metadata=auth, timeout=10
            )
        expected = {m.measure: m.contribution for m in explained.measures}
        assert shown.keys() == expected.keys(), (shown, expected)
        for m, c in expected.items():
            assert abs(shown[m] - c) <= 1e-9 * max(1.0, abs(c)), (m, shown[m], c)
        # Each measure's data is as fresh as ExplainHealth says, to the millisecond.
        fresh = dict(
            page.eval_on_selector_all(
                "#contributions tbody tr", "rows => rows.map(r => [r.dataset.measure, r.dataset.fresh || null])"
            )
        )
        expected_fresh = {
            m.measure: str(m.data_at.seconds * 1000 + m.data_at.nanos // 1_000_000) if m.HasField("data_at") else None
            for m in explained.measures
        }
        assert fresh == expected_fresh, (fresh, expected_fresh)
        assert any(expected_fresh.values()), f"no measure of {customer} has a data time"
        # Its recent events are the newest of what ingestion holds, newest first.
        shown_events = page.eval_on_selector_all("#events tbody tr", "rows => rows.map(r => r.dataset.event)")
        with grpc.insecure_channel(ingestion_addr) as channel:
            stored = ingestion_pb2_grpc.IngestionServiceStub(channel).ListCustomerEvents(
                ingestion_pb2.ListCustomerEventsRequest(
                    customers=[ingestion_pb2.CustomerCursor(customer_id=customer)], limit_per_customer=10_000
                ),
                metadata=auth,
                timeout=30,
            )
        newest = [s.event.event_id for s in reversed(stored.events)][:25]
        assert shown_events == newest and newest, (shown_events, newest)
        assert page.locator("svg.chart title").first.text_content(), "the history chart has a title"

        # Tiers and segments, and the interventions' effects, load and draw; the RFM grid holds
        # every graded customer once.
        visit("/segments", "segments")
        grid = page.eval_on_selector_all("svg.grid .grid-count", "cells => cells.map(c => Number(c.textContent))")
        graded = sum(json.loads(cli(rapport, work, "tiers", "--json"))["tiers"].values())
        assert grid and sum(grid) == graded, (grid, graded)
        if not look_only:
            page.click('a:text-is("low-health")')
            page.wait_for_load_state("networkidle")
            members = page.eval_on_selector_all("ul.members a", "links => links.map(a => a.textContent)")
            assert customer in members, f"{customer} not among the low-health members {members}"
            # The same members as a table of scores.
            page.click('a:text-is("as a table, with their scores")')
            page.wait_for_load_state("networkidle")
            rows = page.eval_on_selector_all("#customers tbody tr", "rows => rows.map(r => r.dataset.customer)")
            assert sorted(rows) == sorted(members), (rows, members)
            # Filtered by stage: the page's rows are `rapport top-risk --stage`'s.
            for stage in ["new", "dormant"]:
                visit(f"/customers?stage={stage}", f"customers-{stage}")
                rows = page.eval_on_selector_all("#customers tbody tr", "rows => rows.map(r => r.dataset.customer)")
                cli_rows = [h["customer_id"] for h in json.loads(cli(rapport, work, "top-risk", "--stage", stage, "--limit", "50", "--json"))]
                assert rows == cli_rows, (stage, rows, cli_rows)
                assert all(h["stage"] == stage for h in json.loads(cli(rapport, work, "top-risk", "--stage", stage, "--json")))
        visit("/segments?by=quarter&kpi=nps", "segments-quarter")
        visit("/interventions", "interventions")
        if look_only:
            # CDNOW as of its usual calibration end: the page's AUC is the command line's, and
            # its curve is drawn.
            visit("/backtest?as_of=1997-10-01&horizon_days=273&outcome=no-purchase", "backtest")
            shown = page.locator("#auc").text_content()
            report = json.loads(cli(rapport, work, "backtest", "--as-of", "1997-10-01", "--horizon", "273d", "--json"))
            assert shown == f'{report["score"]["auc"]:.3f}', (shown, report["score"])
            assert page.locator("svg title", has_text="ROC of the health score").count() == 1
            assert page.locator("#tiers tbody tr").count() == len(report["tiers"]), report["tiers"]

        # Alerts: acknowledge one from the page; the trail names the person.
        visit("/alerts?state=open", "alerts")
        if look_only:
            assert page.locator("#alerts tbody tr").count() > 0, "no open alert shown"
            browser.close()
            finish(problems, {"at_risk": len(top), "customer": customer})
            return
        first = page.locator("#alerts tbody tr").first
        alert_id = first.get_attribute("data-alert")
        assert alert_id, "no open alert to acknowledge"
        first.locator("button[value=acknowledge]").click()
        page.wait_for_load_state("networkidle")
        shown_alert = json.loads(cli(rapport, work, "alerts", "show", alert_id, "--json"))
        assert shown_alert["state"] == "acknowledged", shown_alert
        actors = [t["actor"] for t in shown_alert.get("transitions", [])]
        assert PERSON in actors, f"trail of {alert_id}: {actors}"

        # An intervention recorded from the queue shows on the customer's page, by the person.
        visit("/alerts?state=acknowledged", "alerts-acknowledged")
        row = page.locator(f'#alerts tbody tr[data-alert="{alert_id}"]')
        row.locator("summary").click()
        form = row.locator("form[action$='/intervention']")
        if form.locator("input[name=action]").count():
            form.locator("input[name=action]").fill("check_in_call")
        form.locator("input[name=cost]").fill("120")
        form.locator("input[name=note]").fill("called the account")
        form.locator("button[type=submit]").click()
        page.wait_for_load_state("networkidle")
        visit(f"/customers/{urllib.parse.quote(shown_alert['customer_id'])}", "customer-intervention")
        recorded = page.locator(f'#interventions tbody tr[data-alert="{alert_id}"]')
        assert recorded.count() == 1, page.inner_text("main")
        assert PERSON in recorded.inner_text() and "called the account" in recorded.inner_text()
        assert page.locator("svg.chart .marker.m-intervention").count() >= 1, "no intervention marker on the history"

        # A new alert appears on the open page without a reload.
        visit("/alerts", "alerts-live")
        page.evaluate("window.__sameDocument = true")
        now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
        events = shots_dir / "new-detractor.jsonl"
        events.write_text(
            json.dumps(
                {
                    "event_id": "console-live-1",
                    "customer_id": "zoe-live",
                    "occurred_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "survey": {"kind": "nps", "score": 1, "comment": "very unhappy"},
                }
            )
            + "\n"
        )
        cli(rapport, work, "import", str(events))
        page.wait_for_selector('#alerts tbody tr:has(a:text-is("zoe-live"))', timeout=60_000)
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        page.screenshot(path=str(shots_dir / "alerts-live.png"), full_page=True)

        # Signing out ends the session.
        page.click("header button[type=submit]")
        page.wait_for_url(console + "/signin")

        # A read-only key sees the queue but no way to act on it.
        reader = json.loads(cli(rapport, work, "keys", "create", "--tenant", "dev", "--role", "read", "--name", "console-test", "--json"))
        # A new key reaches every service within seconds: until then it is refused.
        refusals_from = len(problems)
        deadline = time.time() + 15
        while True:
            page.fill("input[name=name]", "Reed Only")
            page.fill("input[name=key]", reader["secret"])
            with page.expect_navigation():
                page.click("button[type=submit]")
            if page.url == console + "/" or time.time() > deadline:
                break
            assert "not accepted" in page.inner_text("main"), page.inner_text("main")
            time.sleep(0.5)
        assert page.url == console + "/", page.inner_text("main")
        # Those refusals were answered 400 with the form and its message, as they should be.
        problems[refusals_from:] = [
            x for x in problems[refusals_from:] if not (x.endswith("/signin") or "status of 400" in x)
        ]
        visit("/alerts", "alerts-read-only")
        assert page.locator("#alerts tbody tr").count() > 0, "the reader sees the alerts"
        assert page.locator("#alerts form").count() == 0, "a read-only key was offered actions"
        browser.close()

    finish(problems, {"at_risk": len(top), "customer": customer, "acknowledged": alert_id})


def finish(problems: list[str], summary: dict) -> None:
    """Fails on any problem the browser saw; prints what was checked."""
    if problems:
        raise SystemExit("\n".join(problems))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

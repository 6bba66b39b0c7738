"""The console in a real headless Chromium, against a running `rapport up`.

Signs in, visits every page, and checks what people would see: no failed request, no request
off the machine, no console error; the at-risk list equals `rapport top-risk`; a customer's
contributions equal ExplainHealth's; acknowledging an alert in the page shows in `rapport alerts
show` with the person's name; a new alert appears on an open Alerts page without a reload.
Screenshots of every page go to SHOTS_DIR. Exits non-zero on any failure.

With MODE "look" it only looks (every page, the lists against the CLI and ExplainHealth), for a
platform whose data it must not change, such as a full CDNOW import.

usage: console_browser.py CONSOLE_URL SCORING_ADDR API_KEY RAPPORT_BIN WORK_DIR PROTO_DIR SHOTS_DIR [MODE]
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
    console, scoring_addr, api_key, rapport, work, proto_dir, shots = sys.argv[1:8]
    look_only = sys.argv[8:9] == ["look"]
    shots_dir = pathlib.Path(shots)
    shots_dir.mkdir(parents=True, exist_ok=True)
    generate(pathlib.Path(proto_dir), shots_dir / "stubs")
    from rapport.scoring.v1 import scoring_pb2, scoring_pb2_grpc

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
                scoring_pb2.ExplainHealthRequest(customer_id=customer),
                metadata=[("authorization", f"Bearer {api_key}")],
                timeout=10,
            )
        expected = {m.measure: m.contribution for m in explained.measures}
        assert shown.keys() == expected.keys(), (shown, expected)
        for m, c in expected.items():
            assert abs(shown[m] - c) <= 1e-9 * max(1.0, abs(c)), (m, shown[m], c)
        assert page.locator("svg.chart title").first.text_content(), "the history chart has a title"

        # Tiers and segments, and the interventions' effects, load and draw.
        visit("/segments", "segments")
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

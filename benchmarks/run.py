"""`make bench`: every benchmark against its baseline, taken in the same run, on PostgreSQL
with gunicorn (gunicorn.conf.py) and `manage.py qcluster`; prints the table and writes it into
README.md between `<!-- bench:start -->` and `<!-- bench:end -->`.

    .venv/bin/python -m benchmarks.run [--no-readme]

Databases wopr_bench (webhook intake) and wopr_bench_flow (a copy taken before intake: purchases,
API, memory, cost per Beacon) are created on BENCH_PG_URL's server and dropped at the end, as is
every process started. Logs stay in var/bench/. About 3-5 minutes on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks import harness, load, readme, webhook_intake
from benchmarks.bare.urls import TABLE_SQL
from benchmarks.purchase_to_active import Flow, purchases_measure
from benchmarks.readme import Row

SECRET = "whsec_bench_0123456789"  # noqa: S105  (a throwaway secret of the bench databases)
BOOT_SECONDS, INSTALL_SECONDS = 2.0, 3.0
PORT_BARE, PORT_REAL, PORT_FLOW = 18401, 18402, 18403
API_REQUESTS = 600
MANY = 50
LOGS = harness.ROOT / "var" / "bench"
KEPT_SCHEMA = "wopr_bench_schema"
STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr, so a slow phase shows which one it is."""
    print(f"[{time.monotonic() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def server_env(url: str, documents: Path) -> dict[str, str]:
    """The web and worker environment: the fake cloud (which needs DEBUG), no throttling in
    the way of the load, mail to files, the fake cloud's waits set here."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "true",
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STRIPE_TEST_WEBHOOK_SECRET": SECRET,
        "THROTTLE_DEFAULT": "1000000/min",
        "THROTTLE_CHECKOUT": "1000000/min",
        "FAKE_SERVER_BOOT_SECONDS": str(BOOT_SECONDS),
        "FAKE_BEACON_INSTALL_SECONDS": str(INSTALL_SECONDS),
        "DOCUMENTS_ROOT": str(documents / "documents"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(documents / "mail"),
        "LOG_LEVEL": "WARNING",
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "n/a"


def database_prepare(env: dict[str, str]) -> None:
    """Schema, cache table, catalogue (as `make run` does) and the bare view's table."""
    for args in (("migrate", "--noinput"), ("createcachetable",), ("load_catalog",)):
        harness.manage(env, *args)
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as connection:
        connection.execute(TABLE_SQL)


def intake_rows(url: str, env: dict[str, str]) -> list[Row]:
    """Webhook intake, the bare view first, then the real one, never both at once."""
    bare_env = {**env, "DJANGO_SETTINGS_MODULE": "benchmarks.bare.settings"}
    counts_bare = webhook_intake.Counts(once=1000, twice=500)
    counts_real = webhook_intake.Counts(once=300, twice=200)
    with harness.gunicorn(
        "benchmarks.bare.wsgi:application", bare_env, PORT_BARE, LOGS, ready_path="/"
    ) as server:
        bare = webhook_intake.intake_measure(server, "bare", SECRET, counts_bare)
    say(f"bare view: {bare.once.rate:.0f} events/s")
    with harness.gunicorn(
        "wopr.wsgi:application", env, PORT_REAL, LOGS, ready_path="/api/health"
    ) as server:
        real = webhook_intake.intake_measure(server, "real", SECRET, counts_real)
    say(f"real webhook: {real.once.rate:.0f} events/s")
    return _intake_rate_rows(bare, real) + _intake_cost_rows(bare, real)


def _intake_rate_rows(bare: webhook_intake.Intake, real: webhook_intake.Intake) -> list[Row]:
    fail = webhook_intake.failures
    return [
        Row(
            f"webhook intake, events/s ({real.once.count} events, 8 client threads)"
            + fail(real.once),
            f"{real.once.rate:.0f}/s",
            f"bare HMAC + insert view: {bare.once.rate:.0f}/s",
            ratio(real.once.rate, bare.once.rate),
            "≥ 0.5",
        ),
        Row(
            "webhook intake, p50 / p99 at full load",
            f"{real.once.p50_ms:.0f} / {real.once.p99_ms:.0f} ms",
            f"{bare.once.p50_ms:.0f} / {bare.once.p99_ms:.0f} ms",
            ratio(real.once.p99_ms, bare.once.p99_ms),
            "",
        ),
        Row(
            f"webhook intake, p50 / p99 at half the maximum rate ({real.paced.rate:.0f}/s)"
            + fail(real.paced),
            f"{real.paced.p50_ms:.0f} / {real.paced.p99_ms:.0f} ms",
            f"{bare.paced.p50_ms:.0f} / {bare.paced.p99_ms:.0f} ms at {bare.paced.rate:.0f}/s",
            ratio(real.paced.p99_ms, bare.paced.p99_ms),
            "p99 < 100 ms",
        ),
    ]


def _intake_cost_rows(bare: webhook_intake.Intake, real: webhook_intake.Intake) -> list[Row]:
    fail = webhook_intake.failures
    return [
        Row(
            "webhook intake, gunicorn CPU per event",
            ms(real.cpu_once),
            ms(bare.cpu_once),
            ratio(real.cpu_once, bare.cpu_once),
            "",
        ),
        Row(
            f"every event delivered twice ({real.twice.count} deliveries), deliveries/s, "
            "CPU per delivery" + fail(real.twice),
            f"{real.twice.rate:.0f}/s, {ms(real.cpu_twice)}",
            f"{bare.twice.rate:.0f}/s, {ms(bare.cpu_twice)}",
            ratio(real.twice.rate, bare.twice.rate),
            "",
        ),
    ]


def flow_rows(env: dict[str, str]) -> list[Row]:
    """Purchases to active, API throughput and memory, with the web and worker roles running."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wopr.settings")
    import django

    django.setup()
    web_cm = harness.gunicorn(
        "wopr.wsgi:application", env, PORT_FLOW, LOGS, ready_path="/api/health"
    )
    with web_cm as web, harness.qcluster(env, LOGS) as worker:
        one = purchases_measure(web.base, SECRET, ["flowone"], timeout=75)
        say(f"one purchase: {one.worst:.1f} s")
        rows = [_flow_row("1 purchase", one, "≤ 5 s")]
        rows += api_rows(web.base, "flowone")
        say("API throughput measured")
        many = purchases_measure(web.base, SECRET, [f"flow{n}" for n in range(MANY)], 120)
        say(f"{MANY} purchases: slowest {many.worst:.1f} s")
        rows.append(_flow_row(f"{MANY} purchases at once", many, "all ≤ 60 s"))
        rows += memory_rows(web, worker)
    return rows


def _flow_row(what: str, flow: Flow, target: str) -> Row:
    floor = max(BOOT_SECONDS, INSTALL_SECONDS)
    states = ", ".join(f"{n} {s}" for s, n in sorted(flow.statuses.items()))
    done = f"{flow.done}/{flow.count} active" + ("" if flow.done == flow.count else f" ({states})")
    return Row(
        f"webhook → `active` on the fake cloud, {what}: p50, slowest ({done})",
        f"{flow.p50:.1f} s, {flow.worst:.1f} s",
        f"fake cloud's own wait: {floor:.0f} s (boot {BOOT_SECONDS:.0f} s, "
        f"install {INSTALL_SECONDS:.0f} s)",
        ratio(flow.worst, floor),
        target,
    )


def api_rows(base: str, beacon_name: str) -> list[Row]:
    """Catalogue (full and 304) and order status against /api/health, same load each."""
    from billing.models import Order

    order_id = Order.objects.filter(beacon_name=beacon_name).values_list("pk", flat=True).get()
    etag_value = _etag(base)
    paths = {
        "health": ("/api/health", {}),
        "catalogue": ("/api/v1/catalog", {}),
        "catalogue, If-None-Match (304)": ("/api/v1/catalog", {"If-None-Match": etag_value}),
        "order status": (f"/api/v1/orders/{order_id}", {}),
    }
    results = {}
    for name, (path, headers) in paths.items():
        load.warm(base, path)
        results[name] = load.run(base, [("GET", path, None, headers)] * API_REQUESTS, concurrency=8)
    health = results.pop("health")
    return [
        Row(
            f"`{name}` requests/s, p99 ({API_REQUESTS} requests, 8 threads)"
            + webhook_intake.failures(result).replace("non-200", "statuses"),
            f"{result.rate:.0f}/s, {result.p99_ms:.0f} ms",
            f"`/api/health`: {health.rate:.0f}/s, {health.p99_ms:.0f} ms",
            ratio(result.rate, health.rate),
            "≥ 0.7" if name == "catalogue" else "",
        )
        for name, result in results.items()
    ]


def _etag(base: str) -> str:
    import httpx

    return httpx.get(f"{base}/api/v1/catalog").headers.get("ETag", '"none"')


def memory_rows(web: harness.Server, worker: harness.Server) -> list[Row]:
    """Resident memory after the purchases: each web worker, and the qcluster process tree."""
    workers = harness.web_worker_rss(web)
    cluster = [harness.rss_mb(pid) for pid in harness.descendants(worker.pid)]
    return [
        Row(
            f"RSS of a gunicorn web worker after the load (largest of {len(workers)})",
            f"{workers[0]:.0f} MB",
            "",
            "",
            "< 150 MB",
        ),
        Row(
            f"RSS of `manage.py qcluster` ({len(cluster)} processes; largest)",
            f"{sum(cluster):.0f} MB in all; {max(cluster):.0f} MB",
            "",
            "",
            "",
        ),
    ]


def cost_rows(env: dict[str, str]) -> list[Row]:
    """Statements and CPU per Beacon, measured in a process of its own (benchmarks.beacon_cost)."""
    cost_env = {**env, "FAKE_SERVER_BOOT_SECONDS": "0", "FAKE_BEACON_INSTALL_SECONDS": "0"}
    cost_env["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.beacon_cost", "3"],
        cwd=harness.ROOT,
        env=cost_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"beacon_cost failed:\n{done.stderr[-3000:]}")
    cost = json.loads(done.stdout.strip().splitlines()[-1])
    worker_queries = cost["queries"] - cost["webhook_queries"]
    worker_cpu = cost["cpu"] - cost["webhook_cpu"] - cost["pdf_cpu"]
    return [
        Row(
            "SQL statements per Beacon, webhook to active (median of 3): worker's share",
            f"{cost['queries']:.0f}: worker {worker_queries:.0f}",
            f"the webhook alone: {cost['webhook_queries']:.0f}",
            ratio(cost["queries"], cost["webhook_queries"]),
            "≤ 60; webhook ≤ 15",
        ),
        Row(
            "worker CPU per Beacon, PDFs apart (PDF rendering measured and subtracted)",
            ms(worker_cpu),
            f"webhook alone: {ms(cost['webhook_cpu'])}; PDFs: {ms(cost['pdf_cpu'])}",
            ratio(worker_cpu, cost["webhook_cpu"]),
            "≤ 50 ms",
        ),
    ]


def heading(seconds: float) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    kept = "BENCH_KEEP_SCHEMA=1 " if os.environ.get("BENCH_KEEP_SCHEMA") == "1" else ""
    return (
        f"Last run: {now}, {harness.machine()}; `{kept}make bench` "
        f"(`.venv/bin/python -m benchmarks.run`) took {seconds:.0f} s."
    )


def schema_database(stack: contextlib.ExitStack, scratch: Path) -> str:
    """wopr_bench, migrated, with the catalogue. With BENCH_KEEP_SCHEMA=1 it is copied from
    wopr_bench_schema, which is kept between runs and rebuilt when the migrations change
    (migrate takes 1-2 minutes here); without it nothing outlives the run."""
    if os.environ.get("BENCH_KEEP_SCHEMA") != "1":
        url = stack.enter_context(harness.database("wopr_bench"))
        database_prepare(server_env(url, scratch))
        return url
    fingerprint = harness.schema_fingerprint()
    if harness.database_comment(KEPT_SCHEMA) != fingerprint:
        harness.database_keep(KEPT_SCHEMA)
        database_prepare(server_env(harness.database_url(KEPT_SCHEMA), scratch))
        harness.database_keep_mark(KEPT_SCHEMA, fingerprint)
    return stack.enter_context(harness.database("wopr_bench", template=KEPT_SCHEMA))


def main() -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wopr-bench-")))
        intake_url = schema_database(stack, scratch)
        say("database ready")
        flow_url = stack.enter_context(harness.database("wopr_bench_flow", template="wopr_bench"))
        rows = intake_rows(intake_url, server_env(intake_url, scratch))
        flow_env = server_env(flow_url, scratch)
        rows += flow_rows(flow_env)
        rows += cost_rows(flow_env)
        say("cost per Beacon measured")
    block = readme.table(rows, heading=heading(time.monotonic() - STARTED))
    print(block)
    if "--no-readme" not in sys.argv:
        readme.readme_write(harness.ROOT / "README.md", block)


if __name__ == "__main__":
    main()

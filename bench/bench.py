#!/usr/bin/env python3
"""Benchmarks of ssm-association-exporter against the standalone ssm-simulator (bench/run).

Drives the release exporter and the release simulator as separate processes over 127.0.0.1,
measures the exporter's CPU from /proc/PID/stat, its memory from /proc/PID/status, scrapes
/metrics like Prometheus, runs wrk against /metrics, and prints one Markdown report on stdout.
Progress goes to stderr. Every process it starts is ended on exit (also on SIGTERM/SIGINT, and by
PR_SET_PDEATHSIG if this script is killed hard). See bench/README.md for what each figure means.

Environment: BENCH_QUICK=1 (short windows, one repetition), BENCH_STEADY_SECONDS (steady-state
window per size, default 180), BENCH_WRK_SECONDS (default 10), BENCH_ONLY=series (only the
series counts), BENCH_ONLY=estate (only the estate scenario) or BENCH_ONLY=calls (only the
request cost at the default budget, bench/calls.py), BENCH_SERIES_SETTINGS
(comma-separated settings of the series counts, default "default,richest"; "default" alone for
a build without the `metrics:` section), BENCH_ESTATE_INTERVALS (poll intervals per estate
window, default 5, 3 quick; at least 3). BENCH_ONLY=events runs only the State Manager events
scenario (issue 22; not part of the default run): BENCH_EVENTS_SECONDS (window, default 420,
120 quick), BENCH_EVENTS_RATE (runs ending per second, default 0.5), BENCH_EVENTS_MODES
(default "off,on"), BENCH_EVENTS_ASSOCIATIONS (default 1000), BENCH_EVENTS_WARMUP (seconds after
the first round before the window, default 960, 30 quick: past the 10-minute late-visibility
window and a 5-minute listing interval, so that the history's `late` polls are done and the
window holds those of earlier runs).
"""

import argparse
import ctypes
import gzip
import http.client
import json
import math
import os
import platform
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import calls  # noqa: E402  (bench/calls.py: the request cost at the default budget)

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
STEADY_SECONDS = float(os.environ.get("BENCH_STEADY_SECONDS", "20" if QUICK else "180"))
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "3" if QUICK else "10"))
SCRAPE_EVERY = 15.0
READY_TIMEOUT = 300.0
# The estate scenario: poll_interval (and activity interval) and the intervals per window.
ESTATE_INTERVAL = 10 if QUICK else 60
ESTATE_INTERVALS = max(3, int(os.environ.get("BENCH_ESTATE_INTERVALS", "3" if QUICK else "5")))
ESTATE_ACTIVE_FRACTION = 0.05
ESTATE_FULL_SWEEP = 3600  # full_sweep_interval, seconds (written as 1h)
ESTATE_RPS = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")  # what `getconf CLK_TCK` prints

CHILDREN = []
T_START = time.monotonic()


def log(message):
    print(f"[bench {time.monotonic() - T_START:7.1f}s] {message}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --------------------------------------------------------------------------- processes

def _die_with_parent():
    """Child side of Popen: SIGKILL when this script dies, whatever the way."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(argv, **kwargs):
    proc = subprocess.Popen(argv, preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL, **kwargs)
    CHILDREN.append(proc)
    return proc


def stop(proc, timeout=10.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in CHILDREN:
        CHILDREN.remove(proc)


def stop_all():
    for proc in list(CHILDREN):
        stop(proc, timeout=5.0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields after the command name start at field 3 (state); utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def http_get(port, path, gzip_ok=False, timeout=30.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Encoding"), response.read()
    finally:
        conn.close()


class Simulator:
    """The ssm-simulator process; `url` from its first stdout line."""

    def __init__(self, binary, args, config_out=None, config=None, requests=False):
        argv = [binary] + [str(a) for a in args]
        self.requests_port = None
        if requests:
            self.requests_port = free_port()
            argv += ["--requests-address", f"127.0.0.1:{self.requests_port}"]
        if config_out:
            argv += ["--config-out", config_out]
            for key, value in (config or {}).items():
                argv += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"simulator did not start: {argv}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    raise RuntimeError("simulator closed stdout")
                line += chunk
        text = line.decode().strip()
        if not text.startswith("listening on http://127.0.0.1:"):
            raise RuntimeError(f"unexpected simulator line {text!r}")
        self.url = text.split(" ", 2)[2]

    def request_counts(self):
        """Requests received since start, {(account, region, operation): count} (needs
        `requests=True`)."""
        status, _, body = http_get(self.requests_port, "/_sim/requests")
        if status != 200:
            raise RuntimeError(f"/_sim/requests answered {status}")
        return {(r["account"], r["region"], r["operation"]): r["count"]
                for r in json.loads(body)["requests"]}

    def stop(self):
        stop(self.proc)


class Exporter:
    """The exporter process against a simulator; `t0` is just before it was started."""

    def __init__(self, binary, config_path, sim_url):
        self.port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK",
            "AWS_SECRET_ACCESS_KEY": "fake-secret-for-benchmarks",
            "AWS_REGION": "us-east-1",
            # Every service, not only SSM: the exporter asks STS who it is (GetCallerIdentity)
            # and assumes roles (AssumeRole); with AWS_ENDPOINT_URL_SSM alone those would go to
            # the real STS endpoint.
            "AWS_ENDPOINT_URL": sim_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/aws/config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws/credentials",
        }
        argv = [binary, f"--config.file={config_path}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        self.t0 = time.monotonic()
        self.proc = spawn(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def wait_ready(self, timeout=READY_TIMEOUT, every=0.01):
        """Seconds from start until /readyz answered 200, and CPU-seconds at that moment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exporter exited with {self.proc.returncode}")
            try:
                status, _, _ = http_get(self.port, "/readyz", timeout=5)
                if status == 200:
                    return time.monotonic() - self.t0, cpu_seconds(self.pid)
            except OSError:
                pass
            time.sleep(every)
        raise RuntimeError("exporter not ready in time")

    def metrics(self, gzip_ok=False):
        """The /metrics text; with `gzip_ok` fetched gzipped, as Prometheus does (the exporter
        keeps the last body of each encoding: a plain scrape of a large estate keeps a plain
        body of tens of MB)."""
        status, encoding, body = http_get(self.port, "/metrics", gzip_ok=gzip_ok)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        if encoding == "gzip":
            body = gzip.decompress(body)
        return body.decode()

    def stop(self):
        stop(self.proc)


def metric_sum(text, name, label_filter=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if label_filter in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def series_count(text):
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def run_pair(exporter_bin, simulator_bin, sim_args, config, extra_yaml="", requests=False,
             check=False):
    """Starts a simulator writing a config (with `extra_yaml` appended), then the exporter on it
    (after `--config.check` of the config if `check`)."""
    tmp = tempfile.mkdtemp(prefix="ssm-bench-")
    config_path = os.path.join(tmp, "config.yaml")
    sim = Simulator(simulator_bin, sim_args, config_out=config_path, config=config,
                    requests=requests)
    if extra_yaml:
        with open(config_path, "a") as f:
            f.write(extra_yaml)
    if check:
        checked = subprocess.run([exporter_bin, "--config.check", f"--config.file={config_path}"],
                                 capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            sim.stop()
            raise RuntimeError(f"--config.check failed: {checked.stderr or checked.stdout}")
    exporter = Exporter(exporter_bin, config_path, sim.url)
    return sim, exporter


# --------------------------------------------------------------------------- scenarios

def ingest(bins, associations, executions):
    """History backfill: CPU-seconds and wall time from start to ready."""
    log(f"ingest: {associations} x {executions} executions, pages of 50")
    sim, exporter = run_pair(*bins, ["--associations", associations, "--executions", executions,
                                     "--page-size", 50, "--history", "50m"],
                             {"poll_interval": "1h", "api_requests_per_second": 10000,
                              "max_concurrent_requests": 8, "initial_lookback": "2h"})
    load = loadavg()
    try:
        wall, cpu = exporter.wait_ready(every=0.05)
        text = exporter.metrics()
    finally:
        exporter.stop()
        sim.stop()
    counted = metric_sum(text, "ssm_association_executions_total")
    expected = associations * executions
    if counted != expected:
        raise RuntimeError(f"ingest counted {counted}, expected {expected}")
    calls = metric_sum(text, "ssm_association_exporter_api_requests_total")
    log(f"  {counted:.0f} executions, {calls:.0f} calls, {cpu:.2f} CPU-s, {wall:.2f} s wall")
    return {"executions": expected, "cpu": cpu, "wall": wall, "calls": calls, "load": load}


def rate_fidelity(bins, rate):
    log(f"rate limit: 1000 associations at {rate} requests/s, simulator throttles above {2 * rate}")
    sim, exporter = run_pair(*bins, ["--associations", 1000, "--executions", 3,
                                     "--rate-limit", 2 * rate],
                             {"poll_interval": "1h", "api_requests_per_second": rate,
                              "max_concurrent_requests": 8, "initial_lookback": "2h"})
    load = loadavg()
    try:
        wall, _ = exporter.wait_ready(every=0.05)
        text = exporter.metrics()
    finally:
        exporter.stop()
        sim.stop()
    calls = metric_sum(text, "ssm_association_exporter_api_requests_total")
    throttles = metric_sum(text, "ssm_association_exporter_api_requests_total",
                           'code="ThrottlingException"')
    floor = calls / rate
    log(f"  {calls:.0f} calls in {wall:.2f} s (floor {floor:.2f} s), {throttles:.0f} throttled")
    return {"rate": rate, "calls": calls, "wall": wall, "floor": floor,
            "achieved": calls / wall, "throttles": throttles, "load": load}


def wrk(port):
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{WRK_SECONDS}s", "--latency", "--timeout", "30s",
         "-H", "Accept-Encoding: gzip",
         f"http://127.0.0.1:{port}/metrics"],
        capture_output=True, text=True, timeout=WRK_SECONDS + 60, check=True).stdout

    def latency_ms(percent):
        m = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise RuntimeError(f"no {percent}% latency in wrk output:\n{out}")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    rps = float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {"p50": latency_ms(50), "p99": latency_ms(99), "rps": rps,
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1).strip() if socket_errors else ""}


def steady(bins, associations):
    trickle = associations / 1000
    log(f"steady state: {associations} associations, 60s interval, {STEADY_SECONDS:.0f} s window, "
        f"{trickle:g} new executions/s")
    sim, exporter = run_pair(*bins, ["--associations", associations, "--executions", 10,
                                     "--history", "50m", "--new-executions-per-second", trickle],
                             {"poll_interval": "60s", "api_requests_per_second": 1000,
                              "max_concurrent_requests": 8, "initial_lookback": "1h"})
    load_start = loadavg()
    try:
        ready_wall, _ = exporter.wait_ready(every=0.05)
        log(f"  ready after {ready_wall:.1f} s; measuring")
        t_start, cpu_start = time.monotonic(), cpu_seconds(exporter.pid)
        rss_max = 0
        next_scrape = t_start
        scrapes = 0
        while True:
            now = time.monotonic()
            if now - t_start >= STEADY_SECONDS:
                break
            if now >= next_scrape:
                status, _, _ = http_get(exporter.port, "/metrics", gzip_ok=True)
                assert status == 200
                scrapes += 1
                next_scrape += SCRAPE_EVERY
            rss_max = max(rss_max, memory_kib(exporter.pid)[0])
            time.sleep(min(1.0, max(0.0, next_scrape - time.monotonic())) or 0.01)
        t_end, cpu_end = time.monotonic(), cpu_seconds(exporter.pid)
        rss_end, hwm = memory_kib(exporter.pid)
        rss_max = max(rss_max, rss_end)
        load_end = loadavg()
        plain = exporter.metrics()
        _, encoding, zipped = http_get(exporter.port, "/metrics", gzip_ok=True)
        if encoding != "gzip":
            raise RuntimeError("/metrics did not gzip for Accept-Encoding: gzip")
        assert gzip.decompress(zipped)
        calls = metric_sum(plain, "ssm_association_exporter_api_requests_total")
        delay = max((float(line.rsplit(" ", 1)[1]) for line in plain.splitlines()
                     # One series by default (the largest), or one per association.
                     if line.startswith(("ssm_association_exporter_poll_delay_seconds{",
                                         "ssm_association_exporter_poll_delay_seconds "))),
                    default=0.0)
        failed = sum(1 for line in plain.splitlines()
                     if line.startswith("ssm_association_exporter_poll_success{")
                     and line.endswith(" 0"))
        log(f"  steady CPU {100 * (cpu_end - cpu_start) / (t_end - t_start):.2f}% of a core, "
            f"RSS {rss_end / 1024:.1f} MiB; wrk on /metrics for {WRK_SECONDS} s")
        scrape = wrk(exporter.port)
        log(f"  wrk p50 {scrape['p50']:.2f} ms, p99 {scrape['p99']:.2f} ms, {scrape['rps']:.0f} req/s")
    finally:
        exporter.stop()
        sim.stop()
    return {
        "associations": associations, "ready": ready_wall, "window": t_end - t_start,
        "cpu_pct": 100 * (cpu_end - cpu_start) / (t_end - t_start),
        "cpu": cpu_end - cpu_start, "rss_end": rss_end, "rss_max": rss_max, "hwm": hwm,
        "series": series_count(plain), "plain_bytes": len(plain.encode()),
        "gzip_bytes": len(zipped), "scrapes": scrapes, "calls": calls, "max_delay": delay,
        "failed_polls": failed, "scrape": scrape, "load": f"{load_start} → {load_end}",
    }


# The `metrics:` settings the series counts compare: the default, and the richest (every
# per-association family at its finest, as 0.1 exported them).
SERIES_SETTINGS = {
    "default": "",
    "richest": "metrics:\n  duration_histogram: per_status\n  last_execution_status: per_status\n"
               "  per_association_internals: true\n",
}
ASSOCIATION_LABEL = re.compile(r'association_id="([^"]*)"')
# Families whose series per association depend on the data (README "Cardinality"): not in the
# budget of 20.
DATA_DEPENDENT = ("ssm_association_last_execution_resources{", "ssm_association_triggered_alarm{",
                  "ssm_association_triggered_alarms_total{",
                  "ssm_association_executions_without_end_time_total{")


def series(bins, associations, setting):
    """Series on /metrics once every association has been polled: total, and per association
    (the lines carrying its association_id label) mean and max."""
    log(f"series: {associations} associations, setting {setting}")
    sim, exporter = run_pair(*bins, ["--associations", associations, "--executions", 10,
                                     "--history", "50m"],
                             {"poll_interval": "1h", "api_requests_per_second": 10000,
                              "max_concurrent_requests": 8, "initial_lookback": "1h"},
                             SERIES_SETTINGS[setting])
    try:
        exporter.wait_ready(every=0.05)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            text = exporter.metrics()
            # Every association's execution series are shown once its first poll paged to the end.
            shown = {m.group(1) for line in text.splitlines()
                     if line.startswith("ssm_association_executions_in_progress{")
                     for m in [ASSOCIATION_LABEL.search(line)] if m}
            if len(shown) >= associations or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        exporter.stop()
        sim.stop()
    per, fixed = {}, {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = ASSOCIATION_LABEL.search(line)
            if m:
                per[m.group(1)] = per.get(m.group(1), 0) + 1
                if not line.startswith(DATA_DEPENDENT):
                    fixed[m.group(1)] = fixed.get(m.group(1), 0) + 1
    total = series_count(text)
    mean = sum(per.values()) / associations
    log(f"  {total:,} series; per association {mean:.2f} mean, {max(per.values())} max, "
        f"{max(fixed.values())} max without the data-dependent families")
    return {"associations": associations, "setting": setting, "total": total, "mean": mean,
            "max": max(per.values()), "min": min(per.values()), "other": total - sum(per.values()),
            "fixed_max": max(fixed.values()), "plain_bytes": len(text.encode())}


def startup(bins, runs):
    log(f"start-up: 100 associations, {runs} runs")
    times, cpus = [], []
    load = loadavg()
    for _ in range(runs):
        sim, exporter = run_pair(*bins, ["--associations", 100, "--executions", 10],
                                 {"poll_interval": "60s", "api_requests_per_second": 10000,
                                  "max_concurrent_requests": 8, "initial_lookback": "1h"})
        try:
            wall, cpu = exporter.wait_ready(every=0.005)
        finally:
            exporter.stop()
            sim.stop()
        times.append(wall)
        cpus.append(cpu)
    log(f"  {', '.join(f'{t * 1000:.0f} ms' for t in times)}")
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "cpu": statistics.median(cpus), "load": load}


SSM_OPERATIONS = ("ListAssociations", "DescribeAssociationExecutions", "DescribeAssociation",
                  "ListTagsForResource")
STS_OPERATIONS = ("GetCallerIdentity", "AssumeRole")
OWN_ACCOUNT = "123456789012"
LABEL = re.compile(r'(\w+)="([^"]*)"')


def metric_series(text, name):
    """[(labels dict, value)] of one family's samples."""
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, value = line.rsplit(" ", 1)
            out.append((dict(LABEL.findall(head)), float(value)))
    return out


def by_operation(before, after):
    """Calls between two /_sim/requests answers, by operation."""
    ops = {}
    for key, n in after.items():
        ops[key[2]] = ops.get(key[2], 0) + n - before.get(key, 0)
    return ops


def polls_by_reason(text):
    return {labels["reason"]: value
            for labels, value in metric_series(text, "ssm_association_exporter_polls_total")}


def scope_sizes(associations, accounts, regions):
    """Associations per (account, region), as the simulator spreads them."""
    scopes = accounts * len(regions)
    return [associations // scopes + (1 if k < associations % scopes else 0) for k in range(scopes)]


def first_round(text, scopes, associations):
    """(done, awaiting gauge): done when every scope listed successfully, every association is
    selected and every one's first poll ended. Its end is read from the per-association
    `..._poll_success` series, which appear when an association's first poll ends, rather than
    from `..._associations_awaiting_first_poll` reaching 0: that gauge keeps the associations
    whose first poll ended before their scope's first listing was applied (see bench/README.md),
    so it is reported beside."""
    listed = metric_series(text, "ssm_association_exporter_listing_success")
    watched = sum(v for _, v in metric_series(text, "ssm_association_exporter_associations_watched"))
    polled = sum(1 for line in text.splitlines()
                 if line.startswith("ssm_association_exporter_poll_success{"))
    awaiting = metric_sum(text, "ssm_association_exporter_associations_awaiting_first_poll")
    done = (len(listed) == scopes and all(v == 1 for _, v in listed)
            and watched == associations and polled == associations)
    return done, awaiting


def estate(bins, associations, accounts, regions, scrape_figures):
    """The estate: discovery of every association in accounts × regions, a live 5% of them
    running once per poll interval. Measures the time to ready and to the end of the first
    round, RSS, then SSM calls per interval (from the simulator) and exporter CPU over a window
    of ESTATE_INTERVALS intervals after the follow-up round; with `scrape_figures`, /metrics
    body size and wrk latency after the window."""
    interval = ESTATE_INTERVAL
    n_scopes = accounts * len(regions)
    active = round(ESTATE_ACTIVE_FRACTION * associations)
    log(f"estate: {associations:,} associations in {accounts} account(s) × {len(regions)} "
        f"region(s), poll_interval {interval}s, {ESTATE_ACTIVE_FRACTION:.0%} ({active}) running "
        f"every {interval} s, window {ESTATE_INTERVALS} intervals")
    sim, exporter = run_pair(
        *bins,
        ["--associations", associations, "--executions", 20, "--history", "50m",
         "--accounts", accounts, "--regions", ",".join(regions),
         "--external-id", "bench-external-id",
         "--active-fraction", ESTATE_ACTIVE_FRACTION, "--activity-interval", f"{interval}s",
         # The exporter starts right after the simulator and lists every interval from then:
         # runs start half-way between two listings, as runs at any time would on average.
         "--activity-delay", f"{interval * 1000 // 2}ms"],
        {"poll_interval": f"{interval}s", "api_requests_per_second": ESTATE_RPS,
         "max_concurrent_requests": 8, "initial_lookback": "1h",
         "full_sweep_interval": "1h"},
        requests=True, check=True)
    load_start = loadavg()
    try:
        # Start → /readyz 200 (checked every 50 ms) and → first round done (/metrics every 1 s).
        ready_wall = first_round_wall = None
        rss_first = hwm_first = 0
        deadline = exporter.t0 + READY_TIMEOUT
        next_metrics = exporter.t0
        while ready_wall is None or first_round_wall is None:
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError("estate: exporter not ready / first round not done in time")
            if exporter.proc.poll() is not None:
                raise RuntimeError(f"exporter exited with {exporter.proc.returncode}")
            if ready_wall is None:
                try:
                    if http_get(exporter.port, "/readyz", timeout=5)[0] == 200:
                        ready_wall = time.monotonic() - exporter.t0
                        log(f"  /readyz 200 after {ready_wall:.2f} s")
                except OSError:
                    pass
            if first_round_wall is None and now >= next_metrics:
                next_metrics += 1.0
                try:
                    done, awaiting_first = first_round(exporter.metrics(gzip_ok=True),
                                                       n_scopes, associations)
                    if done:
                        counts_first = sim.request_counts()
                        first_round_wall = time.monotonic() - exporter.t0
                        rss_first, hwm_first = memory_kib(exporter.pid)
                        cpu_first = cpu_seconds(exporter.pid)
                        log(f"  first round done after {first_round_wall:.1f} s (awaiting_first_poll "
                            f"gauge {awaiting_first:.0f}), RSS {rss_first / 1024:.1f} MiB")
                except (OSError, RuntimeError):
                    pass
            time.sleep(0.05)

        # Warm-up: the first round's polls each owe a follow-up at the next listing; wait for that
        # round (≥ 90% of the associations polled again), then for a quiet moment between two
        # listings, so that the window starts and ends between listing bursts.
        polled0 = by_operation({}, counts_first).get("DescribeAssociationExecutions", 0)
        give_up = exporter.t0 + first_round_wall + 2.5 * interval + associations / ESTATE_RPS
        while True:
            time.sleep(1.0)
            polled = by_operation({}, sim.request_counts()).get("DescribeAssociationExecutions", 0)
            if polled - polled0 >= 0.9 * associations:
                break
            if time.monotonic() > give_up:
                log(f"  no follow-up round seen ({polled - polled0:.0f} polls since the first "
                    f"round); measuring anyway")
                break
        deadline = time.monotonic() + 2 * interval + 60
        quiet, last = 0, sum(sim.request_counts().values())
        while quiet < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("estate: no quiet moment between listings")
            time.sleep(0.5)
            total = sum(sim.request_counts().values())
            quiet = quiet + 1 if total == last else 0
            last = total

        # The window: ESTATE_INTERVALS whole intervals from a quiet moment, with a gzip scrape
        # every 15 s as Prometheus does; RSS sampled every second.
        text_start = exporter.metrics(gzip_ok=True)
        log(f"  measuring {ESTATE_INTERVALS} × {interval} s")
        counts_start = sim.request_counts()
        t_start, cpu_start = time.monotonic(), cpu_seconds(exporter.pid)
        t_end_target = t_start + ESTATE_INTERVALS * interval
        rss_max, scrapes, next_scrape = 0, 0, t_start
        while True:
            now = time.monotonic()
            if now >= t_end_target:
                break
            if now >= next_scrape:
                assert http_get(exporter.port, "/metrics", gzip_ok=True)[0] == 200
                scrapes += 1
                next_scrape += SCRAPE_EVERY
            rss_max = max(rss_max, memory_kib(exporter.pid)[0])
            time.sleep(max(0.01, min(1.0, next_scrape - time.monotonic(), t_end_target - time.monotonic())))
        t_end, cpu_end = time.monotonic(), cpu_seconds(exporter.pid)
        counts_end = sim.request_counts()
        rss_end, hwm = memory_kib(exporter.pid)
        rss_max = max(rss_max, rss_end)
        load_end = loadavg()
        text_end = exporter.metrics(gzip_ok=True)

        window = t_end - t_start
        intervals = window / interval
        ops = by_operation(counts_start, counts_end)
        per_interval = {op: n / intervals for op, n in ops.items() if n}
        ssm_calls = sum(per_interval.get(op, 0) for op in SSM_OPERATIONS)
        p0, p1 = polls_by_reason(text_start), polls_by_reason(text_end)
        reasons = {r: (p1[r] - p0.get(r, 0)) / intervals for r in p1 if p1[r] - p0.get(r, 0)}
        listing_pages = sum(math.ceil(n / 50) for n in scope_sizes(associations, accounts, regions))
        bound = listing_pages + 2 * active + active
        sweep = associations * interval / ESTATE_FULL_SWEEP
        # Every request went to the simulator, STS included; every scope lists, no poll fails.
        totals = by_operation({}, counts_end)
        own_sts = {k: v for k, v in counts_end.items()
                   if k[0] == OWN_ACCOUNT and k[2] in STS_OPERATIONS}
        if not totals.get("GetCallerIdentity"):
            raise RuntimeError("the simulator saw no GetCallerIdentity: STS went elsewhere")
        if accounts > 1 and totals.get("AssumeRole", 0) < (accounts - 1) * len(regions):
            raise RuntimeError(f"the simulator saw {totals.get('AssumeRole', 0)} AssumeRole calls")
        failed = sum(1 for _, v in metric_series(text_end, "ssm_association_exporter_poll_success")
                     if v == 0)
        listing_failed = sum(1 for _, v in metric_series(
            text_end, "ssm_association_exporter_listing_success") if v != 1)
        exporter_calls = {}
        for labels, v in metric_series(text_end, "ssm_association_exporter_api_requests_total"):
            exporter_calls[labels.get("operation", "?")] = exporter_calls.get(
                labels.get("operation", "?"), 0) + v
        cpu_pct = 100 * (cpu_end - cpu_start) / window
        log(f"  SSM calls per interval {ssm_calls:.1f} (bound {bound}: {listing_pages} listing pages "
            f"+ 2 × {active} active + {active} pending); by operation "
            + ", ".join(f"{op} {n:.1f}" for op, n in sorted(per_interval.items()))
            + "; polls per interval by reason "
            + ", ".join(f"{r} {n:.1f}" for r, n in sorted(reasons.items())))
        log(f"  CPU {cpu_pct:.2f}% of a core, RSS {rss_end / 1024:.1f} MiB (max {rss_max / 1024:.1f}, "
            f"VmHWM {hwm / 1024:.1f}); STS {own_sts}; failed polls {failed}, failed listings "
            f"{listing_failed}")
        result = {
            "associations": associations, "accounts": accounts, "regions": len(regions),
            "scopes": n_scopes, "interval": interval, "active": active,
            "ready": ready_wall, "first_round": first_round_wall, "cpu_first": cpu_first,
            "awaiting_first": awaiting_first,
            "awaiting_end": metric_sum(text_end,
                                       "ssm_association_exporter_associations_awaiting_first_poll"),
            "rss_first": rss_first, "hwm_first": hwm_first,
            "window": window, "intervals": intervals, "per_interval": per_interval,
            "ssm_calls": ssm_calls, "reasons": reasons, "listing_pages": listing_pages,
            "bound": bound, "sweep": sweep, "cpu_pct": cpu_pct, "cpu": cpu_end - cpu_start,
            "rss_end": rss_end, "rss_max": rss_max, "hwm": hwm, "scrapes": scrapes,
            "sts_totals": {op: totals.get(op, 0) for op in STS_OPERATIONS},
            "exporter_calls": exporter_calls, "failed_polls": failed,
            "failed_listings": listing_failed, "load": f"{load_start} → {load_end}",
        }
        if scrape_figures:
            plain = exporter.metrics()
            _, encoding, zipped = http_get(exporter.port, "/metrics", gzip_ok=True)
            if encoding != "gzip":
                raise RuntimeError("/metrics did not gzip for Accept-Encoding: gzip")
            log(f"  /metrics {len(plain.encode()):,} B plain, {len(zipped):,} B gzip; wrk for {WRK_SECONDS} s")
            scrape = wrk(exporter.port)
            log(f"  wrk p50 {scrape['p50']:.2f} ms, p99 {scrape['p99']:.2f} ms, {scrape['rps']:.0f} req/s")
            result.update({"plain_bytes": len(plain.encode()), "gzip_bytes": len(zipped),
                           "series": series_count(plain), "scrape": scrape})
    finally:
        exporter.stop()
        sim.stop()
    return result


# --------------------------------------------------------------------------- events (issue 22)

EVENTS_ASSOCIATIONS = int(os.environ.get("BENCH_EVENTS_ASSOCIATIONS", "1000"))
EVENTS_SECONDS = float(os.environ.get("BENCH_EVENTS_SECONDS", "120" if QUICK else "420"))
EVENTS_RATE = float(os.environ.get("BENCH_EVENTS_RATE", "0.5"))
# After the first round, before the window: past the late-visibility window (10 min) and one
# listing interval (5 min with events) after the start, so that the `late` polls of the
# simulator's history (its last runs end just before the start, and have no events) are done,
# and those of runs since fall in the window as in steady state.
EVENTS_WARMUP = float(os.environ.get("BENCH_EVENTS_WARMUP", "30" if QUICK else "960"))
EVENTS_DELAY = "1s"  # the simulator's events become receivable 1 s after the change
EVENTS_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/ssm-association-events"
EVENTS_SCRAPE_PERIOD = 0.25
EVENTS_INTERVAL = 60  # calls are reported per 60 s
EXECUTIONS_TOTAL = "ssm_association_executions_total"
SQS_OPERATIONS = ("ReceiveMessage", "DeleteMessageBatch", "DeleteMessage", "GetQueueAttributes")


def executions_by_association(text):
    counts = {}
    for labels, v in metric_series(text, EXECUTIONS_TOTAL):
        counts[labels["association_id"]] = counts.get(labels["association_id"], 0) + v
    return counts


def percentile(values, q):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def events_run(bins, with_events):
    """EVENTS_ASSOCIATIONS associations, the default request budget (5/s) and intervals, runs
    ending at EVENTS_RATE per second on random associations; with events the simulator puts
    each change's events on its SQS queue, receivable 1 s later, and the config reads it.
    After the first round and EVENTS_WARMUP (960 s: past the late-visibility window and a
    listing interval, so the history's `late` polls are done and the window holds those of
    earlier runs as in steady state), for EVENTS_SECONDS: /metrics (gzip) every 0.25 s; each rise
    of an association's `executions_total` is matched to the earliest uncounted run end of
    that association (the simulator's /_sim/ends), so latency = when the scrape that showed it
    returned − when the run reached its final state. Calls: the simulator's request counts
    over the window."""
    mode = "on" if with_events else "off"
    exporter_bin, simulator_bin = bins
    log(f"events {mode}: {EVENTS_ASSOCIATIONS:,} associations, {EVENTS_RATE}/s runs, "
        f"window {EVENTS_SECONDS:.0f} s")
    tmp = tempfile.mkdtemp(prefix="ssm-bench-events-")
    config_path = os.path.join(tmp, "config.yaml")
    sim_args = ["--associations", EVENTS_ASSOCIATIONS, "--executions", 20, "--history", "50m",
                "--new-executions-per-second", EVENTS_RATE]
    if with_events:
        sim_args += ["--event-queue", EVENTS_QUEUE, "--event-faults", f"delay={EVENTS_DELAY}"]
    sim = Simulator(simulator_bin, sim_args, config_out=config_path, requests=True)
    # The exporter's own defaults for the intervals (60s; 5m with events), not the written one.
    with open(config_path) as f:
        lines = [line for line in f if not line.startswith("poll_interval:")]
    if with_events:
        lines.append(f"events:\n  queues:\n    - url: {EVENTS_QUEUE}\n")
    with open(config_path, "w") as f:
        f.writelines(lines)
    checked = subprocess.run([exporter_bin, "--config.check", f"--config.file={config_path}"],
                             capture_output=True, text=True, timeout=30)
    if checked.returncode != 0:
        sim.stop()
        raise RuntimeError(f"--config.check failed: {checked.stderr or checked.stdout}")
    summary = dict(line.split(": ", 1) for line in checked.stdout.splitlines()
                   if ": " in line and not line.startswith(" "))
    exporter = Exporter(exporter_bin, config_path, sim.url)
    load_start = loadavg()
    try:
        exporter.wait_ready()
        deadline = time.monotonic() + READY_TIMEOUT + EVENTS_ASSOCIATIONS / 5 * 2
        while not first_round(exporter.metrics(gzip_ok=True), 1, EVENTS_ASSOCIATIONS)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("events: first round not done in time")
            time.sleep(1.0)
        log(f"  first round done after {time.monotonic() - exporter.t0:.0f} s; "
            f"warm-up {EVENTS_WARMUP:.0f} s")
        time.sleep(EVENTS_WARMUP)
        text_start = exporter.metrics(gzip_ok=True)
        counts_start = sim.request_counts()
        cpu_start = cpu_seconds(exporter.pid)
        w0 = time.time()
        w1 = w0 + EVENTS_SECONDS
        # Time to count the window's last runs: a listing interval and a poll budget's worth
        # without events, a few seconds with them.
        grace = 30 if with_events else 150
        seen = executions_by_association(text_start)
        rises = []  # (association, count, time seen)
        counts_end = text_end = cpu_end = None
        scrapes = 0
        while time.time() < w1 + grace:
            t_next = time.monotonic() + EVENTS_SCRAPE_PERIOD
            text = exporter.metrics(gzip_ok=True)
            t_seen = time.time()
            scrapes += 1
            for association, n in executions_by_association(text).items():
                if n > seen.get(association, 0):
                    rises.append((association, n - seen.get(association, 0), t_seen))
                    seen[association] = n
            if counts_end is None and t_seen >= w1:
                counts_end, text_end = sim.request_counts(), text
                cpu_end = cpu_seconds(exporter.pid)
            time.sleep(max(0.0, t_next - time.monotonic()))
        ends_status, _, body = http_get(sim.requests_port, "/_sim/ends")
        if ends_status != 200:
            raise RuntimeError(f"/_sim/ends answered {ends_status}")
        ends = json.loads(body)["ends"]
    finally:
        exporter.stop()
        sim.stop()
    load_end = loadavg()

    # Match the rises of each association to its run ends from the latest back: each unit of
    # a rise takes the latest end before it that no later rise took. Ends from before the
    # window that were counted before it (their rises not seen) are then left over, never
    # taken by a rise in the window in place of the run it counted.
    by_association = {}
    for e in ends:
        by_association.setdefault(e["association_id"], []).append(e["ended_ms"] / 1000)
    latencies = []
    for association, ended_list in by_association.items():
        ended_list.sort()
        units = sorted((t_seen for a, n, t_seen in rises if a == association
                        for _ in range(int(n))), reverse=True)
        for t_seen in units:
            while ended_list and ended_list[-1] > t_seen:
                ended_list.pop()  # ended after this count: a later rise's, or none yet
            if not ended_list:
                break  # a count without a run of ours before it (history)
            ended = ended_list.pop()
            if w0 <= ended <= w1:
                latencies.append(t_seen - ended)
    in_window = sum(1 for e in ends if w0 <= e["ended_ms"] / 1000 <= w1)
    window = EVENTS_SECONDS
    intervals = window / EVENTS_INTERVAL
    ops = by_operation(counts_start, counts_end)
    ssm = {op: n for op, n in ops.items() if op in SSM_OPERATIONS and n}
    sqs = {op: n for op, n in ops.items() if op in SQS_OPERATIONS and n}
    p0, p1 = polls_by_reason(text_start), polls_by_reason(text_end)
    reasons = {r: p1[r] - p0.get(r, 0) for r in p1 if p1[r] - p0.get(r, 0)}
    nan = float("nan")
    result = {
        "mode": mode, "poll_interval": summary.get("poll_interval", "?"),
        "full_sweep_interval": summary.get("full_sweep_interval", "?"),
        "window": window, "runs": in_window, "measured": len(latencies),
        "missed": in_window - len(latencies), "grace": grace,
        "p50": percentile(latencies, 50) if latencies else nan,
        "p99": percentile(latencies, 99) if latencies else nan,
        "max": max(latencies) if latencies else nan,
        "ssm_per_interval": sum(ssm.values()) / intervals,
        "ssm_per_run": sum(ssm.values()) / max(1, in_window),
        "ssm": {op: n / intervals for op, n in ssm.items()},
        "sqs_per_interval": sum(sqs.values()) / intervals,
        "sqs": {op: n / intervals for op, n in sqs.items()},
        "reasons": {r: n / intervals for r, n in reasons.items()},
        "cpu_pct": 100 * (cpu_end - cpu_start) / window, "scrapes": scrapes,
        "load": f"{load_start} → {load_end}",
    }
    log(f"  {in_window} runs ended in the window, {len(latencies)} counted within {grace} s "
        f"after it; latency p50 {result['p50']:.2f} s, p99 {result['p99']:.2f} s, max "
        f"{result['max']:.2f} s; SSM calls/interval {result['ssm_per_interval']:.1f} ("
        + ", ".join(f"{op} {n:.1f}" for op, n in sorted(result["ssm"].items()))
        + f"; {result['ssm_per_run']:.2f}/run), SQS calls/interval "
        f"{result['sqs_per_interval']:.1f}; polls/interval by reason "
        + ", ".join(f"{r} {n:.1f}" for r, n in sorted(result["reasons"].items())))
    return result


def events_report(args, runs, elapsed):
    knobs = [f"{k}={os.environ[k]}" for k in ("BENCH_EVENTS_SECONDS", "BENCH_EVENTS_RATE",
                                               "BENCH_EVENTS_ASSOCIATIONS", "BENCH_EVENTS_WARMUP",
                                               "BENCH_EVENTS_MODES", "BENCH_QUICK")
             if k in os.environ]
    out = [f"# Events benchmark (issue 22), {time.strftime('%Y-%m-%d')}", "",
           f"- Machine: {machine()}",
           "- Command: `" + " ".join(knobs + ["BENCH_ONLY=events", "bench/run"]) + "`",
           f"- Binaries: `{args.exporter}`, `{args.simulator}`; elapsed {elapsed / 60:.1f} min",
           f"- {EVENTS_ASSOCIATIONS:,} associations, one account and region, default request "
           f"budget (5/s, 4 concurrent) and intervals, runs ending at {EVENTS_RATE}/s on random "
           f"associations, simulator events receivable {EVENTS_DELAY} after the change; "
           f"window after the first round and {EVENTS_WARMUP:.0f} s; "
           f"/metrics read every {EVENTS_SCRAPE_PERIOD} s", "",
           "| events | poll_interval | runs counted / ended | final → counter p50 | p99 | max "
           "| SSM calls / 60 s | SSM calls / run | SQS calls / 60 s | polls / 60 s by reason "
           "| exporter CPU | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        reasons = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["reasons"].items()))
        out.append(
            f"| {r['mode']} | {r['poll_interval']} | {r['measured']}/{r['runs']} "
            f"| {r['p50']:.2f} s | {r['p99']:.2f} s | {r['max']:.2f} s "
            f"| {r['ssm_per_interval']:.1f} | {r['ssm_per_run']:.2f} | {r['sqs_per_interval']:.1f} "
            f"| {reasons} | {r['cpu_pct']:.1f}% | {r['load']} |")
    on = [r for r in runs if r["mode"] == "on"]
    if on:
        met = all(r["p99"] <= 5 and r["missed"] == 0 for r in on)
        out += ["", f"Target p99 ≤ 5 s with events (every run counted): {verdict(met)}."]
    return "\n".join(out)


def events_runs(bins):
    modes = os.environ.get("BENCH_EVENTS_MODES", "off,on").split(",")
    return [events_run(bins, mode == "on") for mode in modes]


# --------------------------------------------------------------------------- report

def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return f"{os.cpu_count()} CPUs ({os.sched_getaffinity(0).__len__()} usable), {model}, " \
           f"{mem_kib / 1024 / 1024:.1f} GiB RAM, {platform.system()} {platform.release()}"


def verdict(ok):
    return "met" if ok else "**missed**"


def estate_rows(row, e, mib):
    n, big = e["associations"], e["associations"] >= 10000
    tag = (f"estate {n:,} assoc, {e['accounts']} acct × {e['regions']} region"
           f"{'s' if e['regions'] > 1 else ''}, {e['interval']} s interval")
    row(tag, "start → /readyz 200", f"{e['ready']:.2f} s", "< 1 min" if big else "",
        verdict(e["ready"] < 60) if big else "", e["load"])
    row(tag, "start → first round done (every scope listed, every association's first poll "
        "ended: N poll_success series; /metrics checked every 1 s); "
        "associations_awaiting_first_poll then / at the end",
        f"{e['first_round']:.1f} s ({e['cpu_first']:.2f} CPU-s); "
        f"{e['awaiting_first']:.0f} / {e['awaiting_end']:.0f}",
        "< 1 min; gauge 0" if big else "gauge 0",
        (verdict(e["first_round"] < 60) + "; " if big else "")
        + verdict(e["awaiting_end"] == 0), "")
    row(tag, "RSS after the first round (VmHWM)",
        f"{mib(e['rss_first'])} ({mib(e['hwm_first'])})", "≤ 150 MB" if big else "",
        verdict(max(e["rss_first"], e["hwm_first"]) * 1024 <= 150_000_000) if big else "", "")
    ops = ", ".join(f"{op} {v:.1f}" for op, v in sorted(e["per_interval"].items()))
    row(tag, f"SSM calls per interval ({e['intervals']:.2f} intervals after the follow-up round)",
        f"{e['ssm_calls']:.1f} ({ops})",
        f"≤ {e['bound']} = {e['listing_pages']} pages + 2 × {e['active']} active + {e['active']} pending",
        verdict(e["ssm_calls"] <= e["bound"]), "")
    if n == 1000:
        row(tag, "fewer calls than one poll per association per interval",
            f"× {n / e['ssm_calls']:.1f} fewer ({n:,} → {e['ssm_calls']:.1f})", "≥ × 10",
            verdict(n / e["ssm_calls"] >= 10), "")
    reasons = ", ".join(f"{k} {v:.1f}" for k, v in sorted(e["reasons"].items())) or "none"
    row(tag, "polls per interval by reason (polls_total); sweep term N·interval/full_sweep_interval",
        f"{reasons}; sweep term {e['sweep']:.1f} per interval (not in the window: the first "
        f"sweeps come 30-60 min after the first poll)", "", "", "")
    row(tag, f"exporter CPU, % of one core (window, {e['scrapes']} gzip scrapes)",
        f"{e['cpu_pct']:.2f}% ({e['cpu']:.2f} CPU-s in {e['window']:.0f} s)",
        "≤ 1%" if n == 1000 else "", verdict(e["cpu_pct"] <= 1.0) if n == 1000 else "", "")
    row(tag, "RSS at end / max in window / VmHWM",
        f"{mib(e['rss_end'])} / {mib(e['rss_max'])} / {mib(e['hwm'])}",
        "≤ 150 MB" if big else "",
        verdict(max(e["rss_max"], e["hwm"]) * 1024 <= 150_000_000) if big else "", "")
    row(tag, "STS calls since start (simulator); failed polls / listings at end",
        ", ".join(f"{k} {v}" for k, v in e["sts_totals"].items())
        + f"; {e['failed_polls']} / {e['failed_listings']}", "", "", "")
    if "scrape" in e:
        w = e["scrape"]
        row(tag, "/metrics body plain / gzip; series",
            f"{e['plain_bytes']:,} B / {e['gzip_bytes']:,} B; {e['series']:,}", "", "", "")
        problems = "".join([f"; {w['non2xx']} non-2xx" if w["non2xx"] else "",
                            f"; socket errors: {w['socket_errors']}" if w["socket_errors"] else ""])
        row(tag, f"wrk -t2 -c8 -d{WRK_SECONDS}s --latency on /metrics, gzip: p50 / p99; requests/s",
            f"{w['p50']:.2f} ms / {w['p99']:.2f} ms; {w['rps']:,.1f} ({w['requests']} requests{problems})",
            "p99 ≤ 100 ms" if big else "", verdict(w["p99"] <= 100) if big else "", "")


def report(args, r):
    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    env = " ".join(f"{k}={os.environ[k]}" for k in
                   ("BENCH_QUICK", "BENCH_STEADY_SECONDS", "BENCH_WRK_SECONDS", "BENCH_ONLY",
                    "BENCH_ESTATE_INTERVALS") if k in os.environ)
    lines = [
        "## ssm-association-exporter benchmarks", "",
        f"- command: `{(env + ' ') if env else ''}bench/run`",
        f"- machine: {machine()}",
        f"- exporter: {os.path.getsize(args.exporter)} bytes (release, stripped); "
        f"revision {r['revision']}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; total run time {r['elapsed']:.0f} s",
        *([f"- estate: poll_interval {ESTATE_INTERVAL} s"
           + (" (quick mode: 10 s instead of 60 s, so that a window of "
              f"{ESTATE_INTERVALS} intervals fits)" if QUICK else "")
           + f", {ESTATE_ACTIVE_FRACTION:.0%} of the associations start a run every interval, "
           f"api_requests_per_second {ESTATE_RPS}, max_concurrent_requests 8, "
           "20 executions per association over 50 min, initial_lookback 1h, "
           "full_sweep_interval 1h", ""] if "estate" in r else [""]),
        "| scenario | figure | value | target | result | load avg (1/5/15 min) |",
        "|---|---|---|---|---|---|",
    ]
    row = lambda *cells: lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    for c in r.get("series", []):
        row(f"series {c['associations']:,} assoc, {c['setting']}",
            "series per association: mean / min / max (max without the data-dependent families); "
            "total series; plain body",
            f"{c['mean']:.2f} / {c['min']} / {c['max']} ({c['fixed_max']}); {c['total']:,} "
            f"({c['other']} without association_id); {c['plain_bytes']:,} B",
            "≤ 20 (+ data-dependent)" if c["setting"] == "default" else "",
            verdict(c["fixed_max"] <= 20) if c["setting"] == "default" else "", "")
    for e in r.get("estate", []):
        estate_rows(row, e, mib)
    if "calls" in r:
        lines.extend(calls.report_lines(r["calls"]))
    if "ingest_big" not in r:
        return "\n".join(lines)
    for name, g in (("ingest 1,000 × 200", r["ingest_big"]), ("ingest 500 × 200", r["ingest_small"])):
        per_cpu = g["executions"] / g["cpu"]
        big = g is r["ingest_big"]
        row(name, "executions per exporter CPU-second", f"{per_cpu:,.0f}",
            "≥ 100,000" if big else "", verdict(per_cpu >= 100_000) if big else "", g["load"])
        row(name, "CPU-seconds per 100,000 executions",
            f"{g['cpu'] * 100_000 / g['executions']:.3f} ({g['cpu']:.2f} CPU-s total)", "", "", "")
        row(name, "backfill wall time (start → ready)",
            f"{g['wall']:.2f} s ({g['calls']:.0f} calls, {g['executions'] / g['wall']:,.0f} executions/s)",
            "", "", "")
    for f in r["rate"]:
        ratio = f["wall"] / f["floor"]
        row(f"rate limit {f['rate']:g}/s", "one cycle vs floor (calls / rate)",
            f"{f['wall']:.2f} s vs {f['floor']:.2f} s ({(ratio - 1) * 100:+.1f}%, {f['calls']:.0f} calls)",
            "within 10%", verdict(abs(ratio - 1) <= 0.10), f["load"])
        row(f"rate limit {f['rate']:g}/s", "achieved rate", f"{f['achieved']:.1f} requests/s", "", "", "")
        row(f"rate limit {f['rate']:g}/s", f"throttles (simulator limit {2 * f['rate']:g}/s)",
            f"{f['throttles']:.0f}", "0", verdict(f["throttles"] == 0), "")
    for s in r["steady"]:
        n = s["associations"]
        tag = f"steady {n:,} assoc"
        cpu_target = "≤ 1%" if n == 1000 else ""
        rss_target = 40 if n == 1000 else 150
        row(tag, f"exporter CPU, % of one core ({s['window']:.0f} s window, {s['scrapes']} gzip scrapes)",
            f"{s['cpu_pct']:.2f}% ({s['cpu']:.2f} CPU-s)", cpu_target,
            verdict(s["cpu_pct"] <= 1.0) if n == 1000 else "", s["load"])
        row(tag, "RSS at end / max in window / VmHWM",
            f"{mib(s['rss_end'])} / {mib(s['rss_max'])} / {mib(s['hwm'])}", f"≤ {rss_target} MB",
            verdict(max(s["rss_max"], s["hwm"]) * 1024 <= rss_target * 1_000_000), "")
        row(tag, "series (non-comment lines of /metrics)", f"{s['series']:,}", "", "", "")
        row(tag, "/metrics body plain / gzip",
            f"{s['plain_bytes']:,} B / {s['gzip_bytes']:,} B", "", "", "")
        row(tag, "start → ready; SSM calls at end; max poll delay; failed polls",
            f"{s['ready']:.1f} s; {s['calls']:.0f}; {s['max_delay']:.2f} s; {s['failed_polls']}", "", "", "")
        w = s["scrape"]
        p99_target = "≤ 100 ms" if n == 10000 else ""
        row(f"scrape {n:,} assoc", f"wrk -t2 -c8 -d{WRK_SECONDS}s --latency, gzip: p50 / p99",
            f"{w['p50']:.2f} ms / {w['p99']:.2f} ms", p99_target,
            verdict(w["p99"] <= 100) if n == 10000 else "", "")
        problems = "".join([f"; {w['non2xx']} non-2xx" if w["non2xx"] else "",
                            f"; socket errors: {w['socket_errors']}" if w["socket_errors"] else ""])
        row(f"scrape {n:,} assoc", "requests/s",
            f"{w['rps']:,.1f} ({w['requests']} requests{problems})", "", "", "")
    st = r["startup"]
    row("start-up 100 assoc", f"start → /readyz 200, median of {r['startup_runs']}",
        f"{st['median'] * 1000:.0f} ms (min {st['min'] * 1000:.0f}, max {st['max'] * 1000:.0f}; "
        f"{st['cpu'] * 1000:.0f} ms CPU)", "", "", st["load"])
    big, small = r["ingest_big"], r["ingest_small"]
    row("growth: ingest", "CPU-s, 200k vs 100k executions",
        f"{big['cpu']:.2f} vs {small['cpu']:.2f} (× {big['cpu'] / small['cpu']:.2f} for × 2 work)", "", "", "")
    s1, s10 = r["steady"]
    row("growth: steady", "CPU % and RSS, 10,000 vs 1,000 associations",
        f"× {s10['cpu_pct'] / s1['cpu_pct']:.1f} CPU, × {s10['rss_end'] / s1['rss_end']:.1f} RSS "
        f"for × 10 associations", "", "", "")
    return "\n".join(lines)


def estate_runs(bins):
    """a) 1,000 associations in one account and region; b) 10,000 in 3 accounts × 3 regions."""
    sizes = os.environ.get("BENCH_ESTATE_SIZES", "1000,10000").split(",")
    runs = []
    if "1000" in sizes:
        runs.append(estate(bins, 1000, 1, ["us-east-1"], scrape_figures=False))
    if "10000" in sizes:
        runs.append(estate(bins, 10000, 3, ["us-east-1", "eu-west-1", "ap-southeast-2"],
                           scrape_figures=True))
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exporter", required=True)
    parser.add_argument("--simulator", required=True)
    args = parser.parse_args()
    bins = (args.exporter, args.simulator)
    for b in bins:
        if not os.access(b, os.X_OK):
            sys.exit(f"bench.py: {b} is not an executable")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # calls.py uses this script's helpers, so that its processes are ended with the others.
    calls.b = sys.modules[__name__]
    try:
        revision = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                  text=True).stdout.strip() or "unknown"
        r = {"revision": revision}
        repeats = 1 if QUICK else 3
        log(f"load average {loadavg()}; quick={QUICK}, steady window {STEADY_SECONDS:.0f} s")
        only = os.environ.get("BENCH_ONLY", "")
        if only not in ("", "series", "estate", "calls", "events"):
            sys.exit(f"bench.py: BENCH_ONLY={only!r}: expected series, estate, calls or events")
        if only == "events":
            runs = events_runs(bins)
            print(events_report(args, runs, time.monotonic() - T_START), flush=True)
            return
        if only in ("", "series"):
            settings = os.environ.get("BENCH_SERIES_SETTINGS", "default,richest").split(",")
            r["series"] = [series(bins, n, setting) for setting in settings for n in (1000, 10000)]
        if only in ("", "estate"):
            r["estate"] = estate_runs(bins)
        if only in ("", "calls"):
            r["calls"] = calls.run_all(bins, os.environ.get("BENCH_BEFORE_EXPORTER") or None)
        if only:
            r["elapsed"] = time.monotonic() - T_START
            print(report(args, r), flush=True)
            return
        # Ingest: the median run (by CPU) of `repeats`.
        for key, n in (("ingest_big", 1000), ("ingest_small", 500)):
            runs = sorted((ingest(bins, n, 200) for _ in range(repeats)), key=lambda g: g["cpu"])
            r[key] = runs[len(runs) // 2]
        r["rate"] = [rate_fidelity(bins, rate) for rate in (50, 200)]
        r["steady"] = [steady(bins, n) for n in (1000, 10000)]
        r["startup_runs"] = 3 if QUICK else 5
        r["startup"] = startup(bins, r["startup_runs"])
        r["elapsed"] = time.monotonic() - T_START
        print(report(args, r), flush=True)
    finally:
        stop_all()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The request cost of an estate at the default budget (issue 21), before and after.

10,000 associations in 3 accounts × 3 regions, every setting at its default
(`api_requests_per_second: 5`, `poll_interval: 60s`, ...), and four scenarios:
  a) a quiet estate: calls per interval per account and region, by operation;
  b) 5 % of the associations running every interval: calls per run;
  c) a wave: every association running for 2 hours at once: polls per run;
  d) a first start with a day of history: time to ready, execution pages, target reads.

Time is scaled (bench/README.md, "Scaled time"): with a factor s every duration of the config
and of the simulated data is divided by s and `api_requests_per_second` (and
`max_concurrent_requests`) multiplied by s, so the calls per interval, per run and per
association are those of the default settings in real time, s times faster. Figures are given
in estate time (real seconds × s). The wave is also run on a smaller estate at two factors to
show that its figure does not depend on the factor. Time to ready is measured in real time
(s = 1): readiness has a fixed 60 s grace.

Run by bench/bench.py (BENCH_ONLY=calls), which passes the binaries; BENCH_BEFORE_EXPORTER
adds a "before" column measured with that exporter binary against the same simulator.
"""

import json
import math
import os
import subprocess
import tempfile
import time

import bench as b  # bench.py sets this to itself (__main__) so its processes are ended with the rest

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
N = int(os.environ.get("BENCH_CALLS_ASSOCIATIONS", "10000"))
ACCOUNTS, REGIONS = 3, ["us-east-1", "eu-west-1", "ap-southeast-2"]
SCOPES = ACCOUNTS * len(REGIONS)
# Time factors. (a), (b), (d): 10, so that the scaled late_visibility_window (60 s) is not below
# the exporter's fixed least delta-listing margin of 60 s (a smaller one would widen the delta
# listings, a cost the default settings do not have). (c): 60 (a 1 s poll_interval, the least).
SCALE_AB = int(os.environ.get("BENCH_CALLS_SCALE", "10"))
SCALE_WAVE = int(os.environ.get("BENCH_WAVE_SCALE", "60"))
# The wave's check of scale invariance: a smaller estate at two factors (skipped when quick).
CHECK_N = 900
CHECK_SCALES = (30, 60)
WINDOW = 10 if QUICK else 20  # intervals per window of (a) and (b)

# The defaults (README), seconds.
INTERVAL = 60
LATE_WINDOW = 600
FULL_LISTING = 600
FULL_SWEEP = 3600
PENDING_MAX = 3600
LOOKBACK = 3600
RPS = 5
CONCURRENT = 4
SWEEP_CAP = 5  # full_sweep_max_polls_per_interval
WAVE_RUN = 7200
TARGETS_OP = "DescribeAssociationExecutionTargets"
EXECS_OP = "DescribeAssociationExecutions"
LIST_OP = "ListAssociations"
SSM_OPS = (LIST_OP, EXECS_OP, TARGETS_OP, "DescribeAssociation", "ListTagsForResource")


def ms(seconds):
    return f"{max(1, round(seconds * 1000))}ms"


def per_scope(n):
    return b.scope_sizes(n, ACCOUNTS, REGIONS)


class Run:
    """One simulator (estate mode, request counts) and one exporter with time scaled by `s`."""

    def __init__(self, exporter_bin, simulator_bin, n, s, sim_args, lookback=LOOKBACK):
        self.s, self.n = s, n
        self.interval = INTERVAL / s
        tmp = tempfile.mkdtemp(prefix="ssm-bench-calls-")
        self.config_path = os.path.join(tmp, "config.yaml")
        self.sim = b.Simulator(
            simulator_bin,
            ["--associations", n, "--accounts", ACCOUNTS, "--regions", ",".join(REGIONS),
             "--external-id", "bench-external-id"] + sim_args,
            config_out=self.config_path,
            config={"poll_interval": ms(INTERVAL / s),
                    "api_requests_per_second": RPS * s,
                    "max_concurrent_requests": min(256, CONCURRENT * s),
                    "initial_lookback": ms(lookback / s),
                    "full_sweep_interval": ms(FULL_SWEEP / s)},
            requests=True)
        self.t_sim = time.monotonic()
        with open(self.config_path, "a") as f:
            f.write(f"late_visibility_window: {ms(LATE_WINDOW / s)}\n")
        # The keys issue 21 added, scaled, if this exporter has them (the "before" one has not).
        self.new_keys = self._try_keys(exporter_bin, {
            "full_listing_interval": ms(FULL_LISTING / s),
            "pending_recheck_max_interval": ms(PENDING_MAX / s)})
        self.exporter = b.Exporter(exporter_bin, self.config_path, self.sim.url)

    def _try_keys(self, exporter_bin, keys):
        with open(self.config_path) as f:
            base = f.read()
        with open(self.config_path, "w") as f:
            f.write(base + "".join(f"{k}: {v}\n" for k, v in keys.items()))
        check = subprocess.run([exporter_bin, "--config.check", f"--config.file={self.config_path}"],
                               capture_output=True, text=True, timeout=30)
        if check.returncode == 0:
            return True
        with open(self.config_path, "w") as f:
            f.write(base)
        check = subprocess.run([exporter_bin, "--config.check", f"--config.file={self.config_path}"],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"--config.check failed: {check.stderr or check.stdout}")
        return False

    def estate_s(self, real_seconds):
        return real_seconds * self.s

    def wait_first_round(self, timeout=300.0):
        """Real seconds from the exporter's start until every association's first poll ended."""
        deadline = self.exporter.t0 + timeout
        while time.monotonic() < deadline:
            if self.exporter.proc.poll() is not None:
                raise RuntimeError(f"exporter exited with {self.exporter.proc.returncode}")
            try:
                done, _ = b.first_round(self.exporter.metrics(gzip_ok=True), SCOPES, self.n)
                if done:
                    return time.monotonic() - self.exporter.t0
            except (OSError, RuntimeError):
                pass
            time.sleep(0.5)
        raise RuntimeError("first round not done in time")

    def sleep_until_estate(self, estate_seconds_since_sim):
        """Sleeps until `estate_seconds_since_sim` (estate time) after the simulator started."""
        left = self.t_sim + estate_seconds_since_sim / self.s - time.monotonic()
        if left * self.s < -3 * INTERVAL:
            raise RuntimeError(f"late by {-left:.1f} s (estate {-left * self.s:.0f} s): "
                               "the machine is too slow for this time factor")
        if left < 0:
            b.log(f"  late by {-left:.1f} s (estate {-left * self.s:.0f} s)")
        time.sleep(max(0.0, left))

    def counts(self):
        return self.sim.request_counts()

    def polls(self):
        return b.polls_by_reason(self.exporter.metrics(gzip_ok=True))

    def stop(self):
        self.exporter.stop()
        self.sim.stop()


def window_figures(before, after, intervals):
    """Per scope and operation: calls per interval; the mean over scopes and the largest scope."""
    scopes = {}
    for key, n in after.items():
        account, region, op = key
        if op not in SSM_OPS:
            continue
        d = n - before.get(key, 0)
        scopes.setdefault((account, region), {}).setdefault(op, 0)
        scopes[(account, region)][op] += d / intervals
    mean = {op: sum(s.get(op, 0) for s in scopes.values()) / SCOPES for op in SSM_OPS}
    totals = {k: sum(v.values()) for k, v in scopes.items()}
    return {"mean_by_op": {op: v for op, v in mean.items() if v},
            "mean": sum(mean.values()), "max": max(totals.values(), default=0),
            "min": min(totals.values(), default=0)}


def diff_reasons(p0, p1, divisor):
    return {r: (p1[r] - p0.get(r, 0)) / divisor for r in p1 if p1[r] - p0.get(r, 0)}


def quiet_and_active(version, bins):
    """(a) then (b) in one run: quiet from 20 intervals after start, then 5 % active."""
    s = SCALE_AB
    # Estate seconds after the simulator started: the first round (about 4 intervals) and the
    # `late` polls of the history's newest runs (10 min after them) are over.
    quiet_from = 14 * INTERVAL
    active_from = quiet_from + WINDOW * INTERVAL
    measure_b = active_from + 12 * INTERVAL  # after the first runs' late polls began
    b.log(f"calls {version}: (a) quiet then (b) 5% active, {N} associations, time × {s}")
    run = Run(bins[0], bins[1], N, s,
              ["--executions", 20, "--history", ms(3000 / s),
               "--active-fraction", 0.05, "--activity-interval", ms(INTERVAL / s),
               "--activity-delay", ms(active_from / s)])
    try:
        first = run.wait_first_round()
        b.log(f"  first round after {first:.1f} s real ({run.estate_s(first):.0f} s estate)")
        run.sleep_until_estate(quiet_from)
        c0, p0 = run.counts(), run.polls()
        run.sleep_until_estate(active_from - INTERVAL / 4)
        c1, p1 = run.counts(), run.polls()
        quiet = window_figures(c0, c1, WINDOW - 0.25)
        quiet["reasons"] = diff_reasons(p0, p1, WINDOW - 0.25)
        b.log(f"  (a) quiet: {quiet['mean']:.1f} calls per interval per scope "
              f"({quiet['mean_by_op']}), polls by reason {quiet['reasons']}")
        run.sleep_until_estate(measure_b)
        c2, p2 = run.counts(), run.polls()
        run.sleep_until_estate(measure_b + WINDOW * INTERVAL)
        c3, p3 = run.counts(), run.polls()
        active = window_figures(c2, c3, WINDOW)
        active["reasons"] = diff_reasons(p2, p3, WINDOW)
        b.log(f"  (b) 5% active: {active['mean']:.1f} calls per interval per scope "
              f"({active['mean_by_op']}), polls by reason {active['reasons']}")
    finally:
        run.stop()
    runs = 0.05 * N / SCOPES
    extra = {op: active["mean_by_op"].get(op, 0) - quiet["mean_by_op"].get(op, 0)
             for op in set(active["mean_by_op"]) | set(quiet["mean_by_op"])}
    return {"scale": s, "first_round_estate": run.estate_s(first), "quiet": quiet,
            "active": active, "runs_per_interval": runs,
            "per_run": (active["mean"] - quiet["mean"]) / runs,
            "per_run_by_op": {op: v / runs for op, v in extra.items() if abs(v) > 1e-9},
            "new_keys": run.new_keys}


def wave(version, bins, n, s):
    """(c) every association starts a 2-hour run at once, 30 min after the simulator started."""
    lead = 30 * INTERVAL
    b.log(f"calls {version}: (c) wave of {n} 2-hour runs, time × {s}")
    run = Run(bins[0], bins[1], n, s,
              ["--executions", 20, "--history", ms(3000 / s),
               "--active-fraction", 1, "--activity-interval", "1000h",
               "--activity-delay", ms(lead / s), "--run-length", ms(WAVE_RUN / s)])
    try:
        first = run.wait_first_round()
        run.sleep_until_estate(lead - 2 * INTERVAL)
        c0, p0 = run.counts(), run.polls()
        end = lead + WAVE_RUN
        # The runs' ends are counted: until the in-progress gauge is 0 (checked about every
        # second; a gzip /metrics of 10,000 associations takes about that).
        in_progress_zero = None
        run.sleep_until_estate(end)
        deadline, last = end + 9 * INTERVAL, end + 20 * INTERVAL
        c1 = p1 = None
        while time.monotonic() < run.t_sim + last / s - 1.0:
            if c1 is None and time.monotonic() >= run.t_sim + deadline / s - 1.0:
                run.sleep_until_estate(deadline)
                c1, p1 = run.counts(), run.polls()
            if in_progress_zero is None:
                text = run.exporter.metrics(gzip_ok=True)
                if b.metric_sum(text, "ssm_association_executions_in_progress") == 0:
                    in_progress_zero = run.estate_s(time.monotonic() - run.t_sim) - end
            elif c1 is not None:
                break
            time.sleep(max(0.2, 1.0 / s))
        if c1 is None:
            run.sleep_until_estate(deadline)
            c1, p1 = run.counts(), run.polls()
        run.sleep_until_estate(last)
        c2, p2 = run.counts(), run.polls()
    finally:
        run.stop()
    polls = b.by_operation(c0, c1).get(EXECS_OP, 0)
    after = b.by_operation(c1, c2).get(EXECS_OP, 0)
    listing = b.by_operation(c0, c1).get(LIST_OP, 0)
    reasons = diff_reasons(p0, p1, n)
    result = {"n": n, "scale": s, "polls_per_run": polls / n, "after_per_run": after / n,
              # The sweep's polls in the window are the quiet estate's (associations whose run
              # ended, or not started yet), not the runs'.
              # Counted by the exporter (polls_total by reason) rather than by the simulator:
              # a poll and its call can fall on either side of the window's end.
              "run_polls_per_run": sum(v for r, v in reasons.items() if r != "sweep"),
              "reasons": diff_reasons(p0, p1, n), "reasons_after": diff_reasons(p1, p2, n),
              "end_counted_after": in_progress_zero, "first_round_estate": run.estate_s(first),
              "listing_per_interval_per_scope": listing / SCOPES / ((WAVE_RUN + 11 * INTERVAL) / INTERVAL),
              "targets_per_run": b.by_operation(c0, c2).get(TARGETS_OP, 0) / n,
              # Whether the budget (300 per interval per account and region) or the machine
              # bounded the polls: calls per interval per account and region in the window.
              "calls_per_interval_per_scope": sum(b.by_operation(c0, c1).get(op, 0) for op in SSM_OPS)
              / SCOPES / ((WAVE_RUN + 11 * INTERVAL) / INTERVAL)}
    b.log(f"  {polls / n:.2f} polls per run from 2 intervals before the wave to 9 after its end "
          f"({result['reasons']}); then {after / n:.2f} per run (late) ({result['reasons_after']}); "
          f"ends counted {in_progress_zero} estate s after the runs ended")
    return result


def first_start_counts(version, bins):
    """(d) a day of history (60 runs per association over 24 h, initial_lookback 24h so that
    the day is read): execution pages until the first round ended, target reads until they stop."""
    s = SCALE_AB
    b.log(f"calls {version}: (d) first start with a day of history, time × {s}")
    run = Run(bins[0], bins[1], N, s, ["--executions", 60, "--history", ms(86400 / s)],
              lookback=86400)
    try:
        first = run.wait_first_round(timeout=600)
        c_first = run.counts()
        # Target reads use what the polls leave: wait until none came for 5 intervals.
        last, still, t_last = b.by_operation({}, c_first).get(TARGETS_OP, 0), 0, time.monotonic()
        while still < 5 * run.interval and time.monotonic() - t_last < 600:
            time.sleep(run.interval)
            now = b.by_operation({}, run.counts()).get(TARGETS_OP, 0)
            still = still + run.interval if now == last else 0
            last = now
        c_end = run.counts()
    finally:
        run.stop()
    ops_first = b.by_operation({}, c_first)
    ops_end = b.by_operation({}, c_end)
    result = {"scale": s, "first_round_estate": run.estate_s(first),
              "pages": ops_first.get(EXECS_OP, 0), "pages_per_assoc": ops_first.get(EXECS_OP, 0) / N,
              "targets": ops_end.get(TARGETS_OP, 0), "targets_per_assoc": ops_end.get(TARGETS_OP, 0) / N,
              "listing": ops_first.get(LIST_OP, 0)}
    b.log(f"  first round {result['first_round_estate']:.0f} estate s; {result['pages']} execution "
          f"pages; {result['targets']} target reads ({result['targets_per_assoc']:.2f} per association)")
    return result


def first_start_ready(version, bins):
    """(d) time to /readyz 200 in real time (s = 1), same data."""
    b.log(f"calls {version}: (d) time to ready, real time")
    run = Run(bins[0], bins[1], N, 1, ["--executions", 60, "--history", "24h"], lookback=86400)
    try:
        wall, _ = run.exporter.wait_ready(every=0.05)
        text = run.exporter.metrics(gzip_ok=True)
    finally:
        run.stop()
    awaiting = b.metric_sum(text, "ssm_association_exporter_associations_awaiting_first_poll")
    b.log(f"  ready after {wall:.1f} s ({awaiting:.0f} awaiting their first poll then)")
    return {"ready": wall, "awaiting": awaiting}


# BENCH_CALLS_ONLY: a comma-separated subset of quiet (a and b), wave, first, check, after,
# before (to measure a part again).
ONLY = set(filter(None, os.environ.get("BENCH_CALLS_ONLY", "").split(",")))


def wanted(part):
    return not ONLY or part in ONLY


def measure(version, bins):
    r = {}
    if wanted("quiet"):
        r["quiet_active"] = quiet_and_active(version, bins)
    if wanted("wave"):
        r["wave"] = wave(version, bins, N, SCALE_WAVE)
    if wanted("first"):
        r["first_counts"] = first_start_counts(version, bins)
        r["first_ready"] = first_start_ready(version, bins)
    return r


def run_all(after_bins, before_exporter=None):
    results = {}
    if wanted("after"):
        results["after"] = measure("after", after_bins)
        b.log(f"calls: after {json.dumps(results['after'])}")
    if not QUICK and wanted("check"):
        results["check"] = [wave("after", after_bins, CHECK_N, s) for s in CHECK_SCALES]
        b.log(f"calls: check {json.dumps(results['check'])}")
    if before_exporter and wanted("before"):
        results["before"] = measure("before", (before_exporter, after_bins[1]))
        b.log(f"calls: before {json.dumps(results['before'])}")
    return results


# --------------------------------------------------------------------------- report

def verdict(ok):
    return "pass" if ok else "**FAIL**"


def ops_text(by_op):
    return ", ".join(f"{op} {v:.1f}" for op, v in sorted(by_op.items()))


def report_lines(results):
    pages = math.ceil(N / SCOPES / 50)
    versions = [v for v in ("before", "after") if v in results]
    parts = ("quiet_active", "wave", "first_counts", "first_ready")
    if not versions or any(p not in results[v] for v in versions for p in parts):
        # BENCH_CALLS_ONLY: only some parts; the table needs all of them.
        return ["", "calls (a partial run, BENCH_CALLS_ONLY): " + json.dumps(results)]
    lines = [
        "",
        f"### Request cost at the default budget ({N:,} associations, {ACCOUNTS} accounts × "
        f"{len(REGIONS)} regions, {N // SCOPES:,} per account and region)",
        "",
        f"Every setting at its default (`api_requests_per_second: 5`, `poll_interval: 60s`, "
        f"`max_concurrent_requests: 4`, `full_sweep_interval: 1h`, `late_visibility_window: 10m`, "
        f"`full_listing_interval: 10m`, `pending_recheck_max_interval: 1h`), time scaled: "
        f"(a), (b), (d) × {SCALE_AB}, (c) × {SCALE_WAVE} (bench/README.md, \"Scaled time\"); "
        "figures in estate time. Calls per interval are per account and region (mean over the "
        "9; max in brackets), counted by the simulator. \"before\": "
        + (os.environ.get("BENCH_BEFORE_LABEL", "BENCH_BEFORE_EXPORTER") if "before" in results
           else "not measured (set BENCH_BEFORE_EXPORTER)") + ".",
        "",
        "| scenario | figure | " + " | ".join(versions) + " | target | result (" + ", ".join(versions) + ") |",
        "|---|---|" + "---|" * len(versions) + "---|---|",
    ]
    row = lambda *cells: lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    get = lambda v, *path: _dig(results[v], path)

    def quiet_excl(v):
        """(calls per interval beyond the target's full-listing allowance, what full listings cost
        per interval): the allowance is ⌈n/50⌉ per 10 minutes for both versions; "before" lists
        in full every interval."""
        qa = get(v, "quiet_active")
        share = pages / (FULL_LISTING / INTERVAL)
        # Target reads in the quiet window are the first start's history still being read
        # (nothing runs): not a cost of the quiet estate, printed apart.
        quiet = qa["quiet"]["mean"] - qa["quiet"]["mean_by_op"].get(TARGETS_OP, 0)
        return quiet - share, share if qa["new_keys"] else pages

    row("(a) quiet", "calls per interval per account and region, by operation",
        *[f"{get(v, 'quiet_active', 'quiet', 'mean'):.1f} (max {get(v, 'quiet_active', 'quiet', 'max'):.1f}): "
          f"{ops_text(get(v, 'quiet_active', 'quiet', 'mean_by_op'))}" for v in versions], "", "")
    row("(a) quiet", f"full-listing share: ⌈{N // SCOPES}/50⌉ = {pages} pages per full listing",
        *[f"{quiet_excl(v)[1]:.1f} per interval ({pages} per "
          + ("full_listing_interval 10 min" if get(v, 'quiet_active', 'new_keys') else "interval: every listing is full")
          + ")" for v in versions], "spread over its interval", "")
    row("(a) quiet", f"calls per interval per account and region beyond the full-listing share "
        f"({pages} / 10 = {pages / 10:.1f}), without {TARGETS_OP} (the first start's history "
        "targets, still being read on the budget's leftover: not a cost of a quiet estate)",
        *[f"{quiet_excl(v)[0]:.1f}" for v in versions], "≤ 10",
        ", ".join(verdict(quiet_excl(v)[0] <= 10) for v in versions))
    row("(a) quiet", "sweep polls per interval per account and region (`sweep` polls / 9)",
        *[f"{get(v, 'quiet_active', 'quiet', 'reasons').get('sweep', 0) / SCOPES:.1f}"
          + ("" if get(v, 'quiet_active', 'new_keys') else
             f" (its sweeps start 30-60 min after the first poll, after this window; on average "
             f"N·ln 2 / 30 per minute = {N / SCOPES * math.log(2) / 30:.1f})") for v in versions],
        f"min(N / 60, cap 5) = {min(N / SCOPES / 60, SWEEP_CAP):.1f}", "")
    row("(a) quiet", "polls per interval (all scopes) by reason",
        *[ops_text(get(v, 'quiet_active', 'quiet', 'reasons')) or "none" for v in versions], "", "")
    row("(b) 5 % active", "calls per interval per account and region, by operation",
        *[f"{get(v, 'quiet_active', 'active', 'mean'):.1f} (max {get(v, 'quiet_active', 'active', 'max'):.1f}): "
          f"{ops_text(get(v, 'quiet_active', 'active', 'mean_by_op'))}" for v in versions], "", "")
    runs = get(versions[-1], 'quiet_active', 'runs_per_interval')
    def per_run(v):
        """(polls, listing pages, target reads) per run: polls for every reason but `sweep`
        beyond the quiet window's (the sweep is the estate's, and the "before" sweep starts 30-60
        min after the first poll, inside (b)'s window only); ListAssociations beyond the quiet
        window's; target reads of the (b) window (an upper bound: the quiet window's were the
        first start's history, still being read)."""
        qa = get(v, 'quiet_active')
        runs_all = qa["runs_per_interval"] * SCOPES
        runs_scope = qa["runs_per_interval"]
        polls = lambda w: sum(n for r, n in qa[w]["reasons"].items() if r != "sweep")
        listing = lambda w: qa[w]["mean_by_op"].get(LIST_OP, 0)
        return ((polls("active") - polls("quiet")) / runs_all,
                (listing("active") - listing("quiet")) / runs_scope,
                qa["active"]["mean_by_op"].get(TARGETS_OP, 0) / runs_scope)

    row("(b) 5 % active", f"per run ({runs:.1f} runs per interval per account and region): polls "
        "(every reason but `sweep`, beyond the quiet estate's) + ListAssociations pages beyond the "
        f"quiet estate's; {TARGETS_OP} (failed runs' targets, on the budget's leftover)",
        *[f"{sum(per_run(v)[:2]):.2f} = {per_run(v)[0]:.2f} + {per_run(v)[1]:.2f}; "
          f"+ {per_run(v)[2]:.2f} target reads" for v in versions], "≤ 2 (polls + pages)",
        ", ".join(verdict(sum(per_run(v)[:2]) <= 2) for v in versions))
    row("(b) 5 % active", "polls per interval (all scopes) by reason",
        *[ops_text(get(v, 'quiet_active', 'active', 'reasons')) for v in versions], "", "")
    row("(c) wave", f"{EXECS_OP} calls per association (simulator) and polls by reason (exporter), "
        f"{N:,} runs of 2 h at once, from 2 intervals before to 9 after their end",
        *[f"{get(v, 'wave', 'polls_per_run'):.2f} ({ops_text(get(v, 'wave', 'reasons'))})"
          for v in versions], "", "")
    run_polls = lambda w: sum(n for r, n in w["reasons"].items() if r != "sweep")
    row("(c) wave", "polls per run: polls_total of every reason but `sweep` (the sweep's slots "
        "of associations not running, before the wave and after its end: the quiet estate's "
        "cost) in the same window",
        *[f"{run_polls(get(v, 'wave')):.2f}" for v in versions], "≤ 4",
        ", ".join(verdict(run_polls(get(v, 'wave')) <= 4) for v in versions))
    row("(c) wave", "then, per run, in the next 11 intervals (the `late` poll after the end)",
        *[f"{get(v, 'wave', 'after_per_run'):.2f} ({ops_text(get(v, 'wave', 'reasons_after')) or 'none'})"
          for v in versions], "", "")
    row("(c) wave", "end of the runs → every end counted (executions_in_progress 0, checked every "
        "few real seconds; ends that move only the Overview wait for the full listing), estate s",
        *[_num(get(v, 'wave', 'end_counted_after')) for v in versions], "", "")
    row("(c) wave", "calls per interval per account and region during the wave: all (ListAssociations)",
        *[f"{get(v, 'wave', 'calls_per_interval_per_scope'):.1f} "
          f"({get(v, 'wave', 'listing_per_interval_per_scope'):.1f})" for v in versions],
        f"budget {RPS * INTERVAL}", "")
    pad = ["—"] * (len(versions) - 1)
    for c in results.get("check", []):
        row("(c) wave, scale check", f"polls per run without `sweep`, {c['n']} associations, "
            f"time × {c['scale']}", *pad, f"{run_polls(c):.2f} (all: "
            f"{ops_text(c['reasons'])}); then {c['after_per_run']:.2f}", "same at both factors", "")
    if results.get("check"):
        a, z = results["check"]
        row("(c) wave, scale check", "difference between the factors", *pad,
            f"{abs(run_polls(a) - run_polls(z)):.2f} polls per run", "≤ 0.1",
            verdict(abs(run_polls(a) - run_polls(z)) <= 0.1))
    row("(d) first start", "start → /readyz 200 (real time, s = 1); associations awaiting their "
        "first poll then",
        *[f"{get(v, 'first_ready', 'ready'):.1f} s; {get(v, 'first_ready', 'awaiting'):.0f}"
          for v in versions], "< 1 min",
        ", ".join(verdict(get(v, 'first_ready', 'ready') < 60) for v in versions))
    row("(d) first start", "start → every association's first poll ended (estate s)",
        *[f"{get(v, 'first_counts', 'first_round_estate'):.0f} s" for v in versions], "", "")
    row("(d) first start", "execution pages until then (per association)",
        *[f"{get(v, 'first_counts', 'pages'):,} ({get(v, 'first_counts', 'pages_per_assoc'):.2f})"
          for v in versions], "", "")
    row("(d) first start", f"{TARGETS_OP} calls of history (per association)",
        *[f"{get(v, 'first_counts', 'targets'):,} ({get(v, 'first_counts', 'targets_per_assoc'):.2f})"
          for v in versions], "≤ 1 read set per association",
        ", ".join(verdict(get(v, 'first_counts', 'targets_per_assoc') <= 1) for v in versions))
    return lines


def _num(x):
    return "not reached" if x is None else f"{x:.0f} s"


def _dig(d, path):
    for p in path:
        d = d[p]
    return d

#!/usr/bin/env python3
"""Sharding benchmark: 30,000 associations in 3 accounts x 3 regions over 3 shard processes
(--shard N --total-shards 3) against one ssm-simulator process. Prints, per shard: owned
associations, start to /readyz 200 and to the end of the first round, RSS, CPU over a window,
/metrics body size (plain and gzip) and wrk p99 (gzip, as Prometheus scrapes).

    python3 bench/shards.py --exporter target/release/ssm-association-exporter \
        --simulator target/release/ssm-simulator

Only 127.0.0.1 is contacted. Reuses bench/bench.py's process helpers."""

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402  (the helpers of bench/bench.py)

ASSOCIATIONS = int(os.environ.get("SHARDS_ASSOCIATIONS", "30000"))
SHARDS = 3
INTERVAL = int(os.environ.get("SHARDS_INTERVAL", "60"))
WINDOW_INTERVALS = int(os.environ.get("SHARDS_WINDOW_INTERVALS", "3"))


class Shard(bench.Exporter):
    def __init__(self, binary, config_path, sim_url, index):
        self.index = index
        self.port = bench.free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK",
            "AWS_SECRET_ACCESS_KEY": "fake-secret-for-benchmarks",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": sim_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/aws/config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws/credentials",
        }
        argv = [binary, f"--config.file={config_path}", f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn", f"--shard={index}", f"--total-shards={SHARDS}"]
        self.t0 = time.monotonic()
        self.proc = bench.spawn(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid


def gauge(text, name):
    return bench.metric_sum(text, name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exporter", required=True)
    parser.add_argument("--simulator", required=True)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-shards-")
    config = os.path.join(tmp, "config.yaml")
    try:
        sim = bench.Simulator(args.simulator, [
            "--associations", ASSOCIATIONS, "--executions", 20, "--history", "50m",
            "--accounts", 3, "--regions", "us-east-1,eu-west-1,ap-southeast-2",
            "--external-id", "bench-external-id", "--active-fraction", 0.05,
            "--activity-interval", f"{INTERVAL}s", "--activity-delay", f"{INTERVAL * 500}ms"],
            config_out=config,
            config={"poll_interval": f"{INTERVAL}s", "api_requests_per_second": 1000,
                    "max_concurrent_requests": 8, "initial_lookback": "1h",
                    "full_sweep_interval": "1h"},
            requests=True)
        shards = [Shard(args.exporter, config, sim.url, i) for i in range(SHARDS)]
        rows = []
        for s in shards:
            ready, _ = s.wait_ready(timeout=300)
            rows.append({"index": s.index, "ready": ready})
        # First round: every shard's awaiting gauge at 0.
        deadline = time.monotonic() + 300
        for s, row in zip(shards, rows):
            while True:
                text = s.metrics(gzip_ok=True)
                if gauge(text, "ssm_association_exporter_associations_awaiting_first_poll") == 0 \
                        and gauge(text, "ssm_association_exporter_listing_success") == 9:
                    row["first_round"] = time.monotonic() - s.t0
                    row["owned"] = gauge(text, "ssm_association_exporter_owned_associations")
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"shard {s.index}: first round not done")
                time.sleep(1)
            row["rss_first"], row["hwm_first"] = bench.memory_kib(s.pid)
        # Window: CPU over WINDOW_INTERVALS intervals, a gzip scrape of each every 15 s.
        cpu0 = [bench.cpu_seconds(s.pid) for s in shards]
        t0 = time.monotonic()
        while time.monotonic() - t0 < WINDOW_INTERVALS * INTERVAL:
            for s in shards:
                s.metrics(gzip_ok=True)
            time.sleep(15)
        elapsed = time.monotonic() - t0
        for s, row, c0 in zip(shards, rows, cpu0):
            row["cpu_pct"] = 100 * (bench.cpu_seconds(s.pid) - c0) / elapsed
            row["rss_end"], row["hwm_end"] = bench.memory_kib(s.pid)
            status, encoding, body = bench.http_get(s.port, "/metrics", gzip_ok=True)
            row["gzip_mb"] = len(body) / 1e6
            row["plain_mb"] = len(gzip.decompress(body)) / 1e6
            text = gzip.decompress(body).decode()
            row["series"] = sum(1 for l in text.splitlines() if l and not l.startswith("#"))
            row["calls"] = gauge(text, "ssm_association_exporter_api_requests_total")
            w = bench.wrk(s.port)
            row["p50"], row["p99"] = w["p50"], w["p99"]
        print(f"| shard | owned | start → /readyz | start → first round | RSS first round (peak) | "
              f"RSS end (peak) | CPU % of a core ({WINDOW_INTERVALS} × {INTERVAL} s) | "
              f"/metrics plain / gzip | series | wrk -c8 gzip p50 / p99 |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['index']} | {r['owned']:,.0f} | {r['ready']:.2f} s | {r['first_round']:.1f} s | "
                  f"{r['rss_first'] / 1024:.1f} MiB ({r['hwm_first'] / 1024:.1f}) | "
                  f"{r['rss_end'] / 1024:.1f} MiB ({r['hwm_end'] / 1024:.1f}) | {r['cpu_pct']:.2f}% | "
                  f"{r['plain_mb']:.1f} MB / {r['gzip_mb']:.2f} MB | {r['series']:,} | "
                  f"{r['p50']:.1f} ms / {r['p99']:.1f} ms |")
        print(f"\n{ASSOCIATIONS:,} associations, 3 accounts × 3 regions, {SHARDS} shards, "
              f"poll_interval {INTERVAL} s, 5% running per interval; load average {bench.loadavg()}")
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Benchmark: `ion-plan probe load` against oha (crates.io), wrk and hey (Debian) on the same nginx
# target on 127.0.0.1, same duration and concurrency, side by side in one run; then peak memory
# of ion-plan at 1,000,000 requests. Prints figures and ratios; asserts nothing.
# Needs: nginx, wrk and hey (apt-get), oha (cargo install oha). Loopback only.
#   bench/load.sh             # 5 s per run at concurrency 16 and 64, then 1,000,000 requests
#   SMOKE=1 bench/load.sh     # 1 s at 16, then 10,000 requests; oha only if installed (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-5}
port=${PORT:-18088}
levels=(16 64)
total=1000000
if [ -n "${SMOKE:-}" ]; then duration=1 levels=(16) total=10000; fi
command -v nginx >/dev/null && command -v wrk >/dev/null && command -v hey >/dev/null ||
  { apt-get update -qq && apt-get install -y -qq nginx wrk hey >/dev/null; }
command -v oha >/dev/null || [ -n "${SMOKE:-}" ] || cargo install oha --locked
cargo build --release --locked --quiet
bin=$PWD/target/release/ion-plan

work=$(mktemp -d)
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "ok\n"; }
  }
}
CONF
nginx -c "$work/nginx.conf"
trap 'nginx -c "$work/nginx.conf" -s stop 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5
url=http://127.0.0.1:$port/

echo "machine: $(nproc) cores; target: nginx on $url; ${duration}s per run"
# Each peer prints "RPS P95_MS" (nan when it is not installed); wrk reports no p95 by default.
for c in "${levels[@]}"; do
  ion=$("$bin" probe load --json --target t=$url --duration ${duration}s --delay 0ms --concurrency $c |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["targets"]["t"]; print(t["rps"], t["p95"]*1000)')
  oha_out="nan nan"
  command -v oha >/dev/null && oha_out=$(oha --no-tui --output-format json -z ${duration}s -c $c "$url" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["summary"]["requestsPerSec"], d["latencyPercentiles"]["p95"]*1000)')
  wrk_out="$(wrk -t2 -c$c -d${duration}s "$url" | awk '/Requests\/sec/ {print $2}') nan"
  hey_out="nan nan"
  command -v hey >/dev/null && hey_out=$(hey -z ${duration}s -c $c "$url" |
    awk '/Requests\/sec/ {rps=$2} /95% in/ {p95=$3*1000} END {print rps, p95}')
  python3 - "$c" "ion-plan=$ion" "oha=$oha_out" "wrk=$wrk_out" "hey=$hey_out" <<'PY'
import math, sys
c, runs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
runs = [(name, *map(float, figures.split())) for name, figures in runs]
_, ion_rps, ion_p95 = runs[0]
parts, ratios = [], []
for name, rps, p95 in runs:
    if math.isnan(rps):
        parts.append(f"{name} not installed")
        continue
    parts.append(f"{name} {rps:,.0f} req/s" + ("" if math.isnan(p95) else f" (p95 {p95:.2f} ms)"))
    if name != "ion-plan":
        ratios.append(f"ion/{name} {ion_rps / rps:.2f}x"
                      + ("" if math.isnan(p95) else f" (p95 {ion_p95 / p95:.2f})"))
print(f"concurrency {c}: " + ", ".join(parts) + "; " + ", ".join(ratios))
PY
done
/usr/bin/time -f "ion-plan at $total requests: peak RSS %M KB, %e s" \
  "$bin" probe load --json --target t=$url --requests $total --delay 0ms --concurrency 64 >/dev/null

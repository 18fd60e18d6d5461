#!/usr/bin/env bash
# Benchmark: `ion-plan probe load` against oha (crates.io) and wrk (Debian) on the same nginx
# target on 127.0.0.1, same duration and concurrency, side by side in one run; then peak memory
# of ion-plan at 1,000,000 requests. Prints figures and ratios; asserts nothing.
# Needs: nginx and wrk (apt-get), oha (cargo install oha). Loopback only.
#   bench/load.sh             # 5 s per run at concurrency 16 and 64, then 1,000,000 requests
#   SMOKE=1 bench/load.sh     # 1 s at 16, then 10,000 requests; oha only if installed (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-5}
port=${PORT:-18088}
levels=(16 64)
total=1000000
if [ -n "${SMOKE:-}" ]; then duration=1 levels=(16) total=10000; fi
command -v nginx >/dev/null && command -v wrk >/dev/null ||
  { apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null; }
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
for c in "${levels[@]}"; do
  ion=$("$bin" probe load --json --target t=$url --duration ${duration}s --delay 0ms --concurrency $c |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["targets"]["t"]; print(t["rps"], t["p95"]*1000)')
  oha_out="nan nan"
  command -v oha >/dev/null && oha_out=$(oha --no-tui --output-format json -z ${duration}s -c $c "$url" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["summary"]["requestsPerSec"], d["latencyPercentiles"]["p95"]*1000)')
  wrk_rps=$(wrk -t2 -c$c -d${duration}s "$url" | awk '/Requests\/sec/ {print $2}')
  python3 - "$c" "$ion" "$oha_out" "$wrk_rps" <<'PY'
import sys
c = sys.argv[1]
ion_rps, ion_p95 = map(float, sys.argv[2].split())
oha_rps, oha_p95 = map(float, sys.argv[3].split())
wrk_rps = float(sys.argv[4])
oha = (f"oha {oha_rps:,.0f} req/s (p95 {oha_p95:.2f} ms), " if oha_rps == oha_rps
       else "oha not installed, ")
ratios = (f"ion/oha {ion_rps/oha_rps:.2f}x, " if oha_rps == oha_rps else "") + \
    f"ion/wrk {ion_rps/wrk_rps:.2f}x" + \
    (f", p95 ion/oha {ion_p95/oha_p95:.2f}" if oha_rps == oha_rps else "")
print(f"concurrency {c}: ion-plan {ion_rps:,.0f} req/s (p95 {ion_p95:.2f} ms), "
      f"{oha}wrk {wrk_rps:,.0f} req/s; {ratios}")
PY
done
/usr/bin/time -f "ion-plan at $total requests: peak RSS %M KB, %e s" \
  "$bin" probe load --json --target t=$url --requests $total --delay 0ms --concurrency 64 >/dev/null

#!/usr/bin/env bash
# Benchmark: all of plans/phase4.yaml (22 days, thousands of checks) on simulated time, through
# both example scenarios and the dry run: wall time and peak memory. Prints figures only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin=target/release/ion-plan
for scenario in plans/scenarios/phase4-*.yaml; do
  checks=$("$bin" run plans/phase4.yaml --json --scenario "$scenario" | grep -c '"check_started"' || true)
  /usr/bin/time -f "$(basename "$scenario"): %e s, peak RSS %M KB, $checks checks" \
    "$bin" run plans/phase4.yaml --scenario "$scenario" >/dev/null || true
done
/usr/bin/time -f "dry run: %e s, peak RSS %M KB" "$bin" run --dry-run plans/phase4.yaml >/dev/null

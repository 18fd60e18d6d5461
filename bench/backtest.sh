#!/usr/bin/env bash
# Benchmark: `ion-plan backtest` over recorded demo runs — one passing and one rolled-back run of
# `ion-plan demo` (live, on 127.0.0.1), each journal copied under new run ids until there are 50
# (SMOKE=1: 6), judged again by plans/demo.yaml as it is and by a stricter copy of it (the passing
# runs then roll back). Wall time and peak memory. Prints figures only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin="$PWD/target/release/ion-plan"
runs=50
[ -n "${SMOKE:-}" ] && runs=6
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Two real runs: the demo's plan, its service, its journal.
(cd "$work" && "$bin" demo --state-dir good >/dev/null 2>&1) || true
(cd "$work" && "$bin" demo --bad-canary --state-dir bad >/dev/null 2>&1) || true
good="$(find "$work/good" -name '*.jsonl' | head -n 1)"
bad="$(find "$work/bad" -name '*.jsonl' | head -n 1)"
[ -f "$good" ] && [ -f "$bad" ] || { echo "the demo left no journal"; exit 1; }

# Copies under fresh run ids (a run id is unique in a store, and backtest reports per run).
mkdir -p "$work/runs"
for i in $(seq 1 "$runs"); do
  source=$good
  [ $((i % 2)) = 0 ] && source=$bad
  id="$(head -c 200 "$source" | grep -o '"run_id":"[^"]*"' | head -n 1 | cut -d'"' -f4)"
  sed "s/$id/${id%-*}-b$i/g" "$source" > "$work/runs/demo-$i.jsonl"
done
events=$(cat "$work"/runs/*.jsonl | wc -l)
bytes=$(cat "$work"/runs/*.jsonl | wc -c)
echo "$runs recorded demo runs: $events journal lines, $bytes bytes"

plan=plans/demo.yaml
status=0
/usr/bin/time -f "backtest, the plan as it was: %e s, peak RSS %M KB" \
  "$bin" backtest "$plan" "$work"/runs/*.jsonl >/dev/null || status=$?
echo "  exit $status (0: nothing flips)"

# A stricter guard: 1 ms of p95 over legacy's is too much; the passing runs now roll back.
sed 's/load.canary.p95 <= load.legacy.p95 \* 5/load.canary.p95 <= 1ms/' "$plan" > "$work/strict.yaml"
status=0
/usr/bin/time -f "backtest, a stricter plan: %e s, peak RSS %M KB" \
  "$bin" backtest "$work/strict.yaml" "$work"/runs/*.jsonl >/dev/null || status=$?
echo "  exit $status (3: an outcome flips)"
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine --warmup 1 --runs "$([ -n "${SMOKE:-}" ] && echo 3 || echo 10)" --style basic -N \
    --ignore-failure "$bin backtest $plan $(ls "$work"/runs/*.jsonl | tr '\n' ' ')" 2>&1 | grep -E 'Time|Range'
fi

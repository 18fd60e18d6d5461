#!/usr/bin/env bash
# Benchmark: `ion-plan validate` against check-jsonschema on the same files, side by side in one
# run (hyperfine). Prints times and ratios; asserts nothing.
#   bench/validate.sh            # one plan, and 1,000 plans in one invocation
#   SMOKE=1 bench/validate.sh    # 20 plans, 2 runs each: checks the script works (CI runs it)
# Needs: hyperfine (Debian), check-jsonschema (PyPI). Installs them if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
command -v check-jsonschema >/dev/null ||
  python3 -m pip install --quiet --root-user-action=ignore 'check-jsonschema==0.39.0'
cargo build --release --locked --quiet
bin=$PWD/target/release/ion-plan
schema=$PWD/schemas/plan.schema.json

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r plans/scripts "$work/scripts"
plans=1000 warmup=(--warmup 3 --min-runs 20) warmup_many=(--warmup 1 --min-runs 5)
if [ -n "${SMOKE:-}" ]; then
  plans=20 warmup=(--warmup 0 --runs 2) warmup_many=(--warmup 0 --runs 2)
fi
for i in $(seq -w 1 "$plans"); do
  sed "s/^name: ion-mentoring-phase4/name: plan-$i/" plans/phase4.yaml > "$work/plan-$i.yaml"
done

run() { # name, then hyperfine arguments
  local name=$1; shift
  hyperfine --style basic --export-json "$work/$name.json" "$@" >&2
  python3 - "$work/$name.json" "$name" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
ion, peer = results[0], results[1]
print(f"{sys.argv[2]}: ion-plan {ion['mean']*1000:.1f} ms ± {ion['stddev']*1000:.1f}, "
      f"check-jsonschema {peer['mean']*1000:.1f} ms ± {peer['stddev']*1000:.1f}: "
      f"ion-plan is {peer['mean']/ion['mean']:.1f}x faster")
PY
}

echo "machine: $(nproc) cores; $($bin --version); check-jsonschema $(check-jsonschema --version | awk '{print $NF}')"
# The first plan by glob (no `ls | head`: under pipefail, head's early exit kills ls with SIGPIPE
# and the script with it, silently, once there are many files).
plans_made=("$work"/plan-*.yaml)
first=${plans_made[0]}
run one-plan "${warmup[@]}" \
  -n ion-plan "$bin validate $first" \
  -n check-jsonschema "check-jsonschema --schemafile $schema $first"
run "$plans-plans" "${warmup_many[@]}" \
  -n ion-plan "$bin validate $work/plan-*.yaml" \
  -n check-jsonschema "check-jsonschema --schemafile $schema $work/plan-*.yaml"

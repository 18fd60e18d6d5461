#!/bin/sh
# Sets the canary's share of traffic in an nginx upstream and reloads nginx.
# Usage: nginx-weights.sh PERCENT CONF_FILE
# Writes CONF_FILE atomically (an upstream block with two weighted servers), checks the whole
# configuration with `nginx -t`, then reloads. A 0% canary is marked `down`, so no request
# reaches it; 100% does the same for legacy.
set -eu
percent=$1
conf=$2
legacy=${LEGACY_UPSTREAM:-127.0.0.1:8081}
canary=${CANARY_UPSTREAM:-127.0.0.1:8082}

case $percent in
  ''|*[!0-9.]*) echo "nginx-weights: percent must be a number, got '$percent'" >&2; exit 2 ;;
esac
# nginx weights are integers of at least 1; percent of 0 or 100 marks the other server down.
canary_weight=$(awk -v p="$percent" 'BEGIN { w = int(p * 10 + 0.5); print (w < 1 ? 1 : w) }')
legacy_weight=$(awk -v p="$percent" 'BEGIN { w = int((100 - p) * 10 + 0.5); print (w < 1 ? 1 : w) }')
canary_flags=""
legacy_flags=""
[ "$(awk -v p="$percent" 'BEGIN { print (p <= 0) }')" = 1 ] && canary_flags=" down"
[ "$(awk -v p="$percent" 'BEGIN { print (p >= 100) }')" = 1 ] && legacy_flags=" down"

tmp="$conf.tmp.$$"
cat > "$tmp" <<CONF
# Written by nginx-weights.sh: canary at $percent%.
upstream checkout {
    server $legacy weight=$legacy_weight$legacy_flags;
    server $canary weight=$canary_weight$canary_flags;
}
CONF
mv "$tmp" "$conf"
nginx ${NGINX_FLAGS:-} -t -q
nginx ${NGINX_FLAGS:-} -s reload
echo "canary at $percent% (weights legacy=$legacy_weight canary=$canary_weight)"

#!/bin/sh
# Sets the canary's share of traffic in an nginx upstream and reloads nginx.
# Usage: nginx-weights.sh PERCENT CONF_FILE
#        nginx-weights.sh --check        (only `nginx -t`: a preflight check)
# Writes CONF_FILE atomically (an upstream block with two weighted servers), checks the whole
# configuration with `nginx -t`, then reloads. A 0% canary is marked `down`, so no request
# reaches it; 100% does the same for legacy. If the check fails, the previous file is put back
# and nginx keeps running on it.
# Environment: UPSTREAM (the upstream block's name, default `checkout`), LEGACY_UPSTREAM,
# CANARY_UPSTREAM (host:port), NGINX (the command, default
# `nginx`; `sudo -n nginx` for a runner without root), NGINX_FLAGS (e.g. `-c /etc/nginx/x.conf`),
# NGINX_PID (the master's pid file, default /run/nginx.pid: to wait until the reload took).
set -eu
nginx=${NGINX:-nginx}
if [ "${1:-}" = --check ]; then
  # shellcheck disable=SC2086 # NGINX and NGINX_FLAGS are word lists on purpose
  exec $nginx ${NGINX_FLAGS:-} -t -q
fi
if [ $# -ne 2 ]; then
  echo "usage: nginx-weights.sh PERCENT CONF_FILE | --check" >&2
  exit 2
fi
percent=$1
conf=$2
legacy=${LEGACY_UPSTREAM:-127.0.0.1:8081}
canary=${CANARY_UPSTREAM:-127.0.0.1:8082}
upstream=${UPSTREAM:-checkout}

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
trap 'rm -f "$tmp"' EXIT
cat > "$tmp" <<CONF
# Written by nginx-weights.sh: canary at $percent%.
upstream $upstream {
    server $legacy weight=$legacy_weight$legacy_flags;
    server $canary weight=$canary_weight$canary_flags;
}
CONF
backup=
if [ -e "$conf" ]; then backup="$conf.previous"; cp -p "$conf" "$backup"; fi
mv "$tmp" "$conf"
# shellcheck disable=SC2086 # NGINX and NGINX_FLAGS are word lists on purpose
if ! $nginx ${NGINX_FLAGS:-} -t -q; then
  if [ -n "$backup" ]; then mv "$backup" "$conf"; else rm -f "$conf"; fi
  echo "nginx-weights: nginx -t rejected the new weights; the previous file is back" >&2
  exit 1
fi
# The workers before the reload: when one not among them runs, the master has taken the new
# configuration (`nginx -s reload` only sends the signal). Needs the pid file (NGINX_PID) and
# pgrep; without them, no wait.
pid_file=${NGINX_PID:-/run/nginx.pid}
master=$(cat "$pid_file" 2>/dev/null || true)
before=""
if [ -n "$master" ] && command -v pgrep >/dev/null; then
  before=$(pgrep -P "$master" | sort | tr '\n' ' ')
fi
# shellcheck disable=SC2086
$nginx ${NGINX_FLAGS:-} -s reload
rm -f "$backup"
reloaded="nginx signalled to reload"
if [ -n "$before" ]; then
  reloaded="nginx reloaded"
  waited=0
  while :; do
    for pid in $(pgrep -P "$master"); do
      case " $before" in *" $pid "*) ;; *) break 2 ;; esac
    done
    if [ "$waited" -ge 50 ]; then
      echo "nginx-weights: nginx did not start workers with the new weights within 5 s; see its error log" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
fi
echo "canary at $percent% (weights legacy=$legacy_weight canary=$canary_weight); $reloaded"

#!/usr/bin/env bash
# Runs an independent conformance client of the signalling protocol
# against a real onair on a free loopback port: every scenario, then a
# 100-viewer load run. Usage: scripts/conformance.sh ONAIR_BINARY SEEDCLIENT
set -euo pipefail
onair=$1 seedclient=$2
logf=$(mktemp -t onair-conformance.XXXXXX)
"$onair" -addr 127.0.0.1:0 -ice-loopback -ice-allowed-ips 127.0.0.1 >"$logf" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/.*msg="onair listening" addr=\([0-9.:]*\).*/\1/p' "$logf" | head -1)
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "onair did not start:" >&2
  cat "$logf" >&2
  exit 1
fi
base="http://$addr/signal"
status=0
"$seedclient" -base "$base" -scenario all -viewers 3 || status=1
"$seedclient" -base "$base" -scenario load -load-viewers 100 -load-duration 10s -max-loss 1 || status=1
if [ $status -ne 0 ]; then
  echo "onair log ($logf):" >&2
  tail -50 "$logf" >&2
fi
exit $status

#!/usr/bin/env bash
# The forwarding benchmark of docs/performance.md: one fresh onair per run,
# a presenter sending H.264 at 2 Mbit/s (30 fps, a keyframe every 2 s,
# honouring PLI) plus Opus, and N viewers over the WebSocket protocol
# joining at 20/s, measured over a 10 s window by `onair loadtest`, which
# also measures the machine's floor in the same run (-floor).
#
#   scripts/loadbench.sh [SERVER] [VIEWERS...]     # default: a fresh build; 25 200 400
#
# The load tool is always this tree's (a fresh build), so that another
# build of the server (SERVER, e.g. an older commit's) is measured alike.
#
# Prints one Markdown table row per run and leaves each run's JSON lines in
# $OUT (default /tmp/onair-loadbench). The servers listen on 127.0.0.1 from
# $PORT (default 18690) up, one port per run; $TOOL_FLAGS replaces the load
# tool's extra flags below. Run it on a machine that is otherwise quiet: the
# figures are of the whole machine's CPU.
set -euo pipefail
bin=${1:-}
case $bin in */*) bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin") ;; esac # before the cd below
shift || true
cd "$(dirname "$0")/.."
# The script owns the tool's build directory and the server it runs: both
# go when it ends, also when it fails or is interrupted.
tmp=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap "exit 130" INT TERM # so that the EXIT trap runs on these too
tool=$tmp/onair
go build -o "$tool" ./cmd/onair
bin=${bin:-$tool}
viewers=("$@")
[ ${#viewers[@]} -gt 0 ] || viewers=(25 200 400)
out=${OUT:-/tmp/onair-loadbench}
mkdir -p "$out"
port=${PORT:-18690}
# Lighter load tool: client sockets read in batches, with UDP GRO; 20
# viewers decrypt and time every packet, the rest count from RTP headers.
# A socket per viewer: the server sends the viewers of each of its writers
# from one socket, and a client socket shared by two of them could not tell
# their packets apart.

echo "| viewers | connected | loss video/audio % | first keyframe p50/p95 ms | forwarding p50/p95/p99 ms | server CPU % | server µs/packet | floor_us | ratio | RSS MB (per viewer) | tool CPU % | machine busy % |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${viewers[@]}"; do
  tool_flags=(${TOOL_FLAGS:--shared-sockets $n -sample-viewers 20})
  "$bin" -addr 127.0.0.1:$port -ice-loopback -ice-allowed-ips 127.0.0.1 -log-level error \
    -max-sessions-per-second 0 >"$out/server-$n.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/signal/healthcheck/_check" >/dev/null 2>&1 && break; sleep 0.1; done
  json="$out/run-$n.jsonl"
  "$tool" loadtest -url "http://127.0.0.1:$port" -viewers "$n" -rate 20 -duration 10s -protocol ws \
    -pid "$pid" -json "$json" -progress 0 "${tool_flags[@]}" >/dev/null 2>"$out/tool-$n.log" || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  if ! grep -q '"type":"summary"' "$json"; then
    echo "| $n | run failed: see $out/tool-$n.log and $out/server-$n.log |"
    port=$((port + 1))
    continue
  fi
  grep '"type":"summary"' "$json" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
srv = s.get("server") or {}
n = s["viewersConnected"] or 1
print("| %d | %d/%d | %.2f / %.2f | %.0f / %.0f | %.1f / %.1f / %.1f | %.1f | %.2f | %.2f | %.2f | %.0f (%.2f) | %.1f | %.0f |" % (
  s["viewersRequested"], s["viewersConnected"], s["viewersRequested"],
  s["lossVideoPercent"]["mean"], s["lossAudioPercent"]["mean"],
  s["firstKeyframeMs"]["p50"], s["firstKeyframeMs"]["p95"],
  s["forwardingVideoMs"]["p50"], s["forwardingVideoMs"]["p95"], s["forwardingVideoMs"]["p99"],
  srv.get("cpuCorePercent", 0), s.get("serverCpuPerPacketUs", 0), s.get("floorUs", 0), s.get("floorRatio", 0),
  srv.get("rssEndMB", 0), srv.get("rssEndMB", 0) / n, s["tool"]["cpuCorePercent"], s.get("machineBusyPercent", 0)))'
  port=$((port + 1))
done

#!/usr/bin/env bash
# onair's whole test suite, from a fresh Debian machine that has only Go, gcc,
# node and npm. It installs what the tests need when it is missing (Chromium
# for the browser tests, iproute2 for the loopback-only network namespace,
# redis-server for the Redis store and the multi-process tests, ffmpeg for the
# recording tests),
# installs hls.js from npm for the HLS browser test,
# then runs go vet, gofmt, `go test -race ./...`, each fuzz target for a
# bounded number of inputs and, when ONAIR_CONFORMANCE_CLIENT names it, the
# independent conformance client against a real onair.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -run Foo   # extra arguments go to `go test`
#
# As root it runs the tests inside a network namespace whose only interface
# is loopback (`unshare -n`): browsers offer every local address for ICE, and
# tests must send traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- what the tests need ----------------------------------------------------
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
# ffmpeg makes the recording tests' clips, ffprobe checks their files.
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
# The Redis store's tests start their own redis-server on a free port.
command -v redis-server >/dev/null 2>&1 || [ -n "${ONAIR_REDIS_SERVER:-}" ] || need+=(redis-server)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]}: install with: sudo apt-get install ${need[*]}" >&2
  fi
fi
if command -v chromium >/dev/null 2>&1; then
  export ONAIR_CHROMIUM="${ONAIR_CHROMIUM:-$(command -v chromium)}"
fi

# --- build and static checks ------------------------------------------------
log "go mod download"
go mod download
log "go build"
go build ./...
log "go vet"
go vet ./...
log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
# Build the test binaries now, while the network is there (nothing can be
# downloaded inside the namespace).
go test -race -count=1 -run '^$' ./... >/dev/null

# --- tests ------------------------------------------------------------------
isolated() {
  if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$@"
  else
    "$@"
  fi
}

# hls.js for the browser test of the HLS tier (internal/browsertest), from
# npm now: nothing can be downloaded inside the namespace. Not committed:
# node_modules/ is ignored.
if command -v npm >/dev/null 2>&1; then
  log "npm install hls.js"
  npm install --no-save --no-package-lock --no-audit --no-fund --silent \
    --prefix internal/browsertest/testdata hls.js@1.7.4
fi

log "go test -race ./..."
isolated go test -race -count=1 -timeout 20m "$@" ./...

# --- fuzzing ----------------------------------------------------------------
# Each fuzz target (hostile input: WebSocket messages, SDP offers,
# trickle-ice-sdpfrag bodies, tokens) runs from its seed corpus for a bounded
# number of inputs, one target per invocation as `go test -fuzz` requires. A
# crash fails the run, and the input that caused it is saved under the
# package's testdata/fuzz/ to reproduce it with plain `go test`. Counts, not
# durations: with -fuzztime as a duration, Go's fuzzer can fail a clean run
# with "context deadline exceeded" when the machine is busy as the time runs
# out. ONAIR_FUZZTIME overrides every target's budget (e.g. 60s, 1000000x;
# 0 skips fuzzing, for quick local runs).
fuzz_targets=(
  "./internal/wsapi FuzzDecode 200000x"
  "./internal/wsapi FuzzHandle 20000x"
  "./internal/sfu FuzzParseOffer 100000x"
  "./internal/sfu FuzzPublisherOffer 50000x"
  "./internal/whip FuzzParseFrag 50000x"
  "./internal/auth FuzzVerify 200000x"
)
if [ "${ONAIR_FUZZTIME:-}" != 0 ]; then
  for ft in "${fuzz_targets[@]}"; do
    read -r pkg target budget <<<"$ft"
    budget="${ONAIR_FUZZTIME:-$budget}"
    log "fuzz $target ($pkg, $budget)"
    isolated go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "$pkg"
  done
fi

# The conformance client is an independent black-box client of the signalling
# protocol, kept outside this repository; set ONAIR_CONFORMANCE_CLIENT to its
# binary to run it (CI does).
seedclient="${ONAIR_CONFORMANCE_CLIENT:-}"
if [ -n "$seedclient" ]; then
  if [ ! -x "$seedclient" ]; then
    echo "ONAIR_CONFORMANCE_CLIENT=$seedclient is not an executable file" >&2
    exit 1
  fi
  log "conformance client ($seedclient)"
  go build -o /tmp/onair-conformance ./cmd/onair
  isolated bash scripts/conformance.sh /tmp/onair-conformance "$seedclient"
else
  log "conformance client: ONAIR_CONFORMANCE_CLIENT is not set, skipped (it is not part of this repository)"
fi

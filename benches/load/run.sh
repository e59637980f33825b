#!/usr/bin/env bash
# Load test of the gateway: 100-message batches over keep-alive connections from wrk, against
# a release build, with a tansu broker on loopback (needs wrk, tansu, curl, python3).
#
#   benches/load/run.sh [DURATION_SECONDS] [CONNECTIONS]      (tansu on sqlite: durable)
#   STORAGE=memory://tansu/ benches/load/run.sh 30 40         (tansu in memory)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-30}"
connections="${2:-40}"
work="$(mktemp -d)"
trap 'kill -9 $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
veil="${CARGO_TARGET_DIR:-target}/release/veil"
python3 ../shared/workload/gen_events.py --count 100000 --seed 7 --batch 100 > "$work/batches.ndjson"

broker_port=29092
gateway_port=28088
(cd "$work" && exec tansu broker --storage-engine "${STORAGE:-sqlite://tansu.db}" \
    --listener-url tcp://127.0.0.1:$broker_port --advertised-listener-url tcp://127.0.0.1:$broker_port \
    > "$work/tansu.log" 2>&1) &
sleep 1
env VEIL_GATEWAY__KEYSTORE="$work/keys" VEIL_GATEWAY__RATE_LIMIT_PER_SECOND=0 VEIL_LOG__LEVEL=warn ${LOAD_ENV:-} \
    "$veil" gateway ${LOAD_ARGS:-} --kafka 127.0.0.1:$broker_port --listen 127.0.0.1:$gateway_port &
until curl -sf "http://127.0.0.1:$gateway_port/readyz" >/dev/null; do sleep 0.2; done

echo "warm-up (5 s)"
wrk -t1 -c"$connections" -d5s -s benches/load/batches.lua "http://127.0.0.1:$gateway_port" -- "$work/batches.ndjson" >/dev/null
echo "measured run (${duration} s, ${connections} connections, 100 messages a request)"
wrk -t1 -c"$connections" -d"${duration}s" --latency -s benches/load/batches.lua \
    "http://127.0.0.1:$gateway_port" -- "$work/batches.ndjson"
curl -s "http://127.0.0.1:$gateway_port/metrics" | grep -E "^veil_gateway_(messages_accepted|requests)_total"

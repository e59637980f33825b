#!/usr/bin/env bash
# Processor throughput: fill a topic through the gateway (wrk, 100-message batches), then time
# `veil processor`, pinned to one core, from Kafka to committed Parquet.
#
#   benches/processor/run.sh [FILL_SECONDS]                       (tansu in memory)
#   STORAGE=sqlite://tansu.db benches/processor/run.sh 10         (tansu on sqlite)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"
work="$(mktemp -d)"
trap 'kill -9 $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --workspace --release --quiet
veil="${CARGO_TARGET_DIR:-target}/release/veil"
python3 ../shared/workload/gen_events.py --count "${MESSAGES:-300000}" --seed 7 --batch 100 > "$work/batches.ndjson"
(cd "$work" && exec tansu broker --storage-engine "${STORAGE:-memory://tansu/}" \
    --listener-url tcp://127.0.0.1:29192 --advertised-listener-url tcp://127.0.0.1:29192 > tansu.log 2>&1) &
sleep 1
env VEIL_GATEWAY__KEYSTORE="$work/keys" VEIL_GATEWAY__RATE_LIMIT_PER_SECOND=0 VEIL_LOG__LEVEL=warn \
    "$veil" gateway --kafka 127.0.0.1:29192 --listen 127.0.0.1:28188 &
until curl -sf http://127.0.0.1:28188/readyz >/dev/null; do sleep 0.2; done
wrk -t1 -c40 -d"${seconds}s" -s benches/load/batches.lua http://127.0.0.1:28188 -- "$work/batches.ndjson" >/dev/null
total=$(curl -s http://127.0.0.1:28188/metrics | awk '/^veil_gateway_messages_accepted_total/ {s+=$2} END {print s}')
echo "the topic holds $total sanitized messages"

# Messages settled: rows committed to the events table, plus duplicates and dead letters (the
# gateway packs a batch's messages per partition, so offsets count records, not messages).
stored() { curl -s http://127.0.0.1:28190/metrics | awk '
    /^veil_processor_rows_written_total\{table="events"\}/ || /^veil_processor_duplicates_total/ ||
    /^veil_processor_dead_letters_total/ {s+=$2} END {print s+0}'; }
records() { curl -s http://127.0.0.1:28190/metrics | awk '/^veil_processor_records_read_total/ {print $2+0}'; }
env VEIL_LOG__LEVEL=warn VEIL_PROCESSOR__METRICS_LISTEN=127.0.0.1:28190 \
    taskset -c 0 "$veil" processor --kafka 127.0.0.1:29192 --data-dir "$work/parquet" &
processor=$!
cpu() { awk '{print $14 + $15}' "/proc/$processor/stat"; }   # user + system ticks, all threads
until [ "$(stored)" -gt 0 ] 2>/dev/null; do sleep 0.05; done
start=$(date +%s.%N)
first=$(stored)
cpu_start=$(cpu)
until [ "$(stored)" -ge "$total" ]; do sleep 0.1; done
end=$(date +%s.%N)
cpu_end=$(cpu)
ticks=$(getconf CLK_TCK)
echo "the processor read them as $(records) Kafka records"
python3 -c "n=$total-$first; t=$end-$start; c=($cpu_end-$cpu_start)/$ticks; print(f'{n} messages to committed Parquet in {t:.2f} s (after the first commit): {n/t:,.0f} messages/s on one core; the processor used {c:.2f} s of CPU: {n/max(c,1e-9):,.0f} messages per CPU-second')"
du -sh "$work/parquet" | awk '{print "parquet size: " $1}'

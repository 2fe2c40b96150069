#!/usr/bin/env bash
# bench_engine.sh - the streaming engine against a plain Kafka passthrough, side by side in
# one go, on the local broker (`vigil broker`, its own process, 64 partitions).
#
#   (a) passthrough: `vigil run --passthrough`: consume and produce the same messages in one
#       Kafka transaction per batch, same batch settings, no processing;
#   (b) the engine: default catalogue, default rules and a 100-tree, depth-6 model; then the
#       same with engine.state.checkpoint.interval = 10s (state written every 10 s, not every
#       batch: what a deployment on Apache Kafka or Redpanda can use; docs/operations.md);
#   (c) the same with the state changelog on (and with checkpoints too, for the throughput),
#       then a restore of all of it into a fresh process;
#   (d) the repartition topology in one process (a stage per entity type spanning partitions).
# Sustained throughput of both over the same backlog of N transactions, and their ratio; then
# end-to-end latency (Kafka timestamp of the transaction -> commit of its decision) at a
# fixed offered rate, exactly-once and at-least-once, passthrough beside the engine (what the
# broker and clients alone cost), with the engine's default batching
# (natural batches: whatever is queued, so small under light traffic). The latency runs set
# kafka.fetch.wait.max.ms=1: librdkafka's mock cluster holds an empty fetch for the whole
# fetch.wait.max.ms even when data arrives meanwhile, where a real broker answers as soon as
# fetch.min.bytes is there; 1 ms makes the mock behave like a broker here.
#
# usage: tests/bench/bench_engine.sh [N] [RATE]   (defaults 300000 transactions, 5000/s)
# env:   VIGIL (binary, default build/vigil), BATCH (batch.max.messages, default 20000),
#        BATCH_MS (batch.max.ms, default 50ms), LAT_SECONDS (latency run length, default 20),
#        LAT_ARGS (more flags for the latency runs), NO_CHANGELOG=1 (skip the changelog runs),
#        NO_REPARTITION=1 (skip the repartition run), NO_LATENCY=1 (throughput only),
#        LAT_ONLY=1 (latency only), LAT_RUNS (latency runs of each kind, default 1: the
#        at-least-once tail moves run to run on shared cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
VIGIL=${VIGIL:-build/vigil}
N=${1:-300000}
RATE=${2:-5000}
BATCH=${BATCH:-20000}
BATCH_MS=${BATCH_MS:-50ms}
LAT_SECONDS=${LAT_SECONDS:-20}
work=$(mktemp -d)
broker=
cleanup() {
  [[ -n $broker ]] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$VIGIL" broker --partitions 64 --bootstrap-file "$work/bootstrap" --log-level warn \
  --topic vigil.changelog.ckpt --topic vigil.changelog.rp --topic vigil.changelog.rp.device_id \
  --topic vigil.changelog.rp.ip --topic vigil.changelog.rp.terminal_id \
  --topic vigil.changelog.rp.merchant_id 2>"$work/broker.err" >/dev/null &
broker=$!
for _ in $(seq 100); do [[ -s $work/bootstrap ]] && break; sleep 0.1; done
brokers=$(cat "$work/bootstrap")

echo "== preparing: $N simulated transactions and a 100-tree model" >&2
days=$(( (N + 9599) / 9600 + 1 )) # ~9,600 transactions a day with the default 5,000 customers
"$VIGIL" simulate --days "$days" --scenarios all --out "$work/sim" 2>/dev/null
head -n "$N" "$work/sim/transactions.jsonl" >"$work/txns.jsonl"
# the model: trained on the first 60,000 transactions' served features
head -n 60000 "$work/sim/transactions.jsonl" >"$work/train.jsonl"
"$VIGIL" replay --transactions "$work/train.jsonl" --labels "$work/sim/labels.jsonl" \
  --catalog features/default.conf --out "$work/train-decisions.jsonl" --quiet 2>/dev/null
"$VIGIL" train --decisions "$work/train-decisions.jsonl" --labels "$work/sim/labels.jsonl" \
  --train 2018-04-01..2018-04-08 --trees 100 --depth 6 --out "$work/model" 2>/dev/null
model=(--catalog features/default.conf --rules rules/default.rules --model "$work/model")
if [[ -z ${LAT_ONLY:-} ]]; then
"$VIGIL" replay --transactions "$work/txns.jsonl" --to-kafka "$brokers" --quiet 2>/dev/null

run() { # NAME ARGS...: runs the engine over the backlog, prints its throughput line
  local name=$1
  shift
  "$VIGIL" run --brokers "$brokers" --group "bench-$name" --state "$work/state-$name" \
    --http off --batch-size "$BATCH" --batch-ms "$BATCH_MS" --max-messages "$N" \
    --idle-exit 20s "$@" 2>"$work/$name.log" || { tail -5 "$work/$name.log" >&2; exit 1; }
  grep -o 'throughput: .*' "$work/$name.log" | sed 's/.*commit: //; s/ messages\/s//'
}

echo "== throughput over a backlog of $N transactions (batches of $BATCH / $BATCH_MS)" >&2
pt=$(run passthrough --passthrough)
en=$(run engine "${model[@]}")
ck=$(run checkpoint "${model[@]}" --set engine.state.checkpoint.interval=10s)
printf '%-44s %10s tx/s\n' "passthrough (exactly once)" "$pt"
printf '%-44s %10s tx/s\n' "engine (default catalogue, rules, 100 trees)" "$en"
awk -v a="$en" -v b="$pt" 'BEGIN { printf "%-44s %10.1f %%\n", "engine / passthrough", 100 * a / b }'
printf '%-44s %10s tx/s\n' "engine, state checkpoints every 10 s" "$ck"
awk -v a="$ck" -v b="$pt" 'BEGIN { printf "%-44s %10.1f %%\n", "  / passthrough", 100 * a / b }'

if [[ -z ${NO_CHANGELOG:-} ]]; then
  # (c) the same with the state changelog on (what several processes in a group need), then a
  # process with an empty state directory restoring every partition's state from it.
  echo "== the state changelog: throughput with it, then a restore of all of it" >&2
  cl=$(run changelog "${model[@]}" --set engine.state.changelog=true)
  printf '%-44s %10s tx/s\n' "engine + state changelog" "$cl"
  # a changelog topic of its own: a process restores whatever the topic holds for its
  # partitions, and would resume after the run above
  clck=$(run changelog-ckpt "${model[@]}" --set engine.state.changelog=true \
    --set topics.changelog=vigil.changelog.ckpt --set engine.state.checkpoint.interval=10s)
  printf '%-44s %10s tx/s\n' "  + state checkpoints every 10 s" "$clck"
  # a group of its own: the one above may still hold its members' partitions for a while
  "$VIGIL" run --brokers "$brokers" --group bench-restore --state "$work/state-restore" \
    --http off "${model[@]}" --set engine.state.changelog=true --idle-exit 8s \
    2>"$work/restore.log" || { tail -5 "$work/restore.log" >&2; exit 1; }
  printf '%-44s %s\n' "restore into an empty state" \
    "$(grep -o 'restored .*' "$work/restore.log" | sed 's/ from vigil.changelog//')"
fi

if [[ -z ${NO_REPARTITION:-} ]]; then
  # (d) the repartition topology in one process: card, device, IP, terminal and merchant
  # stages over their own topics, with their changelogs (what several processes need for
  # exact features across partitions). Its throughput is decisions per second from the first message to the last
  # commit (the consumed count includes the stages' own records); watermark.idle is short so
  # that the end of the backlog is released at once.
  echo "== the repartition topology, one process" >&2
  "$VIGIL" run --brokers "$brokers" --group bench-repartition --state "$work/state-repartition" \
    --http off --batch-size "$BATCH" --batch-ms "$BATCH_MS" "${model[@]}" \
    --set engine.topology=repartition --set engine.state.changelog=true \
    --set topics.changelog=vigil.changelog.rp \
    --set engine.watermark.idle=200ms --idle-exit 10s \
    2>"$work/repartition.log" || { tail -5 "$work/repartition.log" >&2; exit 1; }
  stages=$(grep -o 'topology repartition, [0-9]* stages' "$work/repartition.log" | grep -o '[0-9]*')
  tx=$(grep -o 'stopped: [0-9]* consumed, [0-9]* transactions' "$work/repartition.log" | awk '{print $4}')
  secs=$(grep -o 'messages in [0-9.]* s' "$work/repartition.log" | awk '{print $3}')
  awk -v t="$tx" -v s="$secs" -v k="$stages" -v n="$N" 'BEGIN {
    printf "%-44s %10.0f tx/s (%d of %d decided)\n", "engine, topology repartition (" k " stages)", t / s, t, n }'
fi

fi # LAT_ONLY

latency() { # NAME GUARANTEE [ARGS]: engine at the offered rate, on a fresh broker; p50/p99
  local name=$1 guarantee=$2
  shift 2
  "$VIGIL" broker --partitions 64 --bootstrap-file "$work/bootstrap-$name" --log-level warn \
    2>/dev/null >/dev/null &
  local bpid=$!
  for _ in $(seq 100); do [[ -s $work/bootstrap-$name ]] && break; sleep 0.1; done
  local b
  b=$(cat "$work/bootstrap-$name")
  "$VIGIL" run --brokers "$b" --group "lat-$name" --state "$work/state-lat-$name" \
    --http off --guarantee "$guarantee" --set kafka.fetch.wait.max.ms=1 ${LAT_ARGS:-} "$@" \
    --idle-exit 4s 2>"$work/lat-$name.log" &
  local pid=$!
  sleep 4 # join the group before the traffic starts
  # ~9,600 transactions per simulated day with 5,000 customers
  "$VIGIL" simulate --brokers "$b" --rate "$RATE" --seed 9 \
    --days $(( (RATE * LAT_SECONDS + 9599) / 9600 )) 2>/dev/null
  wait "$pid"
  kill "$bpid"
  wait "$bpid" 2>/dev/null || true
  grep -o 'end-to-end latency p50 .*' "$work/lat-$name.log"
  # where a batch's time went, for reading the tail
  printf '%-44s %s\n' "" "$(grep -o 'per batch: .*' "$work/lat-$name.log")"
}
[[ -n ${NO_LATENCY:-} ]] && exit 0
echo "== end-to-end latency at $RATE transactions/s offered" >&2
for i in $(seq "${LAT_RUNS:-1}"); do # each run on its own broker, group and state
  printf '%-44s %s\n' "passthrough, exactly once" "$(latency pt-eos-$i exactly_once --passthrough)"
  printf '%-44s %s\n' "engine, exactly once" "$(latency eos-$i exactly_once "${model[@]}")"
  printf '%-44s %s\n' "passthrough, at least once" \
    "$(latency pt-alo-$i at_least_once --passthrough)"
  printf '%-44s %s\n' "engine, at least once" "$(latency alo-$i at_least_once "${model[@]}")"
done

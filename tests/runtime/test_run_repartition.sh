#!/usr/bin/env bash
# test_run_repartition.sh - the repartition topology (engine.topology = repartition) across
# three processes in one consumer group. The catalogue (tests/data/span.conf) has card,
# terminal and merchant features, so every transaction goes through three stages: card
# features on the transactions topic, then terminal features on vigil.repartition.terminal_id,
# then merchant features, rules and the decision on vigil.repartition.merchant_id. Traffic is
# paced in; the process holding the most transactions partitions is killed with SIGKILL midway
# and a replacement joins later, as in test_run_scale.sh. At the end a read_committed consumer
# must see exactly one decision per transaction, each identical to the decision of
# `vigil replay` over the same log: the same features, terminal and merchant ones included,
# although no process saw all of a terminal's traffic and the stages' inputs arrived
# interleaved from 16 partitions and three processes (docs/scaling.md, event-time alignment).
#
# The local broker writes no abort markers (test_run_crash.sh): the batch open at the kill
# becomes visible. Its forward records are dropped by the next stage as re-sends; those of its
# decisions that were decided again elsewhere are removed (check_group, lib.sh).
source "$(dirname "$0")/lib.sh"
start_broker 16

"$VIGIL" simulate --customers 1500 --terminals 1000 --days 12 --seed 5 --out "$work/sim" 2>/dev/null
n=$(wc -l <"$work/sim/transactions.jsonl")

common=(--brokers "$brokers" --catalog "$VG_SOURCE_DIR/tests/data/span.conf"
  --rules "$VG_SOURCE_DIR/tests/data/card.rules" --batch-size 300 --group span
  --set engine.topology=repartition --set engine.state.changelog=true --idle-exit 12s
  --set kafka.session.timeout.ms=3000 --set kafka.heartbeat.interval.ms=300)

"$VIGIL" replay --transactions "$work/sim/transactions.jsonl" --to-kafka "$brokers" \
  --speedup 43200 --quiet 2>"$work/feed.err" &
feed=$!
pids+=($feed)
port=$((20000 + RANDOM % 20000))
for inst in a b c; do
  http=off
  [[ $inst == a ]] && http=127.0.0.1:$port
  "$VIGIL" run "${common[@]}" --http "$http" --instance "$inst" --state "$work/state-$inst" \
    2>"$work/$inst.err" &
  pids+=($!)
  eval "pid_$inst=$!"
done
sleep 10
victim=$(busiest 16 a b c) # the one holding the most transactions partitions
grep -q "topology repartition, 3 stages: card_id (transactions) -> terminal_id (vigil.repartition.terminal_id) -> merchant_id (vigil.repartition.merchant_id)" "$work/a.err" ||
  fail "vigil run did not log its three stages: $(grep topology "$work/a.err")"
pass "three stages: card_id -> terminal_id -> merchant_id"
# Operating it: per-stage lag, state by stage and partition, what each stage holds.
http_get "127.0.0.1:$port" /metrics >"$work/metrics.txt" || fail "no /metrics from instance a"
# (the assignor balances partition counts over all four topics: a process may hold none of one)
for want in 'vigil_consumer_lag{topic="vigil.repartition.' 'vigil_state_partition_bytes{stage="' \
  'vigil_state_partition_entities{stage="' 'vigil_stage_held{topic="vigil.repartition.' \
  'vigil_state_entities{stage="merchant_id",entity="merchant_id"}' \
  'vigil_state_cache_bytes{stage="terminal_id"}'; do
  grep -qF "$want" "$work/metrics.txt" || fail "/metrics has no $want"
done
dup=$(grep '^# TYPE' "$work/metrics.txt" | sort | uniq -d)
[[ -z $dup ]] || fail "/metrics declares a family twice: $dup"
pass "/metrics shows per-stage lag, state by stage and partition, and what each stage holds"
kill_and_replace "$victim" "${common[@]}" --http off

grep -h "restored [0-9]* partition(s)" "$work"/*.err | sed 's/^.*run: /  /' || true
for topic in vigil.changelog vigil.changelog.terminal_id vigil.changelog.merchant_id; do
  grep -q "restored [0-9]* partition(s) from $topic:" "$work"/*.err ||
    fail "no process restored state from $topic"
done
pass "the partitions of the killed process were restored from each stage's changelog"

"$VIGIL" replay --transactions "$work/sim/transactions.jsonl" --out "$work/ref.jsonl" --quiet \
  --catalog "$VG_SOURCE_DIR/tests/data/span.conf" --rules "$VG_SOURCE_DIR/tests/data/card.rules" \
  2>"$work/ref.err" || fail "reference replay failed: $(tail -3 "$work/ref.err")"

consume decisions -f '%h\t%s\n' >"$work/span.txt"
check_group "$work/span.txt" "$work/ref.jsonl" "$n" "$victim" || fail "exactly-once check failed"
live=$(grep -c '"terminal_count_1d":[1-9]' "$work/ref.jsonl" || true)
((live > n / 2)) || fail "terminal features look empty: $live of $n decisions count earlier transactions of their terminal"
pass "exactly one committed decision per transaction ($n) across the group, each identical to a replay's, terminal and merchant features included"
done_ok

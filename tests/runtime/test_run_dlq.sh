#!/usr/bin/env bash
# test_run_dlq.sh - `vigil run` on the local broker: good transactions each get exactly one
# committed decision while bad messages go to transactions.dlq, byte for byte, with the
# reason and their source position in headers; counts in /metrics match.
source "$(dirname "$0")/lib.sh"
start_broker 16

"$VIGIL" simulate --customers 40 --terminals 400 --days 5 --seed 3 --out "$work/sim" 2>/dev/null
good=$(wc -l <"$work/sim/transactions.jsonl")
"$VIGIL" replay --transactions "$work/sim/transactions.jsonl" --to-kafka "$brokers" --quiet \
  2>/dev/null
cat >"$work/bad.txt" <<'BAD'
{"txn_id":"bad1","ts":"2018-04-02T00:00:00Z","card_id":"c1","amount":"12,5"}
{"txn_id":"bad2","ts":"yesterday","card_id":"c1","amount":1}
{"txn_id":"bad3","ts":0,"amount":1}
not json at all
{"txn_id":"bad5","ts":0,"card_id":"c1","amount":1,"card_id":"c2"}
BAD
kcat -b "$brokers" -P -t transactions -p 0 -l "$work/bad.txt"

port=$((20000 + RANDOM % 20000))
"$VIGIL" run --brokers "$brokers" --group dlq-test --state "$work/state" \
  --catalog "$VG_SOURCE_DIR/features/default.conf" --rules "$VG_SOURCE_DIR/rules/default.rules" \
  --http "127.0.0.1:$port" --idle-exit 4s 2>"$work/run.err" &
run_pid=$!
pids+=($run_pid)
# scrape /metrics while it runs, once everything has been consumed
metrics=
for _ in $(seq 150); do
  sleep 0.2
  metrics=$(http_get "127.0.0.1:$port" /metrics) || true
  grep -q "vigil_dead_letters_total 5" <<<"$metrics" && break
done
wait $run_pid || fail "vigil run exited with $?: $(tail -5 "$work/run.err")"
grep -q "vigil_dead_letters_total" <<<"$metrics" || fail "no metrics scraped; engine log: $(tail -5 "$work/run.err")"

grep -q "vigil_dead_letters_total 5" <<<"$metrics" || fail "metrics did not count 5 dead letters"
grep -q "vigil_consumed_total{topic=\"transactions\"} $((good + 5))" <<<"$metrics" ||
  fail "metrics did not count $((good + 5)) consumed transactions"
pass "/metrics counted $((good + 5)) consumed and 5 dead letters"
# Metrics are written between batches: every batch counted has been processed and committed.
count() { sed -n "s/^vigil_$1_seconds_count //p" <<<"$metrics"; }
batches=$(count processing)
[[ -n $batches && $batches -gt 0 && $(count kafka_commit) == "$batches" && $(count state_commit) == "$batches" ]] ||
  fail "batch histograms disagree: processing '$batches', kafka commit '$(count kafka_commit)', state commit '$(count state_commit)'"
pass "processing, Kafka commit and state commit histograms each counted the $batches batches"
if command -v promtool >/dev/null; then
  promtool check metrics <<<"$metrics" >"$work/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$work/promtool.out")"
  pass "promtool check metrics accepts /metrics"
fi

consume decisions -f '%s\n' >"$work/decisions.jsonl"
n=$(wc -l <"$work/decisions.jsonl")
[[ $n -eq $good ]] || fail "expected $good decisions, got $n"
unique=$(python3 -c 'import json,sys; print(len({json.loads(l)["txn_id"] for l in open(sys.argv[1])}))' "$work/decisions.jsonl")
[[ $unique -eq $good ]] || fail "expected $good distinct txn_ids, got $unique"
pass "$good transactions in, $good decisions out, one per transaction"

consume transactions.dlq -f '%h\t%s\n' >"$work/dlq.txt"
[[ $(wc -l <"$work/dlq.txt") -eq 5 ]] || fail "expected 5 dead letters, got $(wc -l <"$work/dlq.txt")"
check_reason() {
  grep -F "vigil.reason=$1" "$work/dlq.txt" | grep -qF "$2" || fail "no dead letter with reason '$1' and body '$2'"
}
check_reason 'amount must be a number >= 0, got "12,5"' '"txn_id":"bad1"'
check_reason 'ts must be an RFC 3339 string or integer epoch milliseconds, got "yesterday"' '"txn_id":"bad2"'
check_reason 'missing field card_id' '"txn_id":"bad3"'
check_reason "invalid JSON at line 1 column 1, near 'not json at '" 'not json at all'
check_reason 'duplicate key "card_id"' '"txn_id":"bad5"'
grep -q "vigil.source.topic=transactions,vigil.source.partition=0,vigil.source.offset=" "$work/dlq.txt" ||
  fail "dead letters lack their source position headers"
pass "5 bad messages dead-lettered with reasons and source positions, original bytes kept"
done_ok

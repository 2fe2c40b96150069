#!/usr/bin/env bash
# test_run_repartition_backlog.sh - the repartition topology in one process over a backlog,
# with the default catalogue: five stages (card_id, then device_id, ip, terminal_id and
# merchant_id, each on its own topic). A backlog is the hard case for alignment: a stage's
# partitions are fetched in bursts, one far ahead of another, and the end of the log is
# released only by idle watermarks. Every decision must be byte-identical to `vigil replay`'s
# over the same log, including the features that expire entities by event time.
source "$(dirname "$0")/lib.sh"
start_broker 8

"$VIGIL" simulate --customers 500 --days 3 --seed 3 --out "$work/sim" 2>/dev/null
n=$(wc -l <"$work/sim/transactions.jsonl")
"$VIGIL" replay --transactions "$work/sim/transactions.jsonl" --to-kafka "$brokers" --quiet \
  2>"$work/feed.err" || fail "feeding failed: $(tail -3 "$work/feed.err")"

"$VIGIL" run --brokers "$brokers" --http off --rules "$VG_SOURCE_DIR/rules/default.rules" \
  --set engine.topology=repartition --state "$work/state" --idle-exit 4s 2>"$work/run.err" &&
  fail "topology repartition without the state changelog was accepted"
grep -q "engine.topology = repartition needs engine.state.changelog = true" "$work/run.err" ||
  fail "unexpected error: $(tail -1 "$work/run.err")"
pass "topology repartition without the changelog is refused with a clear error"

"$VIGIL" run --brokers "$brokers" --http off --rules "$VG_SOURCE_DIR/rules/default.rules" \
  --set engine.topology=repartition --set engine.state.changelog=true \
  --set engine.watermark.idle=300ms --state "$work/state" --idle-exit 4s 2>"$work/run.err" ||
  fail "engine failed: $(tail -3 "$work/run.err")"
grep -q "topology repartition, 5 stages: card_id (transactions) -> device_id" "$work/run.err" ||
  fail "not five stages: $(grep topology "$work/run.err")"
grep -q "stages: 0 transactions reached a stage late" "$work/run.err" ||
  fail "transactions arrived late: $(grep 'stages:' "$work/run.err")"

"$VIGIL" replay --transactions "$work/sim/transactions.jsonl" --out "$work/ref.jsonl" --quiet \
  --rules "$VG_SOURCE_DIR/rules/default.rules" 2>"$work/ref.err" ||
  fail "reference replay failed: $(tail -3 "$work/ref.err")"
same_as_replay "$work/ref.jsonl" "$n"
pass "$n decisions through five stages, each byte-identical to the replay's"

# Its changelog belongs to this topology: the default one is refused it, with the reason.
"$VIGIL" run --brokers "$brokers" --http off --rules "$VG_SOURCE_DIR/rules/default.rules" \
  --set engine.state.changelog=true --group other --state "$work/state-other" --idle-exit 4s \
  2>"$work/other.err" && fail "the default topology restored a repartition changelog"
grep -q "vigil.changelog \[[0-9]*\] was written by stage card_id, this engine's is all: a changelog belongs to one topology" "$work/other.err" ||
  fail "unexpected error: $(grep ERROR "$work/other.err" | head -2)"
pass "another topology's changelog is refused with a clear error"
done_ok

#!/usr/bin/env bash
# test_run_checkpoint.sh - engine.state.checkpoint.interval: the engine writes its state in
# checkpoints, and whenever its input pauses. Here the interval is an hour, so only the pause
# can write it: the engine decides a stream, goes idle, and is killed with SIGKILL; a restart
# must find every offset in its state and decide nothing again.
#
# On the local broker the group's offsets never move under transactions (test_run_crash.sh),
# so the restart resumes from the state's own offsets: had the pause written nothing, it would
# start from the beginning and decide every transaction a second time.
source "$(dirname "$0")/lib.sh"
start_broker 8

"$VIGIL" simulate --customers 300 --terminals 300 --days 6 --seed 4 --out "$work/sim" 2>/dev/null
n=$(wc -l <"$work/sim/transactions.jsonl")
"$VIGIL" replay --transactions "$work/sim/transactions.jsonl" --to-kafka "$brokers" --quiet 2>/dev/null

run=(--brokers "$brokers" --catalog "$VG_SOURCE_DIR/tests/data/card.conf"
  --rules "$VG_SOURCE_DIR/tests/data/card.rules" --http off --group ckpt --state "$work/state"
  --batch-size 500 --set engine.state.checkpoint.interval=1h
  --set kafka.session.timeout.ms=3000 --set kafka.heartbeat.interval.ms=300)
"$VIGIL" run "${run[@]}" 2>"$work/first.err" &
pid=$!
pids+=($pid)
decided=0
for _ in $(seq 300); do
  decided=$(consume decisions -f '%s\n' | wc -l)
  ((decided >= n)) && break
  sleep 0.1
done
((decided == n)) || fail "the first run decided $decided of $n: $(tail -3 "$work/first.err")"
sleep 2 # idle: its polls come back empty, and the first of them writes the checkpoint
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
pass "the first run decided all $n transactions, went idle and was killed with SIGKILL"

# the dead member's partitions come back after its session times out (3 s)
"$VIGIL" run "${run[@]}" --idle-exit 10s 2>"$work/second.err" ||
  fail "the restart failed: $(tail -3 "$work/second.err")"
grep -q "assigned [0-9]* partition" "$work/second.err" ||
  fail "the restart was never assigned the partitions: $(tail -3 "$work/second.err")"
again=$(($(consume decisions -f '%s\n' | wc -l) - n))
((again == 0)) || fail "the restart decided $again transactions again: the idle checkpoint was not written"
grep -q "stopped: 0 consumed" "$work/second.err" ||
  fail "the restart consumed input again: $(grep -o 'stopped: [0-9]* consumed' "$work/second.err")"
pass "after the restart: nothing consumed or decided again, the pause had written every offset"
done_ok

#!/usr/bin/env bash
# test_run_crash.sh - exactly once under kill -9. The engine is killed with SIGKILL at random
# moments several times while a stream flows in (paced: 20 simulated days in ~70 s, so that
# every kill lands mid-stream, which the test checks), and restarted each time. At the end a
# read_committed consumer must see exactly one decision per transaction, each identical to
# the decision of an uninterrupted run over the same input.
#
# What the local broker cannot show. It is librdkafka 2.0's mock cluster, whose transaction
# support is partial: it hides an open transaction from read_committed readers, but it
# discards the offsets of TxnOffsetCommit and writes no commit/abort markers, so an aborted
# transaction's messages become visible once it ends, and the group's committed offsets never
# move. On Apache Kafka or Redpanda the engine resumes from the offsets its last transaction
# committed; on the mock it resumes from the offsets in its own state store, which trail the
# Kafka commit by at most the batch in flight at the kill. So here a kill can leave one batch
# visible twice: the one open (or just committed) at the kill, decided again on restart.
# Every output carries its batch in the vigil.batch header; the check removes batches that
# were wholly decided again by a later batch, requires that there be at most one per kill, and then
# requires exactly one decision per transaction, identical to the uninterrupted run's.
# docs/operations.md has the details.
#
# The catalogue is card-keyed only (tests/data/card.conf): a card's state lives in one
# partition, so the uninterrupted run and the crashed one compute the same features whatever
# order their partitions were consumed in.
source "$(dirname "$0")/lib.sh"
start_broker 32 --topic ref_decisions --topic ref_review

"$VIGIL" simulate --customers 2000 --terminals 2000 --days 20 --seed 11 --out "$work/sim" 2>/dev/null
n=$(wc -l <"$work/sim/transactions.jsonl")

common=(--brokers "$brokers" --catalog "$VG_SOURCE_DIR/tests/data/card.conf"
  --rules "$VG_SOURCE_DIR/tests/data/card.rules" --http off --batch-size 200 --batch-ms 20ms
  --set kafka.session.timeout.ms=3000 --set kafka.heartbeat.interval.ms=300)
# VG_CRASH_ARGS: more flags for the crashing runs, to try other settings by hand (e.g. the
# changelog with checkpoints: docs/operations.md, "checkpoints")
# shellcheck disable=SC2206
crash=(--group crash --state "$work/crash-state" ${VG_CRASH_ARGS:-})

# The crashing run, while the stream flows in. First a kill in the narrowest window, between
# the Kafka commit of a batch and the state commit (fault injection), then five at random
# moments.
"$VIGIL" replay --transactions "$work/sim/transactions.jsonl" --to-kafka "$brokers" \
  --speedup 25000 --quiet 2>"$work/feed.err" &
feed=$!
pids+=($feed)
VIGIL_CRASH_AFTER_KAFKA_COMMIT=7 "$VIGIL" run "${common[@]}" "${crash[@]}" 2>>"$work/crash.err" &&
  fail "the fault-injected run did not die"
grep -q "fault injection: killing myself between Kafka commit 7" "$work/crash.err" ||
  fail "fault injection did not trigger"
kills=1

for i in 1 2 3 4 5; do
  "$VIGIL" run "${common[@]}" "${crash[@]}" 2>>"$work/crash.err" &
  pid=$!
  # joining takes ~3 s (the group's initial rebalance delay, or the dead member's session)
  sleep "$(python3 -c "import random; print(round(random.uniform(3.5, 6.0) + (4 if $i > 1 else 0), 2))")"
  kill -0 "$feed" 2>/dev/null || fail "kill $i would come after the stream ended"
  if kill -9 "$pid" 2>/dev/null; then
    kills=$((kills + 1))
  fi
  wait "$pid" 2>/dev/null || true
  done_so_far=$(consume decisions -f '%s\n' | wc -l)
  echo "  kill $i: $done_so_far committed decisions so far"
done
((kills == 6)) || fail "expected 6 kills, the engine had exited early $((6 - kills)) times"
pass "6 kills while the stream flowed in"
wait "$feed" || fail "feeding the transactions failed: $(tail -3 "$work/feed.err")"
"$VIGIL" run "${common[@]}" "${crash[@]}" --idle-exit 15s \
  2>>"$work/crash.err" || fail "final run failed: $(tail -3 "$work/crash.err")"

# The reference: one uninterrupted run over the whole stream, into other topics. It writes its
# state in checkpoints (engine.state.checkpoint.interval, which on this broker is only safe
# without crashes), so the comparison below also shows that checkpoints change no decision.
"$VIGIL" run "${common[@]}" --group ref --state "$work/ref-state" \
  --set topics.decisions=ref_decisions --set topics.review=ref_review --idle-exit 10s \
  --set engine.state.checkpoint.interval=500ms \
  2>"$work/ref.err" || fail "reference run failed: $(tail -3 "$work/ref.err")"
consume ref_decisions -f '%s\n' | sort >"$work/ref.jsonl"
[[ $(wc -l <"$work/ref.jsonl") -eq $n ]] || fail "reference run decided $(wc -l <"$work/ref.jsonl") of $n"
pass "uninterrupted run: $n decisions"

consume decisions -f '%h\t%s\n' >"$work/crash.txt"
python3 - "$work/crash.txt" "$work/ref.jsonl" "$n" "$kills" <<'PY' || fail "exactly-once check failed"
import collections, json, sys
lines = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1])]
ref = {json.loads(l)["txn_id"]: l.rstrip("\n") for l in open(sys.argv[2])}
n, kills = int(sys.argv[3]), int(sys.argv[4])
batches = collections.defaultdict(list)
count = collections.Counter()
for headers, body in lines:
    batch = dict(h.split("=", 1) for h in headers.split(","))["vigil.batch"]
    txn = json.loads(body)["txn_id"]
    batches[batch].append((txn, body))
    count[txn] += 1
# A batch is superseded when every one of its transactions is decided again by a later
# batch (batch ids are INSTANCE.PID.START_MS:SEQ; later = later process start, then seq).
def order(batch):
    run, seq = batch.rsplit(":", 1)
    return (int(run.rsplit(".", 1)[1]), int(seq))
later = collections.Counter()
redone = []
for b in sorted(batches, key=order, reverse=True):
    if all(later[t] > 0 for t, _ in batches[b]):
        redone.append(b)
    for t, _ in batches[b]:
        later[t] += 1
kept = [(t, body) for b, items in batches.items() if b not in redone for t, body in items]
print(f"  {len(lines)} decisions read in {len(batches)} batches; {len(redone)} batch(es) "
      f"({sum(len(batches[b]) for b in redone)} decisions) from transactions open at a kill")
ok = True
# a batch id names one batch: at most --batch-size decisions
shared = [b for b, items in batches.items() if len(items) > 200]
if shared:
    print(f"FAIL: {len(shared)} batch ids with more decisions than a batch holds, e.g. {shared[0]}"); ok = False
if len(redone) > kills:
    print(f"FAIL: {len(redone)} batches decided twice, more than the {kills} kills explain"); ok = False
# and one per kill: the batch a killed process had open or had just committed, not both
for run, k in collections.Counter(b.rsplit(":", 1)[0] for b in redone).items():
    if k > 1:
        print(f"FAIL: {k} batches of process {run} decided twice, more than one kill explains"); ok = False
once = collections.Counter(t for t, _ in kept)
if len(kept) != n or len(once) != n or set(once) != set(ref):
    print(f"FAIL: {len(kept)} decisions for {len(once)} transactions, expected {n}"); ok = False
diff = [t for t, body in kept if ref.get(t) != body]
if diff:
    print(f"FAIL: {len(diff)} decisions differ from the uninterrupted run, e.g. {diff[0]}"); ok = False
sys.exit(0 if ok else 1)
PY
pass "after $kills kills: exactly one committed decision per transaction ($n), each identical to the uninterrupted run's"
done_ok

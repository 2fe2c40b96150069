#!/usr/bin/env bash
# test_replay.sh - `vigil replay`:
#  - determinism: the same inputs (transactions + labels, default catalogue, default rules, a
#    model) give byte-identical decisions, run after run, from plain or gzip files;
#  - run/replay equivalence: the same stream through `vigil run` on the local broker and
#    through `vigil replay` gives the same decisions, byte for byte (one partition, so the
#    engine sees the file's order);
#  - a bad line is dead-lettered with its line number and the replay goes on;
#  - an output that cannot be written stops the replay with the reason.
source "$(dirname "$0")/lib.sh"

"$VIGIL" simulate --customers 300 --terminals 1500 --days 12 --seed 4 --scenarios all \
  --out "$work/sim" 2>/dev/null
txns="$work/sim/transactions.jsonl"
labels="$work/sim/labels.jsonl"
n=$(wc -l <"$txns")
common=(--catalog "$VG_SOURCE_DIR/features/default.conf" --rules "$VG_SOURCE_DIR/rules/default.rules" --quiet)

# a model trained on the first week's served features
"$VIGIL" replay --transactions "$txns" --labels "$labels" "${common[@]}" --out "$work/d0.jsonl" 2>/dev/null
"$VIGIL" train --decisions "$work/d0.jsonl" --labels "$labels" --train 2018-04-01..2018-04-06 \
  --trees 30 --depth 4 --out "$work/model" >/dev/null 2>&1 || fail "training failed"
common+=(--model "$work/model")

"$VIGIL" replay --transactions "$txns" --labels "$labels" "${common[@]}" --out "$work/d1.jsonl" 2>"$work/r1.err"
gzip -c "$txns" >"$work/t.jsonl.gz"
gzip -c "$labels" >"$work/l.jsonl.gz"
"$VIGIL" replay --transactions "$work/t.jsonl.gz" --labels "$work/l.jsonl.gz" "${common[@]}" \
  --out "$work/d2.jsonl" --batch-size 777 --threads 1 2>/dev/null
[[ $(wc -l <"$work/d1.jsonl") -eq $n ]] || fail "replay decided $(wc -l <"$work/d1.jsonl") of $n"
cmp -s "$work/d1.jsonl" "$work/d2.jsonl" || fail "two replays of the same input differ"
grep -q "replay: $n transactions" "$work/r1.err" || fail "no summary: $(cat "$work/r1.err")"
python3 - "$work/d1.jsonl" <<'PY' || fail "decisions lack scores or reasons"
import json, sys
ds = [json.loads(l) for l in open(sys.argv[1])]
assert all(isinstance(d["score"], (int, float)) for d in ds)
flagged = [d for d in ds if d["decision"] != "allow"]
assert flagged and all(d["reasons"] for d in flagged)
PY
pass "$n decisions, byte-identical across two replays (plain and gzip, batch 5000 and 777, two threads and one), scored, reasons on flagged"

# review sampling beyond flagged cases: a random share of allowed transactions, and every
# allowed transaction scored near the threshold
"$VIGIL" replay --transactions "$txns" --labels "$labels" "${common[@]}" --out "$work/ds.jsonl" \
  --review-sample-rate 0.05 --review-band 0.2..0.6 2>/dev/null
python3 - "$work/ds.jsonl" <<'PY' || fail "review sampling is wrong"
import json, sys
ds = [json.loads(l) for l in open(sys.argv[1])]
band = [d for d in ds if d["decision"] == "allow" and 0.2 <= d["score"] < 0.6]
near = [d for d in ds if d.get("review_reason") == "near_threshold"]
rand = [d for d in ds if d.get("review_reason") == "random_sample"]
rest = [d for d in ds if d["decision"] == "allow" and d not in band]
assert [d["txn_id"] for d in near] == [d["txn_id"] for d in band], (len(near), len(band))
assert all(d["decision"] == "allow" for d in rand)
share = len(rand) / len(rest)
assert 0.03 < share < 0.07, share
print("  %d near the threshold, %d random (%.1f%% of the other allowed)" % (len(near), len(rand), 100 * share))
PY
pass "review sampling: every allowed score in [0.2, 0.6) and ~5% of the other allowed, marked why"

# an output that cannot be written stops the replay with the reason, whether decisions are
# written on the processing thread (one thread) or on the back thread (two)
for threads in 1 2; do
  if "$VIGIL" replay --transactions "$txns" "${common[@]}" --out /dev/full --threads $threads \
    2>"$work/full.err"; then
    fail "a replay into /dev/full succeeded (threads $threads)"
  fi
  grep -q "ERROR replay: emitting outputs failed" "$work/full.err" ||
    fail "no reason for a failed write (threads $threads): $(cat "$work/full.err")"
done
pass "writing decisions into a full device fails with the reason, on one thread or two"

# a bad line in the middle is dead-lettered with its line number; the rest is decided
{ head -n 10 "$txns"; echo '{"txn_id":"oops","ts":"2018-04-01T01:00:00Z","amount":-1,"card_id":"c"}'; tail -n +11 "$txns"; } >"$work/bad.jsonl"
"$VIGIL" replay --transactions "$work/bad.jsonl" "${common[@]}" --out "$work/d3.jsonl" 2>/dev/null
[[ $(wc -l <"$work/d3.jsonl") -eq $n ]] || fail "a bad line stopped or changed the replay"
python3 - "$work/d3.jsonl.dlq" "$work/bad.jsonl" <<'PY' || fail "dead letter lacks reason or line: $(cat "$work/d3.jsonl.dlq")"
import json, sys
(d,) = [json.loads(l) for l in open(sys.argv[1])]
assert d["reason"] == "amount must be a number >= 0, got -1" and d["line"] == 11, d
assert d["source"] == sys.argv[2] and json.loads(d["message"])["txn_id"] == "oops", d
PY
pass "a bad line is dead-lettered with reason and line number; $n decisions still"

# run/replay equivalence: transactions only (labels arrive by processing time in a live run),
# 2,500 of them: one partition of the local broker keeps only its newest ~5 MB of decisions
head -n 2500 "$txns" >"$work/equiv.jsonl"
txns="$work/equiv.jsonl"
n=2500
start_broker 1
"$VIGIL" replay --transactions "$txns" --to-kafka "$brokers" --quiet 2>/dev/null
"$VIGIL" run --brokers "$brokers" --group equiv --state "$work/run-state" --http off \
  --catalog "$VG_SOURCE_DIR/features/default.conf" --rules "$VG_SOURCE_DIR/rules/default.rules" \
  --model "$work/model" --idle-exit 5s 2>"$work/run.err" || fail "run failed: $(tail -3 "$work/run.err")"
consume decisions -f '%s\n' >"$work/run.jsonl"
"$VIGIL" replay --transactions "$txns" "${common[@]}" --out "$work/replay.jsonl" 2>/dev/null
[[ $(wc -l <"$work/run.jsonl") -eq $n ]] || fail "run decided $(wc -l <"$work/run.jsonl") of $n"
if ! cmp -s "$work/run.jsonl" "$work/replay.jsonl"; then
  diff <(cut -c1-200 "$work/run.jsonl") <(cut -c1-200 "$work/replay.jsonl") | head -4 >&2
  fail "vigil run and vigil replay decided differently"
fi
pass "vigil run on the broker and vigil replay give the same $n decisions, byte for byte"
done_ok

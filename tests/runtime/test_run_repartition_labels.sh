#!/usr/bin/env bash
# test_run_repartition_labels.sh - labels in the repartition topology. Labels go down the chain
# of stages and each stage applies them as they arrive, as one process does, in whichever
# partition holds the labelled transaction's record.
#
# The stream comes in three phases, each decided before the next is fed: the transactions of
# the first three days, then the fraud labels of those transactions, then the last day's
# transactions, whose features count the labels. The engine stops between phases and resumes
# from its state (each stage from its changelog's marker). The reference is `vigil replay`
# with each label's time set between the two parts of the log: every decision must be
# byte-identical, label-driven features included (card fraud count, terminal and merchant
# fraud shares). The log is moved 20 years into the future, so that the idle watermarks that
# end a phase (just past the newest transaction read) make nothing of the next phase late.
source "$(dirname "$0")/lib.sh"
start_broker 8

"$VIGIL" simulate --customers 800 --days 4 --seed 3 --scenarios all --out "$work/sim" 2>/dev/null
python3 - "$work/sim" <<'PY'
import json, sys
d = sys.argv[1]
txns = [l.replace('"ts":"2018-', '"ts":"2038-') for l in open(f"{d}/transactions.jsonl")]
first = [l for l in txns if json.loads(l)["ts"] < "2038-04-04"]
ids = {json.loads(l)["txn_id"] for l in first}
mid = json.loads(first[-1])["ts"][:-1] + "5Z"  # after the first part, before the second
labels = [json.loads(l) for l in open(f"{d}/labels.jsonl")]
with open(f"{d}/labels-a.jsonl", "w") as f:
    for lab in labels:
        if lab["txn_id"] in ids:
            lab["ts"] = mid
            f.write(json.dumps(lab, separators=(",", ":")) + "\n")
open(f"{d}/all.jsonl", "w").writelines(txns)
open(f"{d}/a.jsonl", "w").writelines(first)
open(f"{d}/b.jsonl", "w").writelines(txns[len(first):])
PY
n=$(wc -l <"$work/sim/all.jsonl")
nlab=$(wc -l <"$work/sim/labels-a.jsonl")
((nlab > 20)) || fail "only $nlab labels for the first days"

engine() { # (a restarted member may wait for the group to notice its predecessor left)
  "$VIGIL" run --brokers "$brokers" --http off --idle-exit 6s --state "$work/state" \
    --set kafka.session.timeout.ms=3000 --set kafka.heartbeat.interval.ms=300 \
    --set engine.topology=repartition --set engine.state.changelog=true \
    --set engine.watermark.idle=300ms 2>>"$work/run.err" ||
    fail "engine failed: $(tail -3 "$work/run.err")"
}
feed() { "$VIGIL" replay "$@" --to-kafka "$brokers" --quiet 2>>"$work/feed.err" || fail "feeding $*"; }

feed --transactions "$work/sim/a.jsonl"
engine
feed --transactions /dev/null --labels "$work/sim/labels-a.jsonl"
engine
feed --transactions "$work/sim/b.jsonl"
engine

applied=$(grep -o 'stopped: .* [0-9]* labels' "$work/run.err" | awk '{s += $(NF-1)} END {print s}')
[[ $applied -eq $nlab ]] || fail "the first stage took $applied labels, $nlab were sent"
grep -q "stages: 0 transactions reached a stage late" "$work/run.err" &&
  ! grep "stages: [1-9]" "$work/run.err" ||
  fail "transactions arrived late: $(grep 'stages:' "$work/run.err")"
"$VIGIL" replay --transactions "$work/sim/all.jsonl" --labels "$work/sim/labels-a.jsonl" \
  --out "$work/ref.jsonl" --quiet 2>"$work/ref.err" ||
  fail "reference replay failed: $(tail -3 "$work/ref.err")"
same_as_replay "$work/ref.jsonl" "$n"
merchant=$(grep -c '"merchant_fraud_share_30d":0\.[0-9]*[1-9]' "$work/got.sorted" || true)
card=$(grep -c '"card_labelled_fraud_30d":[1-9]' "$work/got.sorted" || true)
((merchant > 0 && card > 0)) ||
  fail "no decision counts the labels ($merchant with a merchant fraud share, $card with a card fraud count)"
pass "$n decisions after $nlab labels, byte-identical to the replay's: $merchant count a merchant's labelled fraud, $card a card's"
done_ok

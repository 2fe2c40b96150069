#!/usr/bin/env bash
# test_run_reload.sh - a running engine reloads rules and models without a restart:
#  - it starts with a model directory that holds no bundle yet: rules alone, score null;
#  - a new valid rule file (SIGHUP) is used from the next batch, its version stamped;
#  - a bundle that appears in the model directory is picked up: scores and model version;
#  - an invalid rule file and a damaged bundle are refused: the old ones keep serving, the
#    failures are logged and counted.
source "$(dirname "$0")/lib.sh"
start_broker 8

"$VIGIL" simulate --customers 200 --terminals 1000 --days 10 --seed 21 --out "$work/sim" 2>/dev/null
split -n l/4 -d "$work/sim/transactions.jsonl" "$work/part"
cat "$VG_SOURCE_DIR/tests/data/card.rules" >"$work/rules"
catalog="$VG_SOURCE_DIR/tests/data/card.conf"
port=$((20000 + RANDOM % 20000))
"$VIGIL" run --brokers "$brokers" --group reload --state "$work/state" --catalog "$catalog" \
  --rules "$work/rules" --model "$work/model" --http "127.0.0.1:$port" --batch-ms 20ms \
  --set engine.reload.interval=1h 2>"$work/run.err" &
run_pid=$!
pids+=($run_pid)

decided=0
feed() { # PART: produce it and wait until every one of its transactions is decided
  local n
  n=$(wc -l <"$work/$1")
  "$VIGIL" replay --transactions "$work/$1" --to-kafka "$brokers" --quiet 2>/dev/null
  decided=$((decided + n))
  for _ in $(seq 300); do
    [[ $(consume decisions -f '%s\n' | wc -l) -ge $decided ]] && break
    sleep 0.1
  done
  consume decisions -f '%s\n' >"$work/decisions.jsonl"
  [[ $(wc -l <"$work/decisions.jsonl") -eq $decided ]] ||
    fail "expected $decided decisions, got $(wc -l <"$work/decisions.jsonl"): $(tail -3 "$work/run.err")"
}
# versions VAR...: the distinct values of a decision field over the transactions of a part
versions() {
  python3 - "$work/decisions.jsonl" "$work/$1" "$2" <<'PY'
import json, sys
ids = {json.loads(l)["txn_id"] for l in open(sys.argv[2])}
vals = {str(d.get(sys.argv[3])) for d in map(json.loads, open(sys.argv[1])) if d["txn_id"] in ids}
print(" ".join(sorted(vals)))
PY
}
version_of_rules() { "$VIGIL" rules check "$work/rules" --catalog "$catalog" | sed -n 's/^version: //p'; }

v1=$(version_of_rules)
feed part00
[[ $(versions part00 rules_version) == "$v1" ]] || fail "part 1: rules_version $(versions part00 rules_version), expected $v1"
[[ $(versions part00 score) == "None" && $(versions part00 model) == "None" ]] ||
  fail "part 1: expected score and model null without a bundle"
grep -q "no model bundle at $work/model yet" "$work/run.err" || fail "no 'no model yet' warning"
pass "no bundle yet: rules alone, score null, rules version $v1"

echo 'review big_amount if amount > 120' >>"$work/rules"
v2=$(version_of_rules)
kill -HUP $run_pid
sleep 1
feed part01
[[ $(versions part01 rules_version) == "$v2" ]] || fail "part 2: rules_version $(versions part01 rules_version), expected $v2"
grep -q "rules reloaded: version $v1 -> $v2 (4 rules)" "$work/run.err" || fail "no reload log line"
pass "SIGHUP: new rules $v2 serve from the next batch"

# a bundle trained on the first part's served features appears (renamed into place)
"$VIGIL" train --decisions "$work/decisions.jsonl" --labels "$work/sim/labels.jsonl" \
  --train 2018-04-01..2018-04-11 --trees 20 --depth 4 --out "$work/bundle" >/dev/null 2>&1 ||
  fail "could not train a bundle"
mv "$work/bundle" "$work/model"
kill -HUP $run_pid
sleep 1
feed part02
model=$(versions part02 model)
[[ $model == model@* ]] || fail "part 3: model $model, expected the new bundle's version"
python3 - "$work/decisions.jsonl" "$work/part02" <<'PY' || fail "part 3: decisions without a score"
import json, sys
ids = {json.loads(l)["txn_id"] for l in open(sys.argv[2])}
sys.exit(0 if all(isinstance(d["score"], float) or isinstance(d["score"], int)
                  for d in map(json.loads, open(sys.argv[1])) if d["txn_id"] in ids) else 1)
PY
pass "a bundle that appears is loaded ($model): every later decision has a score"

# a damaged bundle in its place is refused: the loaded model keeps serving
cp -r "$work/model" "$work/model.bad"
printf '{"broken": ' >"$work/model.bad/manifest.json"
mv "$work/model" "$work/model.good"
mv "$work/model.bad" "$work/model"

echo 'review oops if card_cnt_1h > 2' >>"$work/rules"
kill -HUP $run_pid
sleep 1
feed part03
[[ $(versions part03 rules_version) == "$v2" ]] || fail "part 4: bad rules replaced the good ones"
[[ $(versions part03 model) == "$model" ]] || fail "part 4: a damaged bundle replaced the model"
grep -q "model reload failed, keeping $model" "$work/run.err" || fail "no model reload failure logged"
grep -q "rules reload failed, keeping version $v2" "$work/run.err" || fail "no reload failure logged"
grep -q "unknown feature card_cnt_1h (did you mean card_count_1h?)" "$work/run.err" ||
  fail "the reload failure does not say what is wrong"
metrics=$(http_get "127.0.0.1:$port" /metrics)
grep -q 'vigil_reload_failures_total{what="rules"} 1' <<<"$metrics" || fail "reload failure not counted"
grep -q 'vigil_reload_failures_total{what="model"} 1' <<<"$metrics" || fail "model reload failure not counted"
grep -q 'vigil_reloads_total{what="rules"} 1' <<<"$metrics" || fail "reload not counted"
pass "invalid rules and a damaged bundle refused: $v2 and $model keep serving, errors logged and counted"
done_ok

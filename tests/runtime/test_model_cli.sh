#!/usr/bin/env bash
# vigil train / eval / model end to end on synthetic decisions and labels: train on one week
# with early stopping on its last two days, evaluate on a later week (table, JSON, drift),
# add both bundles to a registry and promote only the better one.
set -euo pipefail
: "${VIGIL:?path to the vigil binary}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# 21 days from 2018-04-01, 400 decisions a day over 300 cards. Fraud: large amounts at risky
# terminals, or bursts; labels arrive 3 days after the transaction. Deterministic (srand 7).
awk -v out="$dir/decisions.jsonl" -v lab="$dir/labels.jsonl" 'BEGIN {
  srand(7); start = 1522540800000;
  for (d = 0; d < 21; d++) for (i = 0; i < 400; i++) {
    ts = start + d * 86400000 + int(rand() * 86400000); card = int(rand() * 300);
    amount = rand() * 200; burst = int(rand() * 6); risk = rand(); night = rand() < 0.2;
    z = -6 + (amount > 150) * 2.5 + (risk > 0.8) * 2.5 + (burst >= 5) * 2 + rand() * 1.5;
    fraud = rand() < 1 / (1 + exp(-z));
    id = "t" d "_" i;
    printf "{\"txn_id\":\"%s\",\"ts\":%.0f,\"card_id\":\"c%d\",\"catalog\":\"cat-test\",\"decision\":\"allow\",\"features\":{\"amount\":%.2f,\"card_count_1h\":%d,\"terminal_risk\":%.4f,\"night\":%d}}\n", id, ts, card, amount, burst, risk, night > out;
    if (fraud || rand() < 0.3)
      printf "{\"txn_id\":\"%s\",\"label\":\"%s\",\"ts\":%.0f,\"source\":\"simulator\"}\n", id, fraud ? "fraud" : "legit", ts + 3 * 86400000 > lab;
  } }'

"$VIGIL" train --decisions "$dir/decisions.jsonl" --labels "$dir/labels.jsonl" \
  --train 2018-04-01..2018-04-08 --maturity 3d --valid-days 2 --trees 60 --depth 4 \
  --out "$dir/a" > "$dir/train.out"
grep -q "^wrote $dir/a: " "$dir/train.out"
grep -q '"catalog_version": "cat-test"' "$dir/a/manifest.json"

"$VIGIL" eval --model "$dir/a" --decisions "$dir/decisions.jsonl" --labels "$dir/labels.jsonl" \
  --test 2018-04-15..2018-04-22 --k 20 --json --drift > "$dir/eval.json"
# 7 days x 400 decisions; the pattern is learnable, so AUC well above chance.
grep -q '"rows":2800,' "$dir/eval.json"
grep -q '"days":7,' "$dir/eval.json"
auc=$(sed 's/.*"auc_roc":\([0-9.]*\).*/\1/' "$dir/eval.json")
awk -v a="$auc" 'BEGIN { exit !(a > 0.8) }' || { echo "AUC $auc too low"; exit 1; }
grep -q '"score_psi":[0-9.e-]*,"psi":{"amount":' "$dir/eval.json"
"$VIGIL" eval --model "$dir/a" --decisions "$dir/decisions.jsonl" --labels "$dir/labels.jsonl" \
  --test 2018-04-15..2018-04-22 --report "$dir/report.html" | grep -q '^AUC ROC'
grep -q 'ROC curve' "$dir/report.html"
[[ $(grep -o '<polyline' "$dir/report.html" | wc -l) -eq 2 ]]

# The handbook's test set: each day without the cards known compromised by its start (a fraud
# from 04-08 on whose label arrived by then). The count against a brute-force reference.
"$VIGIL" eval --model "$dir/a" --decisions "$dir/decisions.jsonl" --labels "$dir/labels.jsonl" \
  --test 2018-04-15..2018-04-22 --known-frauds-from 2018-04-08 --json > "$dir/eval_known.json"
want=$(awk -F'"' '
  FNR == NR { if ($8 == "fraud") { split($11, a, /[:,}]/); lab[$4] = a[2] } next }
  { id = $4; card = $10; split($7, a, /[:,]/); ts = a[2] + 0; n++; T[n] = ts; C[n] = card
    if (ts >= 1523145600000 && ts < 1524355200000 && (id in lab))
      if (!(card in known) || lab[id] < known[card]) known[card] = lab[id] }
  END { for (i = 1; i <= n; i++) if (T[i] >= 1523750400000 && T[i] < 1524355200000) {
          day = int(T[i] / 86400000) * 86400000
          if ((C[i] in known) && known[C[i]] <= day) d++ }
        print d + 0 }' "$dir/labels.jsonl" "$dir/decisions.jsonl")
[[ $want -gt 0 ]]
grep -q "\"known_dropped\":$want," "$dir/eval_known.json" ||
  { echo "known_dropped: want $want, got $(cat "$dir/eval_known.json")"; exit 1; }
rows=$(sed 's/.*"rows":\([0-9]*\),.*/\1/' "$dir/eval_known.json")
[[ $((rows + want)) -eq 2800 ]]

# A weaker model: two stumps.
"$VIGIL" train --decisions "$dir/decisions.jsonl" --labels "$dir/labels.jsonl" \
  --train 2018-04-01..2018-04-08 --maturity 3d --trees 2 --depth 1 --format ubj \
  --out "$dir/b" > /dev/null

reg="$dir/registry"
"$VIGIL" model add --registry "$reg" "$dir/a" | grep -q "as version 0001"
"$VIGIL" model add --registry "$reg" "$dir/b" | grep -q "as version 0002"
# No champion yet: the first promotion needs no comparison.
"$VIGIL" model promote --registry "$reg" 1 | grep -q "version 0001 is champion"
# The weaker candidate is refused on the same window...
if "$VIGIL" model promote --registry "$reg" 2 --decisions "$dir/decisions.jsonl" \
    --labels "$dir/labels.jsonl" --test 2018-04-15..2018-04-22 > "$dir/promote.out"; then
  echo "weaker model was promoted"; exit 1
fi
grep -q "not promoted" "$dir/promote.out"
"$VIGIL" model list --registry "$reg" | grep -q '^\* 0001'
# ... unless forced.
"$VIGIL" model promote --registry "$reg" 2 --force | grep -q "version 0002 is champion"
"$VIGIL" model list --registry "$reg" | grep -q '^\* 0002'
"$VIGIL" model show "$reg/versions/0002" | grep -q '"model_file": "model.ubj"'
# The better model, now the challenger of the forced stumps, wins on the same window without
# --force: both are evaluated, the candidate's AP is higher.
"$VIGIL" model promote --registry "$reg" 1 --decisions "$dir/decisions.jsonl" \
  --labels "$dir/labels.jsonl" --test 2018-04-15..2018-04-22 > "$dir/promote.out"
grep -q "^on 2018-04-15..2018-04-22: candidate 0001 AP " "$dir/promote.out"
grep -q "champion 0002 AP " "$dir/promote.out"
grep -q "version 0001 is champion" "$dir/promote.out"
"$VIGIL" model list --registry "$reg" | grep -q '^\* 0001'
# The scheduled loop on 04-29: test 04-15..04-22 (matured: the delay has passed), train
# 04-01..04-08 (labels as of 04-15). The first run, on a fresh registry, has no champion to
# beat...
VIGIL="$VIGIL" "$VG_SOURCE_DIR/scripts/retrain.sh" --decisions "$dir/decisions.jsonl" \
  --labels "$dir/labels.jsonl" --registry "$dir/reg2" --now 2018-04-29 > "$dir/retrain.out"
grep -q "train 2018-04-01..2018-04-08, test 2018-04-15..2018-04-22" "$dir/retrain.out"
grep -q "version 0001 is champion" "$dir/retrain.out"
# ... and the same data again trains the same model: not strictly better, not promoted.
rc=0
VIGIL="$VIGIL" "$VG_SOURCE_DIR/scripts/retrain.sh" --decisions "$dir/decisions.jsonl" \
  --labels "$dir/labels.jsonl" --registry "$dir/reg2" --now 2018-04-29 > "$dir/retrain.out" || rc=$?
[[ $rc -eq 3 ]]
"$VIGIL" model list --registry "$dir/reg2" | grep -q '^\* 0001'
echo ok

#!/usr/bin/env bash
# bootstrap_demo.sh - the bootstrap story end to end, on simulated history (docs/bootstrap.md
# tells it step by step):
#
#   1. no model yet: the engine decides with rules alone (rules/default.rules) for six weeks;
#   2. labels arrive (chargebacks, a week after each fraud);
#   3. the first model is trained from the decisions as served and the labels known now,
#      evaluated on the newest fully labelled week, and promoted into a model registry;
#   4. the engine carries on, same state, now scoring every transaction with the champion;
#   5. what changed: rules alone vs rules + model on the frauds of the following two weeks.
#
#   scripts/bootstrap_demo.sh [--work DIR] [--keep]
#
# Needs VIGIL (default: build/vigil). About a minute on a 2-core machine; ~700 MB in the work
# directory (removed at the end unless --keep or --work).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VIGIL=${VIGIL:-$here/build/vigil}
work= keep=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --work) work=$2; keep=1; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bootstrap_demo.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -x $VIGIL ]] || { echo "bootstrap_demo.sh: no vigil binary at $VIGIL (set VIGIL)" >&2; exit 2; }
if [[ -z $work ]]; then
  work=$(mktemp -d)
  [[ $keep -eq 1 ]] || trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
cd "$work"
rm -rf state state.rules registry
step() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# Splits FILE (JSON lines with a "ts") into the lines before DATE and the rest.
split_at() {
  awk -v d="$2" -v a="$3" -v b="$4" -F'"ts":"' \
    '{ if (substr($2, 1, 10) < d) print > a; else print > b }' "$1"
}
# Decisions by action, and how many of the frauds (ground truth, every label) each action got.
outcome() {
  awk -v what="$2" '
    FNR == NR { fraud[$0] = 1; next }
    {
      match($0, /"txn_id":"[^"]*"/); id = substr($0, RSTART + 10, RLENGTH - 11)
      match($0, /"decision":"[a-z]*"/); d = substr($0, RSTART + 12, RLENGTH - 13)
      n[d]++; if (id in fraud) { f[d]++; nf++ }
    }
    END {
      printf "  %-30s %8s %8s\n", what, "decisions", "frauds"
      split("block review allow", acts, " ")
      for (i = 1; i <= 3; i++)
        printf "  %-30s %8d %8d\n", acts[i], n[acts[i]], f[acts[i]]
      caught = f["block"] + f["review"]; flagged = n["block"] + n["review"]
      printf "  frauds blocked or reviewed: %d of %d (%.1f%%); precision of the flags %.1f%%\n",
        caught, nf, nf ? 100 * caught / nf : 0, flagged ? 100 * caught / flagged : 0
    }' <(grep -o '"txn_id":"[^"]*","label":"fraud"' sim/labels.jsonl | cut -d'"' -f4) "$1"
}

step "Simulated history: 8 weeks of the handbook's process, from 2018-04-01"
run "$VIGIL" simulate --days 56 --out sim
# "Now" is 2018-05-13, six weeks in. The engine has seen the transactions before it, and the
# labels that had arrived by then (each fraud's chargeback comes 7 days after it).
now=2018-05-13
split_at sim/transactions.jsonl "$now" txn.before.jsonl txn.after.jsonl
split_at sim/labels.jsonl "$now" labels.before.jsonl labels.after.jsonl
echo "before $now: $(wc -l < txn.before.jsonl) transactions, $(wc -l < labels.before.jsonl) labels known"

step "1. No model yet: rules alone, $(wc -l < txn.before.jsonl) transactions up to $now"
run "$VIGIL" replay --transactions txn.before.jsonl --labels labels.before.jsonl \
  --catalog "$here/features/default.conf" --rules "$here/rules/default.rules" \
  --state state --out decisions.before.jsonl --quiet
outcome decisions.before.jsonl "rules alone, before $now"
# Keep a copy of the engine's state as of now, for the comparison in step 5.
cp -r state state.rules

step "2-3. Labels have arrived: train the first model, evaluate it, promote it"
# Prequential windows ending at now: test on 04-29..05-06 (every label in by now), train on
# the two weeks 04-08..04-22 with the labels known on 04-29. The registry is empty, so the
# first candidate that trains and evaluates becomes champion.
run env VIGIL="$VIGIL" "$here/scripts/retrain.sh" --decisions decisions.before.jsonl \
  --labels labels.before.jsonl --registry registry --now "$now" --train-days 14 \
  --drop-known-frauds
run "$VIGIL" model list --registry registry
champion=registry/versions/$(cat registry/champion)

step "4. The engine scores: the next two weeks, same state, with the champion"
run "$VIGIL" replay --transactions txn.after.jsonl --labels labels.after.jsonl \
  --catalog "$here/features/default.conf" --rules "$here/rules/default.rules" \
  --model "$champion" --state state --out decisions.after.jsonl --quiet
echo "a decision now carries its score and the model that gave it:"
head -1 decisions.after.jsonl | grep -o '"decision":"[a-z]*","score":[^,]*' | sed 's/^/  /'
head -1 decisions.after.jsonl | grep -o '"model":"[^"]*"' | sed 's/^/  /'

step "5. What the model changed, on the two weeks after $now"
outcome decisions.after.jsonl "rules + model, after $now"
# The same two weeks with rules alone, from the same state as of $now.
run "$VIGIL" replay --transactions txn.after.jsonl --labels labels.after.jsonl \
  --catalog "$here/features/default.conf" --rules "$here/rules/default.rules" \
  --state state.rules --out decisions.after.rules.jsonl --quiet
outcome decisions.after.rules.jsonl "rules alone, after $now"
echo "and the champion's figures on the first of those weeks (all its labels are in):"
run "$VIGIL" eval --model "$champion" --decisions decisions.after.jsonl --labels sim/labels.jsonl \
  --test "$now..2018-05-20"

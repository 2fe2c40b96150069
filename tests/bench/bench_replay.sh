#!/usr/bin/env bash
# bench_replay.sh - `vigil replay` over the default simulated dataset (183 days, ~1.77M
# transactions, their labels), side by side with a baseline in the same run:
#
#   (a) baseline: the same replay with per-transaction features only (amount, log amount,
#       hour, weekend, night), no rules, no model: reading, merging, decoding, encoding and
#       writing decisions, with no entity state;
#   (b) the replay of issue #8: the default catalogue (47 features), the default rules and a
#       100-tree, depth-6 model trained on the first 60,000 transactions.
#
# Each is timed by the wall clock around the whole command (start-up and close included),
# decisions written to /dev/null (so that disk write-back of the 3.5 GB does not count), RUNS
# times each, alternating; then (b) once more into a file, as a user would run it.
#
# usage: tests/bench/bench_replay.sh        env: VIGIL (default build/vigil), RUNS (default 2)
set -euo pipefail
cd "$(dirname "$0")/../.."
VIGIL=${VIGIL:-build/vigil}
RUNS=${RUNS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== preparing: the default simulated dataset and a 100-tree model" >&2
"$VIGIL" simulate --out "$work/sim" 2>/dev/null
head -n 60000 "$work/sim/transactions.jsonl" >"$work/train.jsonl"
"$VIGIL" replay --transactions "$work/train.jsonl" --labels "$work/sim/labels.jsonl" \
  --out "$work/train-decisions.jsonl" --quiet 2>/dev/null
"$VIGIL" train --decisions "$work/train-decisions.jsonl" --labels "$work/sim/labels.jsonl" \
  --train 2018-04-01..2018-04-08 --trees 100 --depth 6 --out "$work/model" >/dev/null 2>&1
printf 'amount = amount\nlog_amount = log_amount\nhour = hour\nweekend = weekend\nnight = night\n' \
  >"$work/base.conf"
n=$(wc -l <"$work/sim/transactions.jsonl")
echo "$n transactions, $(wc -l <"$work/sim/labels.jsonl") labels"

# run NAME OUT ARGS...: one timed replay; prints seconds and transactions/s
run() {
  local name=$1 out=$2
  shift 2
  local t0 t1
  t0=$(date +%s%N)
  "$VIGIL" replay --transactions "$work/sim/transactions.jsonl" \
    --labels "$work/sim/labels.jsonl" --out "$out" --dlq "$work/dlq" --quiet "$@" 2>/dev/null
  t1=$(date +%s%N)
  awk -v name="$name" -v ns=$((t1 - t0)) -v n="$n" \
    'BEGIN { printf "%-44s %6.2f s  %7.0f tx/s\n", name, ns / 1e9, n / (ns / 1e9) }'
}

for _ in $(seq "$RUNS"); do
  run "(a) baseline: per-transaction features" /dev/null --catalog "$work/base.conf"
  run "(b) default catalogue + rules + model" /dev/null --catalog features/default.conf \
    --rules rules/default.rules --model "$work/model"
done
run "(b) the same, decisions to a file" "$work/decisions.jsonl" --catalog features/default.conf \
  --rules rules/default.rules --model "$work/model"
echo "decisions file: $(du -h "$work/decisions.jsonl" | cut -f1)"

#!/usr/bin/env bash
# retrain.sh - the retraining loop for a scheduler: train on the last TRAIN_DAYS of matured
# history, evaluate against the champion on the most recent TEST_DAYS, promote only if better.
#
#   scripts/retrain.sh --decisions FILE --labels FILE --registry DIR [--now TIME]
#                      [--train-days 7] [--delay-days 7] [--test-days 7] [--k 100]
#
# Windows (the Fraud Detection Handbook's protocol): test = the TEST_DAYS before NOW; the
# DELAY_DAYS before the test window are skipped (their labels are not all known yet);
# training = the TRAIN_DAYS before that, with labels known as of the start of the test window.
# Exit status: 0 promoted (or first champion), 3 trained but not better, 1 error.
set -euo pipefail
VIGIL=${VIGIL:-vigil}
decisions= labels= registry= now=
train_days=7 delay_days=7 test_days=7 k=100
while [[ $# -gt 0 ]]; do
  case $1 in
    --decisions) decisions=$2; shift 2 ;;
    --labels) labels=$2; shift 2 ;;
    --registry) registry=$2; shift 2 ;;
    --now) now=$2; shift 2 ;;
    --train-days) train_days=$2; shift 2 ;;
    --delay-days) delay_days=$2; shift 2 ;;
    --test-days) test_days=$2; shift 2 ;;
    --k) k=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "retrain.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n $decisions && -n $labels && -n $registry ]] || {
  echo "retrain.sh: --decisions, --labels and --registry are needed" >&2; exit 2; }

day() { date -u -d "$1" +%Y-%m-%d; }
now=$(day "${now:-today}")
test_from=$(day "$now - $test_days days")
train_to=$(day "$test_from - $delay_days days")
train_from=$(day "$train_to - $train_days days")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "train $train_from..$train_to, test $test_from..$now"
"$VIGIL" train --decisions "$decisions" --labels "$labels" --train "$train_from..$train_to" \
  --as-of "${test_from}T00:00:00Z" --maturity "${delay_days}d" --out "$work/bundle"
"$VIGIL" eval --model "$work/bundle" --decisions "$decisions" --labels "$labels" \
  --test "$test_from..$now" --k "$k"
version=$("$VIGIL" model add --registry "$registry" "$work/bundle" | sed -n 's/.*as version 0*//p')
if "$VIGIL" model promote --registry "$registry" "$version" --decisions "$decisions" \
    --labels "$labels" --test "$test_from..$now" --k "$k"; then
  exit 0
fi
exit 3

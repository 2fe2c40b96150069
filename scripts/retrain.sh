#!/usr/bin/env bash
# retrain.sh - the retraining loop for a scheduler: train on the last TRAIN_DAYS of matured
# history, evaluate against the champion on the most recent TEST_DAYS, promote only if better.
#
#   scripts/retrain.sh --decisions FILE --labels FILE --registry DIR [--now DATE]
#                      [--train-days 7] [--delay-days 7] [--test-days 7] [--k 100]
#                      [--drop-known-frauds] [--train-args "ARGS"]
#
# LABELS holds the labels known at NOW. Windows (the Fraud Detection Handbook's prequential
# protocol, shifted so that every window has matured): test = the TEST_DAYS ending DELAY_DAYS
# before NOW (all its labels have arrived); training = the TRAIN_DAYS ending DELAY_DAYS before
# the test window, with labels as known at the test window's start; candidate and champion
# are compared on the test window. --drop-known-frauds evaluates on the handbook's test set
# (cards already known compromised left out, counting frauds from the training window on).
# --train-args passes more options to vigil train (e.g. "--trees 200 --eta 0.1").
# Exit status: 0 promoted (or first champion), 3 trained but not better, 1 error.
# VIGIL: the binary (default: `vigil` on PATH, else this checkout's build/vigil).
set -euo pipefail
if [[ -z ${VIGIL:-} ]]; then
  VIGIL=$(command -v vigil || echo "$(cd "$(dirname "$0")/.." && pwd)/build/vigil")
fi
decisions= labels= registry= now=
train_days=7 delay_days=7 test_days=7 k=100 known=() train_args=
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
    --drop-known-frauds) known=(--known-frauds-from KNOWN); shift ;;
    --train-args) train_args=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "retrain.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n $decisions && -n $labels && -n $registry ]] || {
  echo "retrain.sh: --decisions, --labels and --registry are needed" >&2; exit 2; }

day() { date -u -d "$1" +%Y-%m-%d; }
now=$(day "${now:-today}")
test_to=$(day "$now - $delay_days days")
test_from=$(day "$test_to - $test_days days")
train_to=$(day "$test_from - $delay_days days")
train_from=$(day "$train_to - $train_days days")
[[ ${#known[@]} -eq 0 ]] || known=(--known-frauds-from "$train_from")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "train $train_from..$train_to, test $test_from..$test_to"
# shellcheck disable=SC2086 # train_args is a list of options
"$VIGIL" train --decisions "$decisions" --labels "$labels" --train "$train_from..$train_to" \
  --as-of "${test_from}T00:00:00Z" --maturity "${delay_days}d" --quiet $train_args \
  --out "$work/bundle"
"$VIGIL" eval --model "$work/bundle" --decisions "$decisions" --labels "$labels" \
  --test "$test_from..$test_to" --k "$k" "${known[@]}"
version=$("$VIGIL" model add --registry "$registry" "$work/bundle" | sed -n 's/.*as version 0*//p')
if "$VIGIL" model promote --registry "$registry" "$version" --decisions "$decisions" \
    --labels "$labels" --test "$test_from..$test_to" --k "$k" "${known[@]}"; then
  exit 0
fi
exit 3

#!/usr/bin/env bash
# test_simulate_files.sh - `vigil simulate --out DIR` from the command line:
#  - two runs with one seed write byte-identical files, another seed different ones;
#  - the summary on stderr counts what the files hold;
#  - --label-legit labels every transaction, --label-delay shifts label ts;
#  - --help names every flag with its default, and bad flags are usage errors (status 2).
set -euo pipefail
: "${VIGIL:?path to the vigil binary}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

sim=(--customers 150 --terminals 3000 --days 15 --scenarios all)
"$VIGIL" simulate "${sim[@]}" --seed 3 --out "$work/a" 2>"$work/a.err"
"$VIGIL" simulate "${sim[@]}" --seed 3 --out "$work/b" 2>/dev/null
"$VIGIL" simulate "${sim[@]}" --seed 4 --out "$work/c" 2>/dev/null
for f in transactions.jsonl labels.jsonl; do
  cmp -s "$work/a/$f" "$work/b/$f" || fail "seed 3 twice: $f differs"
  ! cmp -s "$work/a/$f" "$work/c/$f" || fail "seeds 3 and 4: $f identical"
done

txns=$(wc -l <"$work/a/transactions.jsonl")
labels=$(wc -l <"$work/a/labels.jsonl")
grep -q "^simulate: $txns transactions, $labels frauds (" "$work/a.err" ||
  fail "summary does not match the files ($txns txns, $labels labels): $(cat "$work/a.err")"
# the fraud flag stays out of the transactions
! grep -q -e fraud -e scenario "$work/a/transactions.jsonl" || fail "transactions carry the label"
# every scenario is present with --scenarios all, named in the labels
for s in compromised_terminal compromised_customer card_testing account_takeover; do
  grep -q "\"scenario\":\"$s\"" "$work/a/labels.jsonl" || fail "no $s label"
done
# time order: ts fields sorted
cut -d'"' -f8 "$work/a/transactions.jsonl" | sort -c || fail "transactions out of time order"
cut -d'"' -f12 "$work/a/labels.jsonl" | sort -c || fail "labels out of time order"

# --label-legit: a label per transaction; --label-delay 1h: label ts = txn ts + 1 h
"$VIGIL" simulate "${sim[@]}" --label-legit --label-delay 1h --out "$work/d" 2>/dev/null
[[ $(wc -l <"$work/d/labels.jsonl") == $(wc -l <"$work/d/transactions.jsonl") ]] ||
  fail "--label-legit: not one label per transaction"
first_txn=$(head -1 "$work/d/transactions.jsonl")
first_label=$(head -1 "$work/d/labels.jsonl")
txn_ts=$(cut -d'"' -f8 <<<"$first_txn")
label_ts=$(cut -d'"' -f12 <<<"$first_label")
[[ $(date -u -d "$txn_ts 1 hour" +%FT%T) == "${label_ts%.*}" ]] ||
  fail "label ts $label_ts is not txn ts $txn_ts + 1h"

# --help: every flag, with its default where it has one
"$VIGIL" simulate --help >"$work/help"
for flag in customers terminals days start seed radius scenarios card-testing-rate \
  account-takeover-rate label-delay label-legit out brokers rate speedup set log-level help; do
  grep -q -- "--$flag" "$work/help" || fail "--help does not list --$flag"
done
for d in "default 5000" "default 10000" "default 183" "default 2018-04-01" "default 7d" \
  "default handbook" "default 5)"; do
  grep -q -- "$d" "$work/help" || fail "--help does not say '$d'"
done

expect_usage() {
  local msg=$1
  shift
  local status=0
  "$VIGIL" simulate "$@" 2>"$work/err" >/dev/null || status=$?
  [[ $status == 2 ]] || fail "simulate $*: status $status, expected 2"
  grep -qF -- "$msg" "$work/err" || fail "simulate $*: expected '$msg', got: $(cat "$work/err")"
}
expect_usage "give --out DIR or --brokers ADDR"
expect_usage "--customers must be 1..10000000, got '0'" --customers 0 --out "$work/x"
expect_usage "--start must be a date YYYY-MM-DD, got '2018-13-01'" --start 2018-13-01 --out "$work/x"
expect_usage "unknown scenario 'phishing'" --scenarios handbook,phishing --out "$work/x"
expect_usage "--rate, --speedup and --set need --brokers" --rate 10 --out "$work/x"
expect_usage "--rate and --speedup exclude each other" --rate 10 --speedup 2 --brokers x:1
echo ok

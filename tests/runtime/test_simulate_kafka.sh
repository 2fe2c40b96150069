#!/usr/bin/env bash
# test_simulate_kafka.sh - `vigil simulate --brokers` into the local broker at --rate:
#  - the transactions topic holds exactly the generated transactions, the labels topic
#    exactly the labels (frauds), and both match what --out writes for the same seed;
#  - the rate measured from the messages' own timestamps is within 20% of --rate;
#  - a progress line and a summary appear on stderr.
set -euo pipefail
: "${VIGIL:?path to the vigil binary}"
work=$(mktemp -d)
broker_pid=
cleanup() {
  if [[ -n $broker_pid ]]; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$VIGIL" broker --partitions 4 --bootstrap-file "$work/bootstrap" --log-level warn \
  >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
for _ in $(seq 100); do
  [[ -s $work/bootstrap ]] && break
  sleep 0.1
done
[[ -s $work/bootstrap ]] || fail "broker did not write its bootstrap file"
brokers=$(cat "$work/bootstrap")

# ~1000 transactions at 400/s: about 2.5 s of producing
sim=(--customers 60 --terminals 2000 --days 9 --seed 5)
"$VIGIL" simulate "${sim[@]}" --out "$work/files" 2>"$work/files.err"
want_txns=$(wc -l <"$work/files/transactions.jsonl")
want_labels=$(wc -l <"$work/files/labels.jsonl")
((want_txns > 500)) || fail "expected more than 500 transactions, got $want_txns"
((want_labels > 0)) || fail "expected some labels"

rate=400
"$VIGIL" simulate "${sim[@]}" --brokers "$brokers" --rate $rate 2>"$work/produce.err" ||
  { cat "$work/produce.err" >&2; fail "simulate --brokers failed"; }
grep -q "transactions, .* labels, .* txn/s, simulated time" "$work/produce.err" ||
  fail "no progress line on stderr: $(cat "$work/produce.err")"
grep -q "^simulate: $want_txns transactions, " "$work/produce.err" ||
  fail "no summary with $want_txns transactions: $(cat "$work/produce.err")"

# every message, with its timestamp (producer create time, ms)
kcat -C -b "$brokers" -t transactions -e -q -f '%T %s\n' >"$work/txns.out"
kcat -C -b "$brokers" -t labels -e -q -f '%s\n' >"$work/labels.out"
got_txns=$(wc -l <"$work/txns.out")
got_labels=$(wc -l <"$work/labels.out")
[[ $got_txns == "$want_txns" ]] || fail "transactions topic holds $got_txns, generated $want_txns"
[[ $got_labels == "$want_labels" ]] || fail "labels topic holds $got_labels, generated $want_labels"

# same messages as the files (topic order is per partition, so compare sorted)
cut -d' ' -f2- "$work/txns.out" | sort >"$work/a"
sort "$work/files/transactions.jsonl" >"$work/b"
cmp -s "$work/a" "$work/b" || fail "the topic's transactions differ from --out's"
sort "$work/labels.out" >"$work/a"
sort "$work/files/labels.jsonl" >"$work/b"
cmp -s "$work/a" "$work/b" || fail "the topic's labels differ from --out's"

# rate from the message timestamps: (n - 1) / (last - first)
read -r first last < <(awk '{print $1}' "$work/txns.out" | sort -n | awk 'NR==1{f=$1} {l=$1} END{print f, l}')
measured=$(awk -v n="$got_txns" -v f="$first" -v l="$last" 'BEGIN{printf "%.1f", (n-1)*1000/(l-f)}')
echo "requested $rate txn/s, measured $measured txn/s over $got_txns transactions"
awk -v m="$measured" -v r=$rate 'BEGIN{exit !(m >= 0.8*r && m <= 1.2*r)}' ||
  fail "measured rate $measured is not within 20% of $rate"
echo "ok"

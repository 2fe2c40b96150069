# review_lib.sh - shared by the review runtime tests: a broker, users, review records and a
# `vigil review` service, each cleaned up on exit. Source it after setting `work`.
: "${VIGIL:?path to the vigil binary}"
broker_pid=
review_pid=
cleanup() {
  for pid in $review_pid $broker_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  [[ -f $work/review.err ]] && { echo "--- review log (tail)" >&2; tail -20 "$work/review.err" >&2; }
  if [[ -n $broker_pid ]] && ! kill -0 "$broker_pid" 2>/dev/null; then
    wait "$broker_pid" 2>/dev/null && rc=0 || rc=$?
    echo "--- the broker is gone (status $rc): $(tail -5 "$work/broker.err")" >&2
  fi
  exit 1
}

start_broker() {
  "$VIGIL" broker --partitions 4 --bootstrap-file "$work/bootstrap" --log-level warn \
    >"$work/broker.out" 2>"$work/broker.err" &
  broker_pid=$!
  for _ in $(seq 100); do
    [[ -s $work/bootstrap ]] && break
    sleep 0.1
  done
  [[ -s $work/bootstrap ]] || fail "broker did not write its bootstrap file"
  brokers=$(cat "$work/bootstrap")
}

# start_review: runs the service on a free port; sets $base
start_review() {
  rm -f "$work/port"
  # a member killed with -9 holds its partitions until its session times out: keep it short
  printf '[kafka]\nsession.timeout.ms = 6000\nheartbeat.interval.ms = 500\n' >"$work/review.ini"
  "$VIGIL" review --config "$work/review.ini" --brokers "$brokers" --http 127.0.0.1:0 --port-file "$work/port" \
    --store "$work/store" --users "$work/users" --claim-ttl 15m "$@" 2>>"$work/review.err" &
  review_pid=$!
  for _ in $(seq 100); do
    [[ -s $work/port ]] && break
    sleep 0.1
  done
  [[ -s $work/port ]] || fail "review did not start"
  base="http://127.0.0.1:$(cat "$work/port")"
}

stop_review() { # SIGNAL: a TERM must end in a clean exit (and, under ASan, no leak)
  local rc=0
  kill "-$1" "$review_pid"
  wait "$review_pid" 2>/dev/null || rc=$?
  review_pid=
  [[ $1 != TERM || $rc == 0 ]] || fail "vigil review exited with status $rc after SIGTERM"
}

# record I [extra jq assignments]: one decision record, deterministic in I. Amounts are
# distinct (13*I mod 397), so the priority order (score, then amount) has no ties.
record() {
  local i=$1 id
  id=$(printf 't%02d' "$i")
  jq -cn --arg id "$id" --argjson i "$i" '
    ($i * 13 % 397 + 0.5) as $amt
    | ("2018-04-0" + (($i % 3) + 1 | tostring) + "T10:00:" + ($i % 60 | tostring | if length < 2 then "0" + . else . end) + ".000Z") as $ts
    | {txn_id: $id, ts: $ts, card_id: ("card-" + ($i % 5 | tostring)), amount: $amt,
       decision: "review",
       score: (if $i % 6 == 0 then null else ($i * 7 % 10) / 10 end),
       rules: ([if $i % 2 == 0 then {id: "big_jump", action: "review"} else empty end,
                if $i % 3 == 0 then {id: "card_testing", action: "block"} else empty end,
                if $i % 5 == 0 then {id: "x_shadow", action: "block", shadow: true} else empty end]),
       reasons: [{feature: "card_amount_zscore_30d", value: ($i / 4), contribution: ($i / 10)},
                 {feature: "hour", value: 10, contribution: -0.2}],
       features: {amount: $amt, card_amount_zscore_30d: ($i / 4), card_count_1d: ($i % 4)},
       catalog: "c0ffee", model: "m1", rules_version: "r1",
       txn: {txn_id: $id, ts: $ts, card_id: ("card-" + ($i % 5 | tostring)),
             customer_id: ("cust-" + ($i % 5 | tostring)), merchant_id: ("merchant-" + ($i | tostring)),
             terminal_id: "term-9", amount: $amt, channel: "ecom", country: "FR"}}' \
  | jq -c "${2:-.}"
}

produce() { # FILE: "key|value" lines to the review topic
  kcat -P -b "$brokers" -t review -K '|' -l "$1" || fail "kcat produce failed"
}

wait_total() { # N TOKEN: until the service holds N cases
  local got=
  for _ in $(seq 200); do
    got=$(curl -s -H "Authorization: Bearer $2" "$base/api/cases?status=all&limit=1" | jq -r .total 2>/dev/null || true)
    [[ $got == "$1" ]] && return 0
    sleep 0.1
  done
  fail "expected $1 cases, the service holds ${got:-?}"
}

labels_on_topic() { # all label messages, one per line
  kcat -C -b "$brokers" -t labels -e -q -f '%s\n' 2>/dev/null
}

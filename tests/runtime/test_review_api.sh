#!/usr/bin/env bash
# test_review_api.sh - `vigil review` end to end: the local broker, review records produced
# with kcat, and the JSON API exercised with curl (and the CLI):
#  - listing: total, counts, priority order and paging against a jq reference, rule and
#    date filters;
#  - claiming and labelling, with every error: 400 (bad query, bad body, bad label),
#    401 (no or wrong credentials), 403 (CSRF header missing, foreign Origin), 404 (no such
#    case), 409 (claimed by someone else, already closed);
#  - cookie login: HttpOnly SameSite=Strict session, CSRF token required on POST;
#  - a hostile merchant_id and note come back escaped in the raw JSON and intact once parsed;
#  - re-delivery of a stored case changes nothing;
#  - restart without loss: kill -9 while cases arrive, more cases while down, SIGTERM right
#    after a label: every case once, verdicts kept, each label exactly once on `labels`.
set -euo pipefail
work=$(mktemp -d)
source "$VG_SOURCE_DIR/tests/runtime/review_lib.sh"
SECONDS=0

start_broker
printf 'ana-password\n' | "$VIGIL" review adduser ana --users "$work/users" 2>/dev/null
ana=$("$VIGIL" review adduser ana --users "$work/users" --token)
bob=$("$VIGIL" review adduser bob --users "$work/users" --token)
[[ $(stat -c %a "$work/users") == 600 ]] || fail "users file is not mode 600"

# 30 records; t07 carries a hostile merchant; t11 was sampled, not flagged
for i in $(seq 30); do
  extra=.
  [[ $i == 7 ]] && extra='.txn.merchant_id = "<script>alert(1)</script>"'
  [[ $i == 11 ]] && extra='.decision = "allow" | .rules = [] | .review_reason = "random_sample"'
  rec=$(record "$i" "$extra")
  echo "$(jq -r .card_id <<<"$rec")|$rec"
done >"$work/batch1"
produce "$work/batch1"
cut -d'|' -f2- "$work/batch1" >"$work/records1.jsonl"

start_review
wait_total 30 "$ana"

# api METHOD PATH [BODY] [curl args...]: body to $work/body, prints the status code
api() {
  local method=$1 path=$2 body=${3:-}
  shift 3 || shift $#
  local args=(-s -o "$work/body" -w '%{http_code}' -X "$method" "$@")
  [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  curl "${args[@]}" "$base$path"
}
expect() { # STATUS ERROR-TEXT METHOD PATH [BODY] [curl args]
  local want=$1 msg=$2 got
  shift 2
  got=$(api "$@")
  [[ $got == "$want" ]] || fail "$1 $2: status $got, expected $want: $(cat "$work/body")"
  if [[ -n $msg ]]; then
    [[ $(jq -r .error "$work/body") == "$msg" ]] ||
      fail "$1 $2: error '$(jq -r .error "$work/body")', expected '$msg'"
  fi
}
A=(-H "Authorization: Bearer $ana")
B=(-H "Authorization: Bearer $bob")

# ---- listing ----
expect 200 "" GET "/api/cases?status=all&limit=10" "" "${A[@]}"
jq -e '.total == 30 and .counts == {"open":30,"claimed":0,"closed":0}' "$work/body" >/dev/null ||
  fail "list: $(jq -c '{total,counts}' "$work/body")"
jq -r '.cases[].txn_id' "$work/body" >"$work/page1"
# the reference: score desc (null last), then amount desc
jq -rs 'sort_by([-(.score // -1), -.amount]) | .[].txn_id' "$work/records1.jsonl" >"$work/ref"
head -10 "$work/ref" | cmp -s - "$work/page1" || fail "page 1 is not in priority order"
expect 200 "" GET "/api/cases?status=all&limit=10&offset=10" "" "${A[@]}"
jq -r '.cases[].txn_id' "$work/body" | cmp -s - <(sed -n 11,20p "$work/ref") || fail "page 2 differs"
expect 200 "" GET "/api/cases?limit=10&offset=25" "" "${A[@]}"
[[ $(jq '.cases | length' "$work/body") == 5 && $(jq .total "$work/body") == 30 ]] ||
  fail "last page: $(jq -c '{total, n: (.cases|length)}' "$work/body")"
jq -e '.rules == {"big_jump":15,"card_testing":10,"x_shadow":6,"sample:random_sample":1}' "$work/body" >/dev/null ||
  fail "rule counts: $(jq -c .rules "$work/body")"
want=$(jq -s '[.[] | select(.rules | map(.id) | index("card_testing"))] | length' "$work/records1.jsonl")
expect 200 "" GET "/api/cases?rule=card_testing" "" "${A[@]}"
[[ $(jq .total "$work/body") == "$want" ]] || fail "rule filter: $(jq .total "$work/body") != $want"
expect 200 "" GET "/api/cases?rule=sample:random_sample" "" "${A[@]}"
[[ $(jq -r '[.total, .cases[0].txn_id, .cases[0].review_reason] | join(" ")' "$work/body") == "1 t11 random_sample" ]] ||
  fail "sampled filter: $(jq -c '{total, cases}' "$work/body")"
want=$(jq -s '[.[] | select(.ts | startswith("2018-04-02"))] | length' "$work/records1.jsonl")
expect 200 "" GET "/api/cases?from=2018-04-02&to=2018-04-02" "" "${A[@]}"
[[ $(jq .total "$work/body") == "$want" ]] || fail "date filter: $(jq .total "$work/body") != $want"
jq -e '[.cases[].ts | startswith("2018-04-02")] | all' "$work/body" >/dev/null || fail "date filter rows"
expect 200 "" GET "/api/cases?rule=big_jump&from=2018-04-02T00:00:00Z&to=2018-04-03T00:00:00Z" "" "${A[@]}"
want=$(jq -s '[.[] | select((.ts | startswith("2018-04-02")) and (.rules | map(.id) | index("big_jump")))] | length' "$work/records1.jsonl")
[[ $(jq .total "$work/body") == "$want" ]] || fail "rule+date filter"
echo "listing ok ($SECONDS s)"

# ---- errors on listing and auth ----
expect 400 "status must be open, claimed, closed or all" GET "/api/cases?status=bogus" "" "${A[@]}"
expect 400 "limit must be an integer 1..1000" GET "/api/cases?limit=0" "" "${A[@]}"
expect 400 "offset must be a non-negative integer" GET "/api/cases?offset=-1" "" "${A[@]}"
expect 400 "from must be a date (2018-04-01) or an RFC 3339 time" GET "/api/cases?from=yesterday" "" "${A[@]}"
expect 401 "not logged in (log in, or send Authorization: Bearer)" GET /api/cases ""
wrong=${ana:0:63}$([[ ${ana: -1} == 0 ]] && echo 1 || echo 0) # ana's token, last digit changed
expect 401 "not logged in (log in, or send Authorization: Bearer)" GET /api/cases "" \
  -H "Authorization: Bearer $wrong"
expect 404 "no case nope" GET /api/cases/nope "" "${A[@]}"
expect 404 "no case nope" POST /api/cases/nope/claim "{}" "${A[@]}"
expect 404 "not found (POST .../claim, .../release or .../label)" POST /api/cases/t01/approve "{}" "${A[@]}"

# ---- claim and label ----
top=$(head -1 "$work/ref")
expect 200 "" POST "/api/cases/$top/claim" "" "${A[@]}"
[[ $(jq -r .case.status "$work/body") == claimed && $(jq -r .case.claimed_by "$work/body") == ana ]] ||
  fail "claim: $(jq -c '.case | {status, claimed_by}' "$work/body")"
expect 409 "" POST "/api/cases/$top/claim" "" "${B[@]}"
jq -r .error "$work/body" | grep -q "^case $top is claimed by ana until 20" || fail "409 text: $(cat "$work/body")"
expect 409 "" POST "/api/cases/$top/label" '{"label":"legit"}' "${B[@]}"
expect 400 "body must be a JSON object {\"label\":\"fraud\"|\"legit\",\"note\":\"...\"}" \
  POST "/api/cases/$top/label" 'not json' "${A[@]}"
expect 400 'label must be "fraud" or "legit"' POST "/api/cases/$top/label" '{"label":"maybe"}' "${A[@]}"
expect 400 "note must be a string" POST "/api/cases/$top/label" '{"label":"fraud","note":5}' "${A[@]}"
expect 200 "" GET "/api/cases?status=claimed" "" "${A[@]}"
[[ $(jq .total "$work/body") == 1 && $(jq -r '.cases[0].txn_id' "$work/body") == "$top" ]] || fail "status=claimed"
expect 200 "" POST "/api/cases/$top/label" '{"label":"fraud","note":"card testing pattern"}' "${A[@]}"
jq -e '.case.status == "closed" and .case.verdict == "fraud" and .case.analyst == "ana"' "$work/body" >/dev/null ||
  fail "label: $(jq -c '.case | {status, verdict, analyst}' "$work/body")"
expect 409 "case $top is already closed (fraud by ana)" POST "/api/cases/$top/label" '{"label":"legit"}' "${A[@]}"
expect 409 "case $top is already closed (fraud by ana)" POST "/api/cases/$top/claim" "" "${B[@]}"
# the hostile case: escaped in the raw JSON, intact once parsed, note included
expect 200 "" POST /api/cases/t07/label '{"label":"legit","note":"\"><img src=x onerror=alert(1)>"}' "${B[@]}"
expect 200 "" GET /api/cases/t07 "" "${A[@]}"
grep -q '<' "$work/body" && fail "a raw '<' in the API JSON"
grep -qF '"merchant_id":"\u003cscript\u003ealert(1)\u003c/script\u003e"' "$work/body" || fail "merchant not escaped"
[[ $(jq -r .case.record.txn.merchant_id "$work/body") == '<script>alert(1)</script>' ]] || fail "merchant not intact"
[[ $(jq -r .case.note "$work/body") == '"><img src=x onerror=alert(1)>' ]] || fail "note not intact"
# the card's history (newest first) and usual values: t07's card is card-2
want=$(jq -rs '[.[] | select(.card_id == "card-2" and .txn_id != "t07")] | sort_by(.ts) | reverse | map(.txn_id) | join(",")' "$work/records1.jsonl")
[[ $(jq -r '[.history[].txn_id] | join(",")' "$work/body") == "$want" ]] ||
  fail "history: $(jq -c '[.history[].txn_id]' "$work/body")"
want=$(jq -s '[.[] | select(.card_id == "card-2" and .txn_id != "t07") | .features.card_count_1d] | add / length' "$work/records1.jsonl")
[[ $(jq '.usual.card_count_1d.mean' "$work/body") == "$want" ]] || fail "usual mean != $want"
echo "claim/label/errors ok ($SECONDS s)"

# ---- cookie sessions and CSRF ----
expect 401 "wrong user name or password" POST /api/login '{"user":"ana","password":"nope"}'
code=$(curl -s -o "$work/body" -D "$work/headers" -w '%{http_code}' -c "$work/jar" \
  -H 'Content-Type: application/json' --data-binary '{"user":"ana","password":"ana-password"}' "$base/api/login")
[[ $code == 200 ]] || fail "login: $code $(cat "$work/body")"
grep -i '^set-cookie: vigil_session=[0-9a-f]\{64\}; Path=/; HttpOnly; SameSite=Strict' "$work/headers" >/dev/null ||
  fail "cookie flags: $(grep -i set-cookie "$work/headers")"
csrf=$(jq -r .csrf "$work/body")
expect 200 "" GET /api/session "" -b "$work/jar"
[[ $(jq -r .user "$work/body") == ana && $(jq -r .csrf "$work/body") == "$csrf" ]] || fail "session"
expect 403 "missing or wrong X-CSRF-Token" POST /api/cases/t03/claim "" -b "$work/jar"
expect 403 "missing or wrong X-CSRF-Token" POST /api/cases/t03/claim "" -b "$work/jar" -H "X-CSRF-Token: ${csrf%?}x"
expect 403 "cross-origin request refused (Origin does not match)" POST /api/cases/t03/claim "" \
  -b "$work/jar" -H "X-CSRF-Token: $csrf" -H "Origin: http://evil.example"
expect 200 "" POST /api/cases/t03/claim "" -b "$work/jar" -H "X-CSRF-Token: $csrf" -H "Origin: $base"
expect 200 "" POST /api/cases/t03/release "" -b "$work/jar" -H "X-CSRF-Token: $csrf"
[[ $(jq -r .case.status "$work/body") == open ]] || fail "release"
echo "sessions/CSRF ok ($SECONDS s)"

# ---- the CLI ----
export VIGIL_REVIEW_URL=$base
expect 200 "" GET "/api/cases?status=open&rule=card_testing" "" "${A[@]}"
want=$(jq .total "$work/body")
"$VIGIL" review list --token "$ana" --rule card_testing --limit 3 >"$work/cli" || fail "cli list"
[[ $(head -1 "$work/cli") == TXN* && $(sed -n 5p "$work/cli") == "3 of $want cases" ]] ||
  fail "cli list output: $(cat "$work/cli")"
VIGIL_REVIEW_TOKEN=$bob "$VIGIL" review show t05 >"$work/cli" || fail "cli show"
grep -q '^case      t05$' "$work/cli" && grep -q '^status    open$' "$work/cli" || fail "cli show: $(cat "$work/cli")"
VIGIL_REVIEW_TOKEN=$bob "$VIGIL" review label t05 legit --note "customer confirmed" >"$work/cli" || fail "cli label"
[[ $(cat "$work/cli") == "t05: legit by bob (label pending)" ]] || fail "cli label: $(cat "$work/cli")"
if VIGIL_REVIEW_TOKEN=$bob "$VIGIL" review label t05 fraud 2>"$work/cli.err"; then fail "relabel succeeded"; fi
[[ $(cat "$work/cli.err") == "vigil review label: 409: case t05 is already closed (legit by bob)" ]] ||
  fail "cli 409: $(cat "$work/cli.err")"
echo "cli ok ($SECONDS s)"

# ---- re-delivery changes nothing ----
rec=$(record 1 '.amount = 99999')
echo "card-1|$rec" >"$work/dup"
produce "$work/dup"
sleep 1
expect 200 "" GET /api/cases/t01 "" "${A[@]}"
[[ $(jq .case.record.amount "$work/body") == 13.5 ]] || fail "re-delivery changed t01"
wait_total 30 "$ana"

# ---- restart without loss ----
wait_labels() { # N: until N labels are on the topic
  for _ in $(seq 100); do
    [[ $(labels_on_topic | wc -l) == "$1" ]] && return 0
    sleep 0.1
  done
  fail "expected $1 labels on the topic, got $(labels_on_topic | wc -l)"
}
wait_labels 3
for i in $(seq 31 45); do rec=$(record "$i"); echo "x|$rec"; done >"$work/batch2"
for i in $(seq 46 60); do rec=$(record "$i"); echo "x|$rec"; done >"$work/batch3"
produce "$work/batch2"
sleep 0.3
stop_review KILL # possibly in the middle of batch2
produce "$work/batch3"
start_review
wait_total 60 "$ana"
expect 200 "" GET "/api/cases?status=all&limit=1000" "" "${A[@]}"
[[ $(jq '[.cases[].txn_id] | unique | length' "$work/body") == 60 ]] || fail "duplicate cases after restart"
jq -e '.counts.closed == 3' "$work/body" >/dev/null || fail "verdicts lost: $(jq -c .counts "$work/body")"
expect 200 "" GET "/api/cases/$top" "" "${A[@]}"
jq -e '.case.verdict == "fraud" and .case.label_state == "sent"' "$work/body" >/dev/null || fail "verdict after restart"
# a label then an immediate stop: sent before exit, or re-sent at the next start
expect 200 "" POST /api/cases/t08/label '{"label":"fraud"}' "${A[@]}"
stop_review TERM
start_review --history # and now the card history also comes from `decisions`
wait_labels 4
sleep 1
labels_on_topic >"$work/labels"
[[ $(wc -l <"$work/labels") == 4 ]] || fail "labels: $(cat "$work/labels")"
want=$(printf '%s\n' "$top" t05 t07 t08 | sort | tr '\n' ' ')
[[ $(jq -r .txn_id "$work/labels" | sort | tr '\n' ' ') == "$want" ]] ||
  fail "labels on the topic: $(jq -r .txn_id "$work/labels" | sort | tr '\n' ' ')"
jq -se 'map(select(.txn_id == "t07")) | length == 1 and (.[0] | .label == "legit" and .source == "analyst" and .analyst == "bob"
       and .note == "\"><img src=x onerror=alert(1)>" and (.ts | test("^20[0-9-]{8}T")))' "$work/labels" >/dev/null ||
  fail "t07's label: $(grep t07 "$work/labels")"
kcat -C -b "$brokers" -t labels -e -q -f '%k\n' | sort | tr '\n' ' ' | grep -qxF "$want" ||
  fail "labels are not keyed by txn_id"
expect 200 "" GET /api/cases/t08 "" "${A[@]}"
[[ $(jq -r .case.label_state "$work/body") == sent ]] || fail "t08 not marked sent"
# a decision (not a case) of card-2, newer than all its cases, joins t07's history only
rec=$(record 99 '.txn_id = "d99" | .card_id = "card-2" | .ts = "2018-04-09T00:00:00Z" | .decision = "allow"')
echo "card-2|$rec" | kcat -P -b "$brokers" -t decisions -K '|' || fail "kcat decisions"
for _ in $(seq 100); do
  expect 200 "" GET /api/cases/t07 "" "${A[@]}"
  [[ $(jq -r '.history[0].txn_id' "$work/body") == d99 ]] && break
  sleep 0.1
done
jq -e '.history[0] | .txn_id == "d99" and .decision == "allow" and .case_status == null' "$work/body" >/dev/null ||
  fail "decisions are not in the card history: $(jq -c '.history[0]' "$work/body")"
wait_total 60 "$ana"
echo "restart ok ($SECONDS s)"
echo "ok"

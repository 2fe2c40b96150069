#!/usr/bin/env bash
# test_review_browser.sh - the review web UI in headless Chromium (Debian's `chromium`),
# driven over the DevTools protocol by review_cdp.js (node, no packages):
#  - log in with the keyboard, see the queue in priority order;
#  - open the case whose merchant_id is <script>alert(1)</script>: it is claimed, and the
#    merchant shows as text in the queue and on the case page (no script ran, no dialog);
#  - n, type a hostile note, Escape, f: the case is labelled fraud, the UI moves on, the
#    label arrives on the `labels` topic with the note, and the note shows as text.
# Screenshots of the queue and the case page go to $VG_SHOT_DIR (default /tmp).
set -euo pipefail
work=$(mktemp -d)
source "$VG_SOURCE_DIR/tests/runtime/review_lib.sh"
chromium=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $chromium ]] || ! command -v node >/dev/null; then
  echo "SKIP: needs chromium and node (scripts/setup.sh installs them)"
  exit 77 # ctest reports it as skipped, not passed
fi
shots=${VG_SHOT_DIR:-/tmp}

start_broker
printf 'ana-password\n' | "$VIGIL" review adduser ana --users "$work/users" 2>/dev/null
token=$("$VIGIL" review adduser ana --users "$work/users" --token)
for i in $(seq 12); do
  extra=.
  [[ $i == 7 ]] && extra='.txn.merchant_id = "<script>alert(1)</script>" | .rules = [{id: "big_jump", action: "review"}, {id: "new_device_far", action: "block", shadow: true}]'
  rec=$(record "$i" "$extra")
  echo "$(jq -r .card_id <<<"$rec")|$rec"
done >"$work/batch"
produce "$work/batch"
start_review
wait_total 12 "$token"
first=$(curl -s -H "Authorization: Bearer $token" "$base/api/cases?limit=1" | jq -r '.cases[0].txn_id')

note='"><img src=x onerror=alert(2)> looks like card testing'
node "$VG_SOURCE_DIR/tests/runtime/review_cdp.js" "$chromium" "$base" ana ana-password t07 \
  "$note" "$shots" >"$work/found.json" 2>"$work/cdp.err" || fail "browser: $(cat "$work/cdp.err")"
echo "browser found: $(cat "$work/found.json")"
check() { jq -e "$1" "$work/found.json" >/dev/null || fail "browser: expected $1"; }
check '.user == "ana"'
check '.rows == 12 and .range == "1–12 of 12"'
check ".first == \"$first\""
check '.queueMerchant == "<script>alert(1)</script>"'
check '.caseId == "t07" and .caseMerchant == "<script>alert(1)</script>"'
check '.reasonBars == 2 and .features == 3 and .history == 2'
check '.scripts == 1'
check '.after | startswith("#/case/")'
check '.verdict == "fraud"'
jq -e --arg n "$note" '.note == $n' "$work/found.json" >/dev/null ||
  fail "browser: the note is not shown as text"
check '.imgs == 0 and .auditNote == true'
check '.dialogs == 0 and (.exceptions | length) == 0'

# the label on the topic
for _ in $(seq 50); do
  [[ -n $(labels_on_topic) ]] && break
  sleep 0.1
done
labels_on_topic >"$work/labels"
[[ $(wc -l <"$work/labels") == 1 ]] || fail "labels: $(cat "$work/labels")"
jq -e --arg n "$note" '.txn_id == "t07" and .label == "fraud" and .analyst == "ana" and .source == "analyst" and .note == $n' \
  "$work/labels" >/dev/null || fail "label: $(cat "$work/labels")"
[[ -s $shots/review-queue.png && -s $shots/review-case.png ]] || fail "no screenshots"
echo "screenshots: $shots/review-queue.png $shots/review-case.png"
stop_review TERM
echo "ok"

#!/usr/bin/env bash
# test_backtest.sh - `vigil backtest` end to end on a small simulated set:
#  - its JSON equals a brute-force recomputation in Python from `vigil replay` run with each
#    side's rules (the pipeline's own rule evaluation, independent of the backtest's
#    re-evaluation over the served features) and the labels: per-rule hits, fraud, amounts;
#    both confusion matrices; amounts; per-day counts; the change matrix;
#  - the same with --decisions and a --from/--to window;
#  - the HTML report loads nothing from outside and escapes a hostile merchant_id;
#  - usage errors exit 2.
set -euo pipefail
: "${VIGIL:?path to the vigil binary}"
: "${VG_SOURCE_DIR:?path to the source tree}"
work=$(mktemp -d)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
checks=0
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
pass() {
  checks=$((checks + 1))
  echo "ok: $*"
}

cat=$VG_SOURCE_DIR/features/default.conf
cand=$VG_SOURCE_DIR/rules/default.rules
"$VIGIL" simulate --customers 200 --terminals 800 --days 20 --scenarios all --seed 5 \
  --out "$work/sim" 2>/dev/null

# A hostile merchant on a big late transaction (the candidate blocks it, the baseline
# allows it: it becomes a changed-decision example), and a fraud label corrected to legit.
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
lines = open(f"{work}/sim/transactions.jsonl").read().splitlines()
seen = {}
for i, l in enumerate(lines):
    seen.setdefault(json.loads(l)["card_id"], []).append(i)
# the last transaction of the busiest card
card = max(seen, key=lambda c: len(seen[c]))
i = seen[card][-1]
t = json.loads(lines[i])
t["merchant_id"] = '<script>alert("x&y")</script>'
t["amount"] = 5000.0
lines[i] = json.dumps(t, separators=(",", ":"))
open(f"{work}/sim/transactions.jsonl", "w").write("\n".join(lines) + "\n")
labels = [json.loads(l) for l in open(f"{work}/sim/labels.jsonl")]
first = dict(labels[0])
first["label"] = "legit"
first["ts"] = "2099-01-01T00:00:00.000Z"
first.pop("scenario", None)
with open(f"{work}/sim/labels.jsonl", "a") as f:
    f.write(json.dumps(first, separators=(",", ":")) + "\n")
open(f"{work}/hostile_txn", "w").write(t["txn_id"])
PY

cat >"$work/base.rules" <<'EOF'
block  big    if amount > 6000
review night  if night == 1 and amount > 100
review travel if card_geo_velocity_kmh > 1000
EOF

"$VIGIL" backtest --transactions "$work/sim/transactions.jsonl" --labels "$work/sim/labels.jsonl" \
  --catalog "$cat" --baseline-rules "$work/base.rules" --rules "$cand" --examples 1000 \
  --save-decisions "$work/dec.jsonl" --json "$work/bt.json" --report "$work/bt.html" \
  >"$work/bt.txt" 2>"$work/bt.err" || fail "backtest failed: $(cat "$work/bt.err")"
pass "vigil backtest ran"

# The pipeline's own decisions with each side's rules, for the brute-force reference.
for side in base cand; do
  rules=$work/base.rules
  [[ $side == cand ]] && rules=$cand
  "$VIGIL" replay --quiet --transactions "$work/sim/transactions.jsonl" \
    --labels "$work/sim/labels.jsonl" --catalog "$cat" --rules "$rules" \
    --out "$work/$side.jsonl" 2>/dev/null
done

check_json() { # check_json REPORT [FROM_MS TO_MS]
  python3 - "$work" "$@" <<'PY'
import json, sys
from collections import defaultdict
work, report = sys.argv[1], sys.argv[2]
lo = int(sys.argv[3]) if len(sys.argv) > 3 else -2**63
hi = int(sys.argv[4]) if len(sys.argv) > 4 else 2**63
from datetime import datetime, timezone
def ms(ts):
    return int(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() * 1000 + 0.5)
latest = {}
for line in open(f"{work}/sim/labels.jsonl"):
    l = json.loads(line)
    t = ms(l["ts"])
    if l["txn_id"] not in latest or t >= latest[l["txn_id"]][0]:
        latest[l["txn_id"]] = (t, l["label"] == "fraud")
fraud = {k for k, v in latest.items() if v[1]}
got = json.load(open(report))
bad = []
def eq(what, a, b, tol=1e-6):
    if isinstance(b, float) or isinstance(a, float):
        ok = a is not None and b is not None and abs(a - b) <= tol * max(1, abs(b))
    else:
        ok = a == b
    if not ok:
        bad.append(f"{what}: report {a!r}, brute force {b!r}")
decisions = {}
for side, name in (("base", "baseline"), ("cand", "candidate")):
    acts, cm, bm = defaultdict(int), defaultdict(int), defaultdict(int)
    hits, rfraud, ramt = defaultdict(int), defaultdict(int), defaultdict(float)
    caught = blocked_legit = 0.0
    days = defaultdict(lambda: [0, 0, 0, 0, 0])
    n = nf = 0
    dec = {}
    for line in open(f"{work}/{side}.jsonl"):
        d = json.loads(line)
        t = ms(d["ts"])
        if not (lo <= t < hi):
            continue
        f = d["txn_id"] in fraud
        a = d["decision"]
        dec[d["txn_id"]] = a
        n += 1; nf += f
        acts[a] += 1
        flagged, blocked = a != "allow", a == "block"
        cm[(flagged, f)] += 1
        bm[(blocked, f)] += 1
        if flagged and f: caught += d["amount"]
        if blocked and not f: blocked_legit += d["amount"]
        day = days[d["ts"][:10]]
        day[0] += 1; day[1] += f; day[2] += flagged; day[3] += flagged and f; day[4] += blocked
        for r in d["rules"]:
            hits[r["id"]] += 1
            if f:
                rfraud[r["id"]] += 1
                ramt[r["id"]] += d["amount"]
    decisions[name] = dec
    s = got["sides"][name]
    eq("transactions", got["transactions"], n)
    eq("frauds", got["frauds"], nf)
    for a in ("allow", "review", "block"):
        eq(f"{name} {a}", s["decisions"][a], acts[a])
    for key, m in (("flagged", cm), ("blocked", bm)):
        eq(f"{name} {key} tp", s[key]["tp"], m[(True, True)])
        eq(f"{name} {key} fp", s[key]["fp"], m[(True, False)])
        eq(f"{name} {key} fn", s[key]["fn"], m[(False, True)])
        eq(f"{name} {key} tn", s[key]["tn"], m[(False, False)])
    eq(f"{name} fraud amount caught", s["fraud_amount_caught"], caught)
    eq(f"{name} legit amount blocked", s["legit_amount_blocked"], blocked_legit)
    for r in s["rules"]:
        eq(f"{name} {r['id']} hits", r["hits"], hits[r["id"]])
        eq(f"{name} {r['id']} fraud", r["fraud"], rfraud[r["id"]])
        eq(f"{name} {r['id']} fraud amount", r["fraud_amount"], ramt[r["id"]])
        if r["hits"]:
            eq(f"{name} {r['id']} precision", r["precision"], rfraud[r["id"]] / hits[r["id"]])
    daily = {d["day"]: d for d in s["daily"]}
    for day, v in days.items():
        g = daily.get(day)
        if not g:
            bad.append(f"{name}: no day {day}")
            continue
        eq(f"{name} {day}", [g["transactions"], g["frauds"], g["flagged"], g["flagged_fraud"],
                              g["blocked"]], v)
changes = defaultdict(int)
for k, a in decisions["baseline"].items():
    b = decisions["candidate"][k]
    if a != b:
        changes[(a, b)] += 1
eq("changed total", got["changed"]["total"], sum(changes.values()))
for t in got["changed"]["transitions"]:
    eq(f"changed {t['from']}->{t['to']}", t["count"], changes[(t["from"], t["to"])])
if bad:
    print("\n".join(bad[:30]))
    sys.exit(1)
print(f"{len(decisions['baseline'])} transactions, {got['frauds']} frauds, "
      f"{sum(changes.values())} changed: all figures match")
PY
}

out=$(check_json "$work/bt.json") || fail "JSON differs from the brute force: $out"
pass "JSON = brute force ($out)"

# the hostile merchant is an example, escaped in the HTML; nothing external
hostile=$(cat "$work/hostile_txn")
python3 -c "
import json,sys; r=json.load(open('$work/bt.json'))
ex=[e for e in r['changed']['examples'] if e['txn_id']=='$hostile']
sys.exit(0 if ex and ex[0]['merchant_id']=='<script>alert(\"x&y\")</script>' else 1)" ||
  fail "the hostile transaction is not among the examples"
grep -qF '&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;' "$work/bt.html" ||
  fail "hostile merchant_id not escaped in the HTML"
! grep -qi '<script' "$work/bt.html" || fail "HTML holds a <script"
! grep -qiE 'https?:|//[a-z]|src=|href=|url\(|@import' "$work/bt.html" ||
  fail "HTML refers to something external: $(grep -oiE '.{20}(https?:|src=|href=|url\().{20}' "$work/bt.html" | head -3)"
grep -q '<svg' "$work/bt.html" || fail "HTML has no chart"
pass "HTML self-contained, hostile merchant escaped"

grep -q '^== changed decisions: ' "$work/bt.txt" || fail "no changes in the table"
grep -q '^card_testing_burst ' "$work/bt.txt" || fail "no rule table"
pass "table printed"

# a window, from the saved decisions (no replay): judged = brute force over the window
from=2018-04-08
to=2018-04-12
"$VIGIL" backtest --decisions "$work/dec.jsonl" --labels "$work/sim/labels.jsonl" --catalog "$cat" \
  --baseline-rules "$work/base.rules" --rules "$cand" --from $from --to $to \
  --json "$work/win.json" >/dev/null 2>"$work/win.err" || fail "window backtest: $(cat "$work/win.err")"
lo=$(python3 -c "import calendar,time; print(calendar.timegm(time.strptime('$from','%Y-%m-%d'))*1000)")
hi=$(python3 -c "import calendar,time; print((calendar.timegm(time.strptime('$to','%Y-%m-%d'))+86400)*1000)")
out=$(check_json "$work/win.json" "$lo" "$hi") || fail "window JSON differs: $out"
python3 -c "import json; r=json.load(open('$work/win.json')); assert r['window']['days']==5 and r['skipped']>0, r['window']" ||
  fail "window is not 5 days"
pass "--from/--to window = brute force ($out)"

# usage errors
set +e
"$VIGIL" backtest --transactions x >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "no --labels: expected status 2"
"$VIGIL" backtest --labels x --transactions x >/dev/null 2>"$work/u.err"
[[ $? -eq 2 ]] || fail "no rules or model: expected status 2"
grep -q 'give --rules and/or --model' "$work/u.err" || fail "message: $(cat "$work/u.err")"
"$VIGIL" backtest --labels x --transactions x --rules "$cand" --from 2018-13-01 >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "bad --from: expected status 2"
set -e
pass "usage errors"
echo "$checks passed, 0 failed"

# lib.sh - helpers shared by the runtime tests (sourced, not run).
#
#   start_broker [PARTITIONS] [EXTRA FLAGS...]   starts `vigil broker`, sets $brokers
#   consume TOPIC                                 prints a topic's committed messages (read_committed)
#   held INSTANCE / busiest N INSTANCE...         transactions partitions a `vigil run` holds
#   check_group DECISIONS REF N VICTIM            exactly once across a group (test_run_scale.sh)
#   same_as_replay REF N                          the decisions topic = a replay's, byte for byte
#   fail MESSAGE                                  fails the test
#   pass MESSAGE                                  counts a passed check
#
# Everything started is stopped and $work removed when the test exits.
set -euo pipefail
: "${VIGIL:?path to the vigil binary}"
: "${VG_SOURCE_DIR:?path to the source tree}"
work=$(mktemp -d)
pids=()
checks=0
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "$checks passed, 1 failed"
  exit 1
}

pass() {
  checks=$((checks + 1))
  echo "ok: $*"
}

done_ok() {
  echo "$checks passed, 0 failed"
}

start_broker() {
  local partitions=${1:-8}
  shift || true
  "$VIGIL" broker --partitions "$partitions" --bootstrap-file "$work/bootstrap" --log-level warn "$@" \
    >"$work/broker.out" 2>"$work/broker.err" &
  pids+=($!)
  for _ in $(seq 100); do
    [[ -s $work/bootstrap ]] && break
    sleep 0.1
  done
  [[ -s $work/bootstrap ]] || fail "broker did not write its bootstrap file"
  brokers=$(cat "$work/bootstrap")
}

# http_get HOST:PORT PATH: the response body of a GET (status line and headers removed).
http_get() {
  python3 - "$1" "$2" <<'PY'
import sys, urllib.request
try:
    print(urllib.request.urlopen("http://%s%s" % (sys.argv[1], sys.argv[2]), timeout=5).read().decode(), end="")
except Exception:
    sys.exit(1)
PY
}

consume() {
  kcat -b "$brokers" -C -t "$1" -e -q -X isolation.level=read_committed "${@:2}"
}

# check_group DECISIONS REF N VICTIM: DECISIONS is `consume decisions -f '%h\t%s\n'` from a group
# whose instance VICTIM was killed, REF the reference decisions (JSON lines). The local broker
# shows the batch open at the kill (test_run_crash.sh), whole or in part: its decisions that were
# decided again elsewhere are removed. Only that batch (the last of the VICTIM instance's first
# process) gets this allowance. What remains must be exactly one decision per transaction, N of
# them, each identical to the reference's (differences are counted by field).
check_group() {
  python3 - "$@" <<'PY'
import collections, json, sys
ref = {json.loads(l)["txn_id"]: l.rstrip("\n") for l in open(sys.argv[2])}
n = int(sys.argv[3])
batches = collections.defaultdict(list)
for line in open(sys.argv[1]):
    headers, body = line.rstrip("\n").split("\t", 1)
    batch = dict(h.split("=", 1) for h in headers.split(","))["vigil.batch"]
    batches[batch].append((json.loads(body)["txn_id"], body))
# batch ids are INSTANCE.PID.START_MS:SEQ; the killed process is the victim instance's first,
# the batch open at the kill its last
victim = sys.argv[4]
procs = sorted({b.split(":")[0] for b in batches if b.startswith(victim + ".")}, key=lambda r: int(r.rsplit(".", 1)[1]))
killed = procs[0] if procs else None
last = max((b for b in batches if b.split(":")[0] == killed), key=lambda b: int(b.rsplit(":", 1)[1]), default=None)
elsewhere = collections.Counter(t for b, items in batches.items() if b != last for t, _ in items)
redone = [item for item in batches.get(last, []) if elsewhere[item[0]]]
kept = [item for b, items in batches.items() for item in items if b != last or item not in redone]
print(f"  {sum(len(v) for v in batches.values())} decisions in {len(batches)} batches from "
      f"{len({b.split(':')[0] for b in batches})} processes; the killed process's last batch: "
      f"{len(redone)} of its {len(batches.get(last, []))} decisions decided again elsewhere")
ok = True
once = collections.Counter(t for t, _ in kept)
dups = [t for t, c in once.items() if c > 1]
if len(kept) != n or set(once) != set(ref) or dups:
    print(f"FAIL: {len(kept)} decisions for {len(once)} transactions ({len(dups)} decided twice, e.g. "
          f"{dups[:1]}), expected {n}"); ok = False
diff = collections.Counter()
for t, body in kept:
    if t in ref and body != ref[t]:
        got, want = json.loads(body), json.loads(ref[t])
        diff["(whole record)"] += 1
        for k, v in want.get("features", {}).items():
            diff[k] += got.get("features", {}).get(k) != v
if diff:
    print(f"FAIL: decisions differ from the reference's, by field: {dict(+diff)}"); ok = False
sys.exit(0 if ok else 1)
PY
}

# held INSTANCE: how many transactions partitions the `vigil run` logging to $work/INSTANCE.err
# holds, by its latest "holding" line.
held() { grep -o 'holding transactions \[[0-9 ]*\]' "$work/$1.err" | tail -1 | tr -cd '0-9 ' | wc -w; }

# busiest N INSTANCE...: the instance holding the most transactions partitions, once their
# latest holdings cover all N (on a loaded machine the group may still be settling; the
# assignor balances counts over all topics, so one may hold only other topics' partitions).
busiest() {
  local parts=$1 total
  shift
  for _ in $(seq 200); do
    total=0
    for inst in "$@"; do total=$((total + $(held "$inst"))); done
    ((total == parts)) && break
    sleep 0.1
  done
  for inst in "$@"; do echo "$(held "$inst") $inst"; done | sort -rn | head -1 | cut -d' ' -f2
}

# kill_and_replace VICTIM ARGS...: kills engine VICTIM (one of a b c, whose pids are in
# pid_a..pid_c) with SIGKILL, starts a replacement of the same instance name on a new state
# directory with `vigil run ARGS` 8 s later, then waits for the feeder ($feed), the survivors
# and the replacement, failing if any failed. Sets survivors.
kill_and_replace() {
  local victim=$1 pid_victim pid_new inst
  shift
  survivors=$(echo a b c | tr ' ' '\n' | grep -v "$victim" | tr '\n' ' ')
  eval "pid_victim=\$pid_$victim"
  kill -9 "$pid_victim"
  wait "$pid_victim" 2>/dev/null || true
  pass "instance $victim ($(held "$victim") transactions partitions) killed with SIGKILL midway ($(consume decisions -f '%s\n' | wc -l) decisions committed so far)"
  sleep 8
  "$VIGIL" run "$@" --instance "$victim" --state "$work/state-${victim}2" \
    2>"$work/${victim}2.err" &
  pids+=($!)
  pid_new=$!
  wait "$feed" || fail "feeding the transactions failed: $(tail -3 "$work/feed.err")"
  for inst in $survivors; do
    eval "wait \$pid_$inst" || fail "engine $inst failed: $(tail -3 "$work/$inst.err")"
  done
  wait "$pid_new" || fail "the replacement failed: $(tail -3 "$work/${victim}2.err")"
}

# same_as_replay REF N: the committed decisions are N, and byte-identical to REF's (a replay's
# output), in any order.
same_as_replay() {
  consume decisions -f '%s\n' | sort >"$work/got.sorted"
  sort "$1" >"$work/ref.sorted"
  [[ $(wc -l <"$work/got.sorted") -eq $2 ]] || fail "$(wc -l <"$work/got.sorted") decisions for $2 transactions"
  cmp -s "$work/got.sorted" "$work/ref.sorted" ||
    fail "decisions differ from the replay's: $(diff "$work/got.sorted" "$work/ref.sorted" | grep -c '^<') of $2"
}

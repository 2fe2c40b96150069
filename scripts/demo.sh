#!/usr/bin/env bash
# demo.sh - the whole loop on one machine, from nothing:
#   1. installs what is missing and builds (scripts/setup.sh);
#   2. starts the local Kafka broker (`vigil broker`);
#   3. bootstraps a model: simulates two weeks of labelled history, replays it through the
#      rules to get the features as served, trains a 100-tree XGBoost model on them;
#   4. starts the engine (`vigil run`, exactly once, default catalogue + rules + model) and
#      the analyst service (`vigil review`, user demo / password demo-analyst);
#   5. streams simulated traffic (with card-testing and account-takeover fraud) at a steady
#      rate, and shows decisions and counts live until the time is up or Ctrl-C.
#
# usage: scripts/demo.sh [SECONDS]          (default 60; 0 = until Ctrl-C)
# env:   RATE (transactions/s, default 300), DEMO_DIR (default ./demo; wiped at start)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
RATE=${RATE:-300}
DIR=${DEMO_DIR:-demo}
VIGIL=build/vigil

scripts/setup.sh
rm -rf "$DIR"
mkdir -p "$DIR"
pids=()
stop() { # newest first, so the engine commits its last batch while the broker is still up
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap stop EXIT
trap 'exit 0' INT TERM

say() { if [[ -t 1 ]]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }

say "local Kafka broker"
"$VIGIL" broker --partitions 32 --bootstrap-file "$DIR/bootstrap" 2>"$DIR/broker.log" >/dev/null &
pids+=($!)
for _ in $(seq 100); do [[ -s $DIR/bootstrap ]] && break; sleep 0.1; done
brokers=$(cat "$DIR/bootstrap")
echo "listening on $brokers (log: $DIR/broker.log)"

say "bootstrapping a model from 14 days of simulated history"
"$VIGIL" simulate --days 21 --scenarios all --seed 7 --out "$DIR/history" 2>&1 | tail -1
"$VIGIL" replay --transactions "$DIR/history/transactions.jsonl" \
  --labels "$DIR/history/labels.jsonl" --rules rules/default.rules \
  --out "$DIR/history/decisions.jsonl" --quiet 2>&1 | sed 's/^/  /'
"$VIGIL" train --decisions "$DIR/history/decisions.jsonl" --labels "$DIR/history/labels.jsonl" \
  --train 2018-04-01..2018-04-15 --trees 100 --depth 6 --out "$DIR/model" 2>&1 | sed 's/^/  /'

say "engine and analyst service"
"$VIGIL" run --brokers "$brokers" --state "$DIR/state" --rules rules/default.rules \
  --model "$DIR/model" --http 127.0.0.1:9464 --batch-ms 20ms 2>"$DIR/engine.log" &
pids+=($!)
echo demo-analyst | "$VIGIL" review adduser demo --users "$DIR/users" >/dev/null
"$VIGIL" review --brokers "$brokers" --http 127.0.0.1:8080 --store "$DIR/review" \
  --users "$DIR/users" 2>"$DIR/review.log" &
pids+=($!)
echo "engine:   metrics at http://127.0.0.1:9464/metrics (log: $DIR/engine.log)"
echo "analysts: http://127.0.0.1:8080  (user demo, password demo-analyst)"

say "streaming simulated transactions at $RATE/s"
"$VIGIL" simulate --brokers "$brokers" --rate "$RATE" --days 60 --seed 8 --scenarios all \
  2>"$DIR/traffic.log" &
pids+=($!)

metric() { # NAME[{LABELS}] from the engine's /metrics, 0 if absent
  python3 - "$1" <<'PY'
import sys, urllib.request
try:
    body = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=2).read().decode()
except Exception:
    print(0); sys.exit()
for line in body.splitlines():
    if line.startswith(sys.argv[1] + " "):
        print(line.split()[-1].split(".")[0]); break
else:
    print(0)
PY
}

start=$(date +%s)
shown=0
while ((SECONDS_TO_RUN == 0 || $(date +%s) - start < SECONDS_TO_RUN)); do
  sleep 3
  printf '\n%s  consumed %s  allow %s  review %s  block %s  dead letters %s\n' "$(date +%T)" \
    "$(metric 'vigil_consumed_total{topic="transactions"}')" \
    "$(metric 'vigil_decisions_total{action="allow"}')" \
    "$(metric 'vigil_decisions_total{action="review"}')" \
    "$(metric 'vigil_decisions_total{action="block"}')" "$(metric vigil_dead_letters_total)"
  # the newest flagged decisions: action, score, amount, card and the rules that fired
  kcat -b "$brokers" -C -t review -o -1 -e -q -X isolation.level=read_committed 2>/dev/null | tail -n 4 |
    python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    rules = ",".join(r["id"] for r in d["rules"]) or "-"
    score = "%.3f" % d["score"] if d["score"] is not None else "null"
    print("  %-6s score %s  %8.2f EUR  %s  %s  rules: %s" % (d["decision"], score, d["amount"],
          d["card_id"], d["txn_id"], rules))' || true
done
say "stopping (the engine commits its last batch first)"

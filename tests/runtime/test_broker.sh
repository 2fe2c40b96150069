#!/usr/bin/env bash
# test_broker.sh - `vigil broker` serves standard Kafka clients: it creates vigil's topics
# with the partitions asked for, writes its bootstrap address, round-trips keyed messages
# with kcat, and stops cleanly on SIGTERM (removing the bootstrap file).
source "$(dirname "$0")/lib.sh"
start_broker 6 --topic extra
pid=${pids[0]}

[[ $(head -1 "$work/broker.out") == "$brokers" ]] || fail "stdout does not start with the address"
meta=$(kcat -b "$brokers" -L 2>&1)
for t in transactions decisions review labels transactions.dlq extra; do
  grep -q "topic \"$t\" with 6 partitions" <<<"$meta" || fail "topic $t with 6 partitions missing: $meta"
done
pass "topics created with 6 partitions each; address on stdout and in the bootstrap file"

for i in $(seq 1 500); do echo "card-$((i % 37)):{\"n\":$i}"; done >"$work/in.txt"
kcat -b "$brokers" -P -t transactions -K: -l "$work/in.txt"
kcat -b "$brokers" -C -t transactions -e -q -K: -f '%k:%s\n' >"$work/out.txt"
[[ $(wc -l <"$work/out.txt") -eq 500 ]] || fail "consumed $(wc -l <"$work/out.txt") of 500"
cmp -s <(sort "$work/in.txt") <(sort "$work/out.txt") || fail "round-trip changed messages"
# the same key always lands in the same partition
kcat -b "$brokers" -C -t transactions -e -q -f '%k %p\n' | sort -u | awk '{print $1}' | uniq -d >"$work/split.txt"
[[ ! -s $work/split.txt ]] || fail "a key spread over several partitions: $(head -1 "$work/split.txt")"
pass "500 keyed messages round-trip through kcat, each key in one partition"

kill -TERM "$pid"
wait "$pid" || fail "broker exited non-zero on SIGTERM"
pids=()
[[ ! -e $work/bootstrap ]] || fail "bootstrap file left behind"
pass "SIGTERM stops it cleanly and removes the bootstrap file"
done_ok

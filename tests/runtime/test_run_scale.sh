#!/usr/bin/env bash
# test_run_scale.sh - several engine processes in one consumer group, with the state
# changelog (engine.state.changelog). Traffic is paced into the transactions topic while three
# processes (instances a, b, c) share it; the one holding the most transactions partitions is
# killed with SIGKILL midway, its partitions move to the other two, which restore their state
# from the changelog; later a replacement joins under the dead one's name (as a restarted pod
# would) and takes partitions over. At the
# end a read_committed consumer must see exactly one decision per transaction, each identical
# to the decision of one uninterrupted single-process run over the same input.
#
# The catalogue is card-keyed (tests/data/card.conf): card state is partitioned like the
# input, so the changelog moves it exactly. Terminal, merchant, device and IP state spans
# partitions (docs/scaling.md).
#
# On the local broker the group's offsets never move under transactions (see
# test_run_crash.sh), so a process that takes a partition over learns where to resume from
# the changelog's markers; without the changelog it would decide the whole partition again.
# The broker also writes no abort markers: the batch open at the kill becomes visible, whole or
# in part, and so do the changelog markers it had sent. Its transactions on the partitions whose
# marker did not get out are decided again by the new owner; the check removes those (only in
# that batch, the killed process's last).
source "$(dirname "$0")/lib.sh"
start_broker 16 --topic ref_decisions --topic ref_review

"$VIGIL" simulate --customers 1500 --terminals 1000 --days 12 --seed 5 --out "$work/sim" 2>/dev/null
n=$(wc -l <"$work/sim/transactions.jsonl")

common=(--brokers "$brokers" --catalog "$VG_SOURCE_DIR/tests/data/card.conf"
  --rules "$VG_SOURCE_DIR/tests/data/card.rules" --http off --batch-size 300
  --set kafka.session.timeout.ms=3000 --set kafka.heartbeat.interval.ms=300)
scale=(--group scale --set engine.state.changelog=true --idle-exit 12s)

# Paced: 12 simulated days in ~24 s of traffic, so the group changes while it flows.
"$VIGIL" replay --transactions "$work/sim/transactions.jsonl" --to-kafka "$brokers" \
  --speedup 43200 --quiet 2>"$work/feed.err" &
feed=$!
pids+=($feed)
for inst in a b c; do
  "$VIGIL" run "${common[@]}" "${scale[@]}" --instance "$inst" --state "$work/state-$inst" \
    2>"$work/$inst.err" &
  pids+=($!)
  eval "pid_$inst=$!"
done
sleep 10
victim=$(busiest 16 a b c) # the one holding the most transactions partitions
kill_and_replace "$victim" "${common[@]}" "${scale[@]}"

# The survivors took the killed process's partitions over, and restored them.
grep -h "restored [0-9]* partition(s)" "$work"/*.err | sed 's/^.*run: /  /' || true
restores=0
for inst in $survivors; do
  restores=$((restores + $(grep -c "restored [0-9]* partition(s) from vigil.changelog" "$work/$inst.err" || true)))
done
((restores > 0)) || fail "no survivor restored state from the changelog"
pass "the partitions of the killed process were restored from the changelog"

# The reference: one uninterrupted process over the same input, into other topics.
"$VIGIL" run "${common[@]}" --group ref --state "$work/ref-state" \
  --set topics.decisions=ref_decisions --set topics.review=ref_review --idle-exit 8s \
  2>"$work/ref.err" || fail "reference run failed: $(tail -3 "$work/ref.err")"
consume ref_decisions -f '%s\n' | sort >"$work/ref.jsonl"
[[ $(wc -l <"$work/ref.jsonl") -eq $n ]] || fail "reference run decided $(wc -l <"$work/ref.jsonl") of $n"

consume decisions -f '%h\t%s\n' >"$work/scale.txt"
check_group "$work/scale.txt" "$work/ref.jsonl" "$n" "$victim" || fail "exactly-once check failed"
pass "exactly one committed decision per transaction ($n) across the group, each identical to the single-process run's"
done_ok

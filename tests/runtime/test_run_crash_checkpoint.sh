#!/usr/bin/env bash
# test_run_crash_checkpoint.sh - test_run_crash.sh with the state changelog on and the state
# written in checkpoints every second. A kill then loses up to a second of local state, but the
# changelog holds exactly what each Kafka transaction committed: the restart restores the
# tail from it and resumes the input where its newest marker says, so every transaction is
# still decided exactly once, identically, even on the local broker (whose group offsets never
# move, which is why checkpoints alone are not safe there: docs/operations.md).
VG_CRASH_ARGS="--set engine.state.changelog=true --set engine.state.checkpoint.interval=1s" \
  exec bash "$(dirname "$0")/test_run_crash.sh"

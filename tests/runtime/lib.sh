# lib.sh - helpers shared by the runtime tests (sourced, not run).
#
#   start_broker [PARTITIONS] [EXTRA FLAGS...]   starts `vigil broker`, sets $brokers
#   consume TOPIC                                 prints a topic's committed messages (read_committed)
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

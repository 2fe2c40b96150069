#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. installs what is missing (scripts/setup.sh) and builds with warnings as errors,
#   2. runs every ctest test (unit, fuzz corpus replays, runtime scenarios),
#   3. rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite again,
#   4. checks formatting with clang-format.
# Set VIGIL_TEST_FAST=1 to skip the sanitizer pass while iterating.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

VIGIL_NO_BUILD=1 scripts/setup.sh

echo "== format check"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

echo "== build (release, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs")

if [[ -z ${VIGIL_TEST_FAST:-} ]]; then
  echo "== build (ASan + UBSan)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVIGIL_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== tests under ASan + UBSan"
  # Leak checking stays on; librdkafka/RocksDB background threads are joined on close.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j"$jobs" -E '^bench')
fi
echo "== all tests passed"

#!/usr/bin/env bash
# Installs every Debian package vigil's build, tests and demo need, then builds.
# Idempotent: packages already installed are not reinstalled, and the build is incremental.
# Runs as root, or through sudo otherwise.
#
#   scripts/setup.sh            install + release build in build/
#   VIGIL_NO_BUILD=1 scripts/setup.sh   install only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config git python3
  librdkafka-dev librocksdb-dev libxgboost-dev      # Kafka, state, model
  libcjson-dev libjansson-dev                        # JSON: contracts (cJSON), manifests
  libmicrohttpd-dev zlib1g-dev                       # HTTP, gzip logs
  libjson-c-dev                                      # the decode benchmark's comparison
  kcat curl jq                                       # standard clients for the tests
  prometheus                                         # promtool checks the /metrics format
  chromium                                           # the review UI's browser test
  clang clang-format libclang-rt-14-dev              # fuzzing, formatting, sanitizers
)
# node drives the browser test over the DevTools protocol; any recent node will do, so
# Debian's is installed only when there is none.
command -v node >/dev/null || PACKAGES+=(nodejs)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=()
  [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [[ -z ${VIGIL_NO_BUILD:-} ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)"
fi

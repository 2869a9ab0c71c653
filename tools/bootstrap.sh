#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# One-step set-up on Debian 12: installs the Debian packages that are missing (idempotent: quick
# when all are there), configures and builds with meson, then does what was asked.
#
#   tools/bootstrap.sh run  [stateline options]   replay the bundled capture (conf/demo.pcap)
#   tools/bootstrap.sh test [meson test options]  run the whole test suite (also installs
#                                                 clang-14 for tools/fuzz/run.sh --smoke)
#   tools/bootstrap.sh build                      only install and build
#
# Environment: BUILD_DIR (default build), SANITIZE=1 builds with -Db_sanitize=address,undefined
# (default folder build-asan).
set -euo pipefail

cd "$(dirname "$0")/.."
action=${1:-run}
[ $# -gt 0 ] && shift

# Everything comes from Debian 12's own archive; nothing is vendored or downloaded otherwise.
packages=(
  meson ninja-build pkg-config g++ python3
  libdpdk-dev dpdk            # DPDK 22.11: EAL, ethdev, net_pcap, dpdk-devbind and dpdk-telemetry
  libpcap-dev                 # capture probing
  libhyperscan-dev            # payload matching (mitigation rules)
  libspdlog-dev libfmt-dev    # logging and formatting
  libyaml-cpp-dev             # config
  nlohmann-json3-dev          # JSON summaries
  libcli11-dev                # command line
  libmicrohttpd-dev           # the Prometheus /metrics endpoint (GNU libmicrohttpd)
  libgtest-dev                # unit tests
  python3-matplotlib          # tools/stateline-chart draws --stats files as PNG
  tshark                      # the functional tests' oracle
  tcpreplay iproute2          # replay into a veth pair read by net_af_packet (functional test)
  prometheus                  # a real Prometheus server scrapes /metrics (functional test)
)
# The test suite's fuzz smoke (tools/fuzz/run.sh --smoke, .ci/run) needs clang and libFuzzer:
# Debian's clang-14 with its runtime (libclang_rt.fuzzer, asan, ubsan); CI machines start fresh.
if [ "$action" = test ]; then
  packages+=(clang-14 libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
    echo "bootstrap: run this as root (sudo $0 $action) to install them, or install them yourself." >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=${BUILD_DIR:-build}
opts=()
# CI holds the code to warning_level=2 with no warning at all.
[ "${CI:-}" = true ] && opts+=(-Dwerror=true)
if [ "${SANITIZE:-0}" = 1 ]; then
  build=${BUILD_DIR:-build-asan}
  opts+=(-Db_sanitize=address,undefined -Db_lundef=false)
fi
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "${opts[@]}" >/dev/null
elif [ ${#opts[@]} -gt 0 ]; then
  meson configure "$build" "${opts[@]}" >/dev/null
fi
ninja -C "$build"

case $action in
  run)
    exec "$build/src/stateline" --pcap conf/demo.pcap "$@" ;;
  test)
    rc=0
    meson test -C "$build" --print-errorlogs "$@" || rc=$?
    # One plain closing line for whoever reads the log: "N passed, M failed, K skipped".
    /usr/bin/python3 - "$build/meson-logs/testlog.json" <<'PY' || true
import json, sys
res = [json.loads(l)["result"] for l in open(sys.argv[1]) if l.strip()]
ok = sum(r in ("OK", "EXPECTEDFAIL") for r in res)
skip = sum(r == "SKIP" for r in res)
print(f"{ok} passed, {len(res) - ok - skip} failed, {skip} skipped")
PY
    exit $rc ;;
  build)
    echo "bootstrap: built $build/src/stateline" ;;
  *)
    echo "usage: $0 run|test|build [options]" >&2; exit 2 ;;
esac

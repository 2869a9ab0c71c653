#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Builds and runs the libFuzzer targets of tests/fuzz/ (issue 8; docs/reliability.md).
#
#   tools/fuzz/run.sh [--runs N] [--smoke] [--max-time S] [--jobs J] [--build-dir DIR] [--no-build] [target...]
#
#   targets     parser tcp config ctl (default: all four)
#   --runs N    executions per target (default: $FUZZ_RUNS, else 1e8 for parser and tcp, 1e6 for
#               config and ctl)
#   --smoke     a short run of each (CI): 20000 executions or 30 s, whichever comes first
#   --max-time S  stop each target after S seconds even if its executions are not all done
#   --jobs J    targets run at once (default 1; each libFuzzer process uses one core)
#   --build-dir the clang build (default build-fuzz, set up here with CC=clang-14 CXX=clang++-14
#               and -Dfuzz=true when missing)
#   --no-build  do not run ninja (the meson run_target 'fuzz' has built the targets already)
#
# Seeds: tools/fuzz/make-corpus.py writes DIR/fuzz-seeds/<target>/ on every run (the shared
# captures, stateline-gen's scenarios from build/tools/stateline-gen when it is built, the
# configs, control requests). What libFuzzer finds goes to DIR/fuzz-corpus/<target>/ (kept between
# runs), crashes to DIR/fuzz-artifacts/, each run's log to DIR/fuzz-logs/<target>.log.
# Exit status: 0 when no target found anything, 1 otherwise, 2 on a usage or build error.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

runs=${FUZZ_RUNS:-}
smoke=0
max_time=""
jobs=1
build=build-fuzz
do_build=1
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --runs=*) runs=${1#*=}; shift ;;
    --smoke) smoke=1; shift ;;
    --max-time) max_time=$2; shift 2 ;;
    --jobs|-j) jobs=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n '3,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    parser|tcp|config|ctl) targets+=("$1"); shift ;;
    *) echo "run.sh: unknown argument '$1' (targets: parser tcp config ctl; see --help)" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(parser tcp config ctl)
# 1e8 style counts are accepted.
to_int() { /usr/bin/python3 -c "import sys; print(int(float(sys.argv[1])))" "$1"; }
[ -n "$runs" ] && runs=$(to_int "$runs")

if [ $do_build = 1 ]; then
  if [ ! -f "$build/build.ninja" ]; then
    for c in clang-14 clang++-14; do
      command -v $c >/dev/null || { echo "run.sh: $c is missing (apt-get install clang-14 libclang-rt-14-dev; tools/bootstrap.sh test installs them)" >&2; exit 2; }
    done
    CC=clang-14 CXX=clang++-14 meson setup "$build" -Dfuzz=true -Dtests=false -Db_lundef=false >/dev/null ||
      { echo "run.sh: meson setup $build failed (see $build/meson-logs/meson-log.txt)" >&2; exit 2; }
  fi
  ninja -C "$build" tests/fuzz/fuzz_parser tests/fuzz/fuzz_tcp tests/fuzz/fuzz_config tests/fuzz/fuzz_ctl ||
    { echo "run.sh: build failed" >&2; exit 2; }
fi

# Allocation stacks cost the config loader half its rate (ASan records one per malloc); a
# report is reproduced with full stacks by running the target on the artifact without this.
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

seeds=$build/fuzz-seeds
/usr/bin/python3 tools/fuzz/make-corpus.py "$seeds" --gen "${STATELINE_GEN:-$root/build/tools/stateline-gen}"
mkdir -p "$build/fuzz-corpus" "$build/fuzz-artifacts" "$build/fuzz-logs"

default_runs() { case $1 in parser|tcp) echo 100000000 ;; *) echo 1000000 ;; esac; }
# Longest input per target: a frame (jumbo frames are cut), 64 segments, the config cap, a
# request line. tcp: byte 0 and 64 segments of 8 bytes (tools/fuzz/make-corpus.py cuts its seeds
# there too). 64 segments over the 8 connections are 8 each on average: a handshake, data and a
# teardown for every one, or several lifetimes (TIME-WAIT, a new SYN, restart) and the evictions
# of a small table for a few. 128 segments (1025) cost about 1.4 times the time per execution
# for 2 more edges (one connection's 100th retransmission: a unit test has it); see
# docs/reliability.md, "Results".
max_len() { case $1 in parser) echo 4097 ;; tcp) echo 513 ;; config) echo 4096 ;; ctl) echo 4096 ;; esac; }

run_one() {  # target show -> log file; prints one summary line (show: libFuzzer's lines too)
  local t=$1 show=$2 n log start end rc
  if [ $smoke = 1 ]; then n=${runs:-20000}; else n=${runs:-$(default_runs "$t")}; fi
  log=$build/fuzz-logs/$t.log
  mkdir -p "$build/fuzz-corpus/$t"
  local extra=()
  [ $smoke = 1 ] && extra+=(-max_total_time=30)
  [ -n "$max_time" ] && extra+=(-max_total_time="$max_time")
  start=$(date +%s.%N)
  rc=0
  # -reload=0: each target's corpus directory has one writer, this process; rereading (listing
  # and stat'ing thousands of files every few seconds) cost fuzz_tcp 5% of its time.
  local cmd=("$build/tests/fuzz/fuzz_$t" -runs="$n" -max_len="$(max_len "$t")" -timeout=25 -print_final_stats=1 -reload=0
             -artifact_prefix="$build/fuzz-artifacts/$t-" "${extra[@]}" "$build/fuzz-corpus/$t" "$seeds/$t")
  if [ "$show" = 1 ]; then
    # Progress: libFuzzer's status lines (pulse, NEW, REDUCE) and any report, as they come.
    set +o pipefail
    "${cmd[@]}" 2>&1 | tee "$log" | grep --line-buffered -E '^#[0-9]+|ERROR|SUMMARY|invariant|==[0-9]+=='
    rc=${PIPESTATUS[0]}
    set -o pipefail
  else
    "${cmd[@]}" >"$log" 2>&1 || rc=$?
  fi
  end=$(date +%s.%N)
  local execs eps
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-?}
  # Over the wall time, seeds included (libFuzzer's own average rounds a short run down to 0).
  eps=$(awk -v n="$execs" -v a="$start" -v b="$end" 'BEGIN { if (n ~ /^[0-9]+$/ && b > a) printf "%d", n / (b - a); else print "?" }')
  local verdict=ok
  local done_runs
  done_runs=$(grep -c -E '^#[0-9]+[[:space:]]+DONE' "$log" || true)
  [ $rc -eq 0 ] && [ "$execs" != "$n" ] && [ "$done_runs" -gt 0 ] && verdict="ok (time limit before $n)"
  [ $rc -eq 72 ] && verdict="interrupted"
  [ $rc -ne 0 ] && [ $rc -ne 72 ] && verdict="FOUND (exit $rc; $(ls "$build"/fuzz-artifacts/"$t"-* 2>/dev/null | tail -1))"
  printf 'fuzz %-7s %12s execs  %8s exec/s  %8.1f s  %s\n' "$t" "$execs" "$eps" \
    "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "$verdict" | tee "$build/fuzz-logs/$t.summary"
  return $rc
}

echo "run.sh: ${targets[*]}: $([ $smoke = 1 ] && echo smoke || echo "runs ${runs:-default}"), $jobs at once, logs in $build/fuzz-logs/"
failed=0
if [ "$jobs" -le 1 ]; then
  for t in "${targets[@]}"; do
    run_one "$t" 1 || failed=1
  done
else
  pids=()
  running=()
  for t in "${targets[@]}"; do
    while [ ${#pids[@]} -ge "$jobs" ]; do
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    done
    run_one "$t" 0 &
    pids+=($!)
    running+=("$t")
  done
  # Progress: each running target's latest libFuzzer status line, every minute.
  while kill -0 "${pids[@]}" 2>/dev/null; do
    for i in $(seq 60); do
      alive=0
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ $alive = 0 ] && break 2
      sleep 1
    done
    for t in "${running[@]}"; do
      l=$(grep -E '^#[0-9]+' "$build/fuzz-logs/$t.log" 2>/dev/null | tail -1 || true)
      [ -n "$l" ] && echo "  $t: $l"
    done
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
fi

echo
echo "target      executions      exec/s   seconds  result"
for t in "${targets[@]}"; do
  sed 's/^fuzz //' "$build/fuzz-logs/$t.summary"
done
exit $failed

#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: Stateline against tshark on every shared capture.

    python3 test_captures.py [--binary build/src/stateline] [--captures ../shared/captures]
                             [--jobs 2] [--timeout 60] [--workers 1,2,4]

For every *.pcap / *.pcapng under the captures directory and for --workers 1, 2 and 4, runs
`stateline --pcap FILE --workers N --summary OUT.json` and checks:
  - exit status 0 (and no signal, no timeout);
  - packets == tshark's packets; sum(outcomes) == packets; sum(outcome_categories) == packets;
  - tcp_packets == tshark's tcp_packets, except that frames tshark dissects only in part
    (tshark_oracle's tcp_partial: truncated or bogus TCP header, IPv4 total length 0) may be
    counted under a malformed outcome named tcp_* / ipv4_* / ipv6_*: then tcp_packets + those
    malformed counts must equal tshark's tcp_packets, and tcp_flows may drop to the flows seen
    in whole frames (tcp_flows_complete); the capture is reported as using the allowance;
  - tcp_flows == tshark's tcp_flows;
  - packets, tcp_packets, tcp_flows and outcomes identical for 1, 2 and 4 workers.
`bytes` is printed but not compared (libpcap clamps a record to the file snaplen, tshark does
not: see tshark_oracle's docstring).

Runs at most --jobs processes (tshark or stateline) at a time. Prints one line per capture,
indented details under it, and ends with the line "N passed, M failed", counting capture x
worker-count checks. Exit 0 when all pass, 1 on any failure, 77 (meson's skip) when the
captures directory or tshark is missing.
"""

import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import tshark_oracle  # noqa: E402

SKIP = 77
REQUIRED_INTS = ("packets", "bytes", "tcp_packets", "tcp_flows")
# Malformed outcome names eligible for the partial-dissection allowance: tcp_*, ipv4_*, ipv6_*
# that name a parse error (tcp_fragment, ipv4_udp, ipv6_other... are well-formed traffic).
ALLOWANCE_PREFIXES = ("tcp_", "ipv4_", "ipv6_")
MALFORMED_RE = re.compile(r"truncated|_bad_|too_deep|too_long|malformed|invalid|short")


def is_malformed_name(name):
    return bool(MALFORMED_RE.search(name))


def find_captures(root):
    found = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".pcap") or f.endswith(".pcapng"):
                found.append(os.path.join(d, f))
    return sorted(found, key=lambda p: os.path.relpath(p, root))


def describe_rc(rc):
    if rc is None:
        return "timeout"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


def run_binary(binary, capture, workers, timeout):
    """Runs one appliance instance; returns a dict with rc, stderr and the parsed summary."""
    with tempfile.TemporaryDirectory(prefix="stateline-test-") as tmp:
        out = os.path.join(tmp, "summary.json")
        cmd = [binary, "--pcap", capture, "--workers", str(workers), "--summary", out]
        res = {"cmd": cmd, "rc": None, "stderr": "", "summary": None, "error": None}
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, cwd=tmp)
            res["rc"] = p.returncode
            res["stderr"] = p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            res["stderr"] = (e.stderr or b"").decode(errors="replace")
            res["error"] = f"timed out after {timeout} s"
            return res
        except OSError as e:
            res["error"] = f"cannot run {binary}: {e}"
            return res
        if res["rc"] == 0:
            try:
                with open(out, encoding="utf-8") as f:
                    res["summary"] = json.load(f)
            except (OSError, ValueError) as e:
                res["error"] = f"no readable summary: {e}"
        return res


def run_oracle(capture):
    try:
        return tshark_oracle.analyse(capture)
    except (tshark_oracle.OracleError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}


def check_one(oracle, res):
    """Checks one (capture, workers) run. Returns (errors, notes, figures or None)."""
    errors, notes = [], []
    if res["error"] and res["rc"] is None:
        return [res["error"]], notes, None
    if res["rc"] != 0:
        tail = res["stderr"].strip().splitlines()[-3:]
        errors.append(f"{describe_rc(res['rc'])}; stderr: {' | '.join(tail) or '(empty)'}")
        return errors, notes, None
    if res["error"]:
        return [res["error"]], notes, None
    s = res["summary"]
    if not isinstance(s, dict):
        return ["summary is not a JSON object"], notes, None
    for k in REQUIRED_INTS:
        if not isinstance(s.get(k), int):
            errors.append(f"summary field {k!r} missing or not an integer")
    outcomes = s.get("outcomes")
    if not isinstance(outcomes, dict) or not all(isinstance(v, int) for v in outcomes.values()):
        errors.append("summary 'outcomes' missing or not {name: integer}")
        outcomes = None
    cats = s.get("outcome_categories")
    if not isinstance(cats, dict) or not all(isinstance(v, int) for v in cats.values()):
        errors.append("summary 'outcome_categories' missing or not {name: integer}")
        cats = None
    if errors:
        return errors, notes, None

    packets, tcp, flows = s["packets"], s["tcp_packets"], s["tcp_flows"]
    fig = {"packets": packets, "bytes": s["bytes"], "tcp_packets": tcp, "tcp_flows": flows,
           "outcomes": {k: v for k, v in outcomes.items() if v}, "allowance": 0}

    if packets != oracle["packets"]:
        errors.append(f"packets {packets} != tshark {oracle['packets']}")
    total = sum(outcomes.values())
    if total != packets:
        errors.append(f"sum(outcomes) {total} != packets {packets}")
    if sum(cats.values()) != packets:
        errors.append(f"sum(outcome_categories) {sum(cats.values())} != packets {packets}")

    allowance = {k: v for k, v in outcomes.items()
                 if v and k.startswith(ALLOWANCE_PREFIXES) and is_malformed_name(k)}
    deficit = oracle["tcp_packets"] - tcp
    used_allowance = False
    if deficit != 0:
        m = sum(allowance.values())
        if 0 < deficit <= oracle["tcp_partial"] and tcp + m == oracle["tcp_packets"] \
                and m <= cats.get("malformed", m):
            used_allowance = True
            fig["allowance"] = deficit
            notes.append("allowance: %d frame(s) tshark dissects only in part counted as %s"
                         % (deficit, ", ".join(f"{k}={v}" for k, v in sorted(allowance.items()))))
        else:
            errors.append(
                f"tcp_packets {tcp} != tshark {oracle['tcp_packets']} (tshark partial frames: "
                f"{oracle['tcp_partial']}; malformed tcp_/ipv4_/ipv6_ outcomes: "
                f"{dict(sorted(allowance.items())) or 'none'})")
    if used_allowance:
        lo, hi = oracle["tcp_flows_complete"], oracle["tcp_flows"]
        if not lo <= flows <= hi:
            errors.append(f"tcp_flows {flows} not in tshark's [{lo}, {hi}] "
                          "(whole frames only .. all frames)")
    elif flows != oracle["tcp_flows"]:
        errors.append(f"tcp_flows {flows} != tshark {oracle['tcp_flows']}")
    return errors, notes, fig


def comparable(fig):
    return (fig["packets"], fig["tcp_packets"], fig["tcp_flows"],
            tuple(sorted(fig["outcomes"].items())))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    ap.add_argument("--captures",
                    default=os.path.normpath(os.path.join(SOURCE_ROOT, "..", "shared", "captures")))
    ap.add_argument("--jobs", type=int, default=2, help="processes at a time (default 2)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per run (default 60)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    ap.add_argument("--filter", default="", help="only captures whose path contains this")
    args = ap.parse_args(argv)

    args.captures = os.path.abspath(args.captures)  # the binary runs in a temp directory
    if not os.path.isdir(args.captures):
        print(f"SKIP: captures directory {args.captures} not found "
              "(expected beside the source tree, or give --captures DIR)")
        return SKIP
    try:
        tshark_oracle.tshark_path()
    except tshark_oracle.OracleError as e:
        print(f"SKIP: {e}: the oracle needs tshark")
        return SKIP
    binary = os.path.abspath(args.binary)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"ERROR: appliance binary {binary} not found or not executable (--binary PATH)")
        print("0 passed, 1 failed")
        return 1
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    captures = [c for c in find_captures(args.captures) if args.filter in c]
    if not captures:
        print(f"SKIP: no *.pcap or *.pcapng under {args.captures}")
        return SKIP

    print(f"binary {binary}; {len(captures)} captures under {args.captures}; "
          f"workers {worker_counts}; {args.jobs} processes at a time")
    sys.stdout.flush()

    passed = failed = 0
    allowance_used = {}  # capture -> worker counts that used the allowance
    lock = threading.Lock()
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        jobs = []
        for cap in captures:  # submitted in order: the pool runs them roughly in order
            o = pool.submit(run_oracle, cap)
            runs = {w: pool.submit(run_binary, binary, cap, w, args.timeout)
                    for w in worker_counts}
            jobs.append((cap, o, runs))
        for cap, o_fut, runs in jobs:
            rel = os.path.relpath(cap, args.captures)
            oracle = o_fut.result()
            results = {w: f.result() for w, f in runs.items()}
            lines = []
            if "error" in oracle:
                # Without the oracle nothing can be compared: every run of this capture fails.
                lines.append(f"  tshark: {oracle['error']}")
                n_fail, n_pass = len(worker_counts), 0
                head = f"FAIL {rel}: tshark failed"
            else:
                figs, n_pass, n_fail = {}, 0, 0
                ref = None
                for w in worker_counts:
                    errs, notes, fig = check_one(oracle, results[w])
                    if fig is not None:
                        figs[w] = fig
                        if ref is None:
                            ref = (w, fig)
                        elif comparable(fig) != comparable(ref[1]):
                            diff = [k for k in ("packets", "tcp_packets", "tcp_flows", "outcomes")
                                    if fig[k] != ref[1][k]]
                            errs.append(f"differs from --workers {ref[0]} in {', '.join(diff)}: "
                                        f"{ {k: fig[k] for k in diff} } vs "
                                        f"{ {k: ref[1][k] for k in diff} }")
                    for n in notes:
                        lines.append(f"  w{w}: note: {n}")
                    for e in errs:
                        lines.append(f"  w{w}: FAIL: {e}")
                    if errs:
                        n_fail += 1
                    else:
                        n_pass += 1
                    if fig is not None and fig["allowance"]:
                        allowance_used.setdefault(rel, []).append(f"w{w}")
                parts = [f"tshark packets={oracle['packets']} tcp={oracle['tcp_packets']} "
                         f"flows={oracle['tcp_flows']}"
                         + (f" partial={oracle['tcp_partial']}" if oracle["tcp_partial"] else "")]
                for w in worker_counts:
                    f = figs.get(w)
                    if f is None:
                        r = results[w]
                        parts.append(f"w{w} " + (r["error"] if r["rc"] is None
                                                 else describe_rc(r["rc"])))
                    else:
                        parts.append(f"w{w} packets={f['packets']} tcp={f['tcp_packets']} "
                                     f"flows={f['tcp_flows']} bytes={f['bytes']}")
                head = f"{'FAIL' if n_fail else 'ok  '} {rel}: " + " | ".join(parts)
            with lock:
                print(head)
                for line in lines:
                    print(line)
                sys.stdout.flush()
            passed += n_pass
            failed += n_fail

    if allowance_used:
        print("partial-dissection allowance used by: "
              + ", ".join(f"{c} ({','.join(ws)})" for c, ws in allowance_used.items()))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

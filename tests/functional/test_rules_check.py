#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: `stateline-rules check FILE`.

    python3 test_rules_check.py [--binary build/tools/stateline-rules] [--source SOURCE_ROOT]

Cases (inputs written to a temporary directory): a good config with rules and groups (exit 0,
the one-line summary with its counts); a bad config with several errors, in the rules and
elsewhere (exit 2, each error printed with its file:line:col); a missing file (exit 2, the
file named); conf/stateline.yaml itself (exit 0); no subcommand (usage error, exit 1); --help
(names check and test, says detection is replayed with the capture).

Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from harness import Checks  # noqa: E402

GOOD = """\
workers: 2
rules:
  - name: syn-to-flood-victim
    match:
      flags: SYN
      victim_of: syn_flood
    action: alert
  - name: no-admin
    match:
      dst_port: 80
      payload: "GET /admin"
      nocase: true
    action: drop
  - name: ssh-per-source
    match:
      dst_port: 22
      flags: SYN
    action: rate_limit
    rate: 20
    per: source
groups:
  - name: web
    prefixes: [192.0.2.0/24]
  - name: mail
    prefixes: [198.51.100.25]
"""

# Each error's expected place (line:col) and a word of its message.
BAD = """\
workers: 0
rules:
  - name: a
    match:
      dst_port: 99999
    action: explode
  - name: b
    match:
      payload: "(unclosed"
    action: drop
rx:
  worker_ring: 1000
"""
BAD_EXPECTED = [
    ("1:10", "workers"),
    ("5:17", "99999"),
    ("6:13", "explode"),
    ("9:16", "(unclosed"),
    ("12:16", "worker_ring"),
]


def run(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "tools", "stateline-rules"))
    ap.add_argument("--source", default=SOURCE_ROOT)
    args = ap.parse_args()

    check = Checks()

    with tempfile.TemporaryDirectory(prefix="stateline-rules-") as tmp:
        good = os.path.join(tmp, "good.yaml")
        bad = os.path.join(tmp, "bad.yaml")
        with open(good, "w") as f:
            f.write(GOOD)
        with open(bad, "w") as f:
            f.write(BAD)

        rc, out, err = run(args.binary, "check", good)
        check("good config: exit 0", rc == 0, f"rc={rc} stderr={err!r}")
        want = f"{good}: OK, 3 rules (1 payload pattern, compiled for Hyperscan), 2 groups"
        check("good config: summary line", out.strip() == want, f"got {out.strip()!r}, want {want!r}")
        check("good config: nothing on stderr", err == "", repr(err))

        rc, out, err = run(args.binary, "check", bad)
        check("bad config: exit 2", rc == 2, f"rc={rc}")
        lines = err.splitlines()
        for place, word in BAD_EXPECTED:
            hit = [l for l in lines if l.startswith(f"{bad}:{place}: ") and word in l]
            check(f"bad config: error at {place} ({word})", len(hit) == 1, "\n" + err)
        errors = [l for l in lines if l.startswith(bad + ":") and not l.startswith(bad + ": ")]
        check("bad config: exactly the expected errors", len(errors) == len(BAD_EXPECTED), "\n" + err)
        check("bad config: error count line", f"{bad}: {len(BAD_EXPECTED)} errors" in lines, "\n" + err)
        check("bad config: no OK summary", "OK" not in out, repr(out))

        missing = os.path.join(tmp, "nonexistent.yaml")
        rc, out, err = run(args.binary, "check", missing)
        check("missing file: exit 2", rc == 2, f"rc={rc}")
        check("missing file: named with the reason", f"{missing}: cannot open" in err, repr(err))

    canonical = os.path.join(args.source, "conf", "stateline.yaml")
    rc, out, err = run(args.binary, "check", canonical)
    check("conf/stateline.yaml: exit 0", rc == 0, f"rc={rc} stderr={err!r}")
    check("conf/stateline.yaml: summary", out.strip() == f"{canonical}: OK, 0 rules, 0 groups", repr(out))

    rc, out, err = run(args.binary)
    check("no subcommand: usage error, exit 1", rc == 1 and "subcommand" in (out + err).lower(), f"rc={rc} {err!r}")

    rc, out, err = run(args.binary, "--help")
    check("--help: exit 0, explains check and test, says detection is replayed",
          rc == 0 and "check" in out and "test FILE --pcap" in out and "Detection is replayed" in out,
          repr(out))

    return check.summary()


if __name__ == "__main__":
    sys.exit(main())

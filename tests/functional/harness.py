# SPDX-License-Identifier: BSD-3-Clause
"""What the functional tests share: the line each check prints and the count behind the closing
"N passed, M failed", waiting for a condition, stopping a Stateline process, reading a pcap, the
control socket through stateline-ctl, and the Prometheus text format. Standard library only, so
that every test runs on Debian's python3 as it is.

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from harness import Checks, wait_for, stop
    check = Checks()
    check("stateline started", p.poll() is None, stderr_text)
    ...
    return check.summary()
"""

import json
import re
import signal
import struct
import subprocess
import sys
import time


class Checks:
    """Prints one line per check, "<name> ok" or "<name> FAIL  <detail>", and counts them.

    The detail explains a failure: it is printed for a failed check (newlines shown as " | ", long
    ones cut in the middle, as both the start of a JSON answer and the end of a stderr matter),
    and for a passed one only if it is one short line (a figure worth seeing). Calling the object
    returns `ok` as a bool, so that a test can stop on a failed prerequisite:
    `if not check("started", ...): return 1`."""

    def __init__(self, width=66, detail_max=1500):
        self.width = width
        self.detail_max = detail_max
        self.passed = 0
        self.failed = 0

    def __call__(self, name, ok, detail=""):
        ok = bool(ok)
        detail = "" if detail is None else str(detail)
        if ok and ("\n" in detail or len(detail) > 160):
            detail = ""
        detail = detail.replace("\n", " | ")
        if len(detail) > self.detail_max:
            half = self.detail_max // 2
            detail = detail[:half] + " ... " + detail[-half:]
        print("%-*s %s%s" % (self.width, name, "ok" if ok else "FAIL", ("  " + detail) if detail else ""), flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok

    def summary(self, extra=""):
        """Prints "N passed, M failed" (and `extra`); the exit status: 1 on any failure."""
        print("%d passed, %d failed%s" % (self.passed, self.failed, extra), flush=True)
        return 1 if self.failed else 0


def wait_for(pred, timeout, step=0.25):
    """pred() until it returns something true (returned), or its last value after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def stop(p, sig=signal.SIGINT, timeout=60):
    """Signals a subprocess.Popen and waits: its exit status, or None if it had to be killed.
    Already gone: its exit status, no signal sent."""
    if p.poll() is not None:
        return p.returncode
    p.send_signal(sig)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


def read_text(path):
    """A file's text ("" if it cannot be read): logs and stderr captures for the details."""
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def pcap_frames(path):
    """The frames of a classic pcap file (either byte order, us or ns), as bytes."""
    out = []
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 24:
        return out
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        off += 16
        out.append(data[off:off + incl])
        off += incl
    return out


def ctl(ctl_binary, sock, *cmd, timeout=20):
    """stateline-ctl on `sock`: (exit status, stdout, stderr)."""
    p = subprocess.run([ctl_binary, "--socket", sock, *cmd], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ctl_json(ctl_binary, sock, *cmd, timeout=20):
    """stateline-ctl --json: (exit status, the answer parsed or None, stderr)."""
    rc, out, err = ctl(ctl_binary, sock, "--json", *cmd, timeout=timeout)
    try:
        return rc, json.loads(out) if out.strip() else None, err
    except ValueError:
        return rc, None, err + " (not JSON: " + out[:200] + ")"


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """Prometheus text format: (families {name: type}, samples [(name, {label: value}, float)])."""
    fams, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            fams[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if m:
                labels = {k: v for k, v in LABEL.findall(m.group(2) or "")}
                samples.append((m.group(1), labels, float(m.group(3))))
    return fams, samples


def total(samples, name, **match):
    """The sum of the samples named `name` whose labels include `match`."""
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in match.items()))


def has(samples, name):
    return any(n == name for n, _, _ in samples)


if __name__ == "__main__":
    sys.exit("harness.py is a module of the functional tests, not a test")

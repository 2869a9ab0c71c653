#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: docs/alerts.md describes what the code has and what the binary writes.

    python3 test_docs_alerts.py --binary build/src/stateline --gen build/tools/stateline-gen \
        --source . [--keep DIR]

From the source tree:
  - every threshold of STATELINE_THRESHOLDS (lib/detect/detect_settings.hpp) has a row in the
    thresholds table of docs/alerts.md with its exact default (and its unit and range, when the
    table has those columns), and every row of that table is a real threshold;
  - every alert type of STATELINE_ALERT_TYPES (lib/detect/alert_types.hpp) has a section (a
    heading that is the type's name), and no such heading names a type the code lacks;
  - the example events in the page's ```json blocks parse and use only documented fields.
From real output: the scenarios syn_flood, syn_scan, stealth_scan_xmas, half_open_exhaustion,
rst_injection, synack_reflection and ack_flood (tools/scenarios) are generated with
stateline-gen into a temporary folder and replayed with --alerts; each must raise at least one
alert, every top-level field seen must have a row in the event schema table, and every evidence
key seen (nested ones in the top_* lists included) and every value of event, reason,
target_kind and severity must be named in `backticks` somewhere in the page (a type may be
named by its section heading instead).

Prints one line per check and "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

PASSED = []
FAILED = []

SCENARIOS = ["syn_flood", "syn_scan", "stealth_scan_xmas", "half_open_exhaustion",
             "rst_injection", "synack_reflection", "ack_flood"]


def check(ok, what):
    (PASSED if ok else FAILED).append(what)
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    return ok


# ---- the code's lists ----

def macro_body(path, name):
    """Text of a multi-line #define NAME(X) ... (continuation backslashes removed)."""
    lines = open(path, encoding="utf-8").read().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*#\s*define\s+" + re.escape(name) + r"\s*\(", line):
            body = []
            j = i
            while True:
                body.append(lines[j].rstrip().rstrip("\\"))
                if not lines[j].rstrip().endswith("\\"):
                    break
                j += 1
            return "\n".join(body)
    raise ValueError(f"#define {name} not found in {path}")


def code_thresholds(source):
    """[(name, default, min, max, unit)] from STATELINE_THRESHOLDS."""
    body = macro_body(os.path.join(source, "lib/detect/detect_settings.hpp"), "STATELINE_THRESHOLDS")
    rows = re.findall(r'X\(\s*(\w+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*"([^"]*)"', body)
    return [(n, int(d), int(lo), int(hi), u) for n, d, lo, hi, u in rows]


def code_alert_types(source):
    body = macro_body(os.path.join(source, "lib/detect/alert_types.hpp"), "STATELINE_ALERT_TYPES")
    return re.findall(r"X\(\s*(\w+)\s*\)", body)


# ---- the page ----

def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tables(doc):
    """Every markdown table as (header cells, [row cells])."""
    out, cur = [], None
    for line in doc.splitlines():
        if line.lstrip().startswith("|"):
            c = cells(line)
            if cur is None:
                cur = (c, [])
            elif all(re.fullmatch(r":?-+:?", x) for x in c if x):
                continue
            else:
                cur[1].append(c)
        else:
            if cur is not None:
                out.append(cur)
            cur = None
    if cur is not None:
        out.append(cur)
    return out


def unquote(cell):
    return cell.strip().strip("`").strip()


def thresholds_table(doc):
    """The table whose header starts 'threshold | default': {name: {column: cell}}."""
    for header, rows in tables(doc):
        h = [x.lower() for x in header]
        if len(h) >= 2 and h[0] == "threshold" and h[1] == "default":
            return h, {unquote(r[0]): dict(zip(h, r)) for r in rows if r}
    return None, {}


def schema_fields(doc):
    """First cells of the event schema table (header 'field | type | meaning')."""
    for header, rows in tables(doc):
        h = [x.lower() for x in header]
        if h and h[0] == "field":
            return {unquote(r[0]) for r in rows if r}
    return set()


def headings(doc):
    out = []
    fence = False
    for line in doc.splitlines():
        if line.startswith("```"):
            fence = not fence
            continue
        m = None if fence else re.match(r"(#{1,6})\s+(.*?)\s*$", line)
        if m:
            out.append((len(m.group(1)), m.group(2)))
    return out


def named(doc, word):
    return f"`{word}`" in doc


def json_examples(doc):
    """Objects from ```json blocks: a whole block if it parses, else each line that does."""
    out, bad = [], []
    for block in re.findall(r"```json\n(.*?)```", doc, re.S):
        try:
            out.append(json.loads(block))
            continue
        except json.JSONDecodeError:
            pass
        for line in block.splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                bad.append(line[:60])
    return out, bad


def evidence_keys(obj, out):
    """Keys of an evidence object, and of the objects in its lists."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(k)
            evidence_keys(v, out)
    elif isinstance(obj, list):
        for v in obj:
            evidence_keys(v, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--source", required=True, help="the source tree")
    ap.add_argument("--keep", help="keep the generated captures and alerts in this folder")
    ap.add_argument("--timeout", type=int, default=120)
    args = ap.parse_args()

    doc_path = os.path.join(args.source, "docs", "alerts.md")
    if not check(os.path.isfile(doc_path), "docs/alerts.md exists"):
        print(f"{len(PASSED)} passed, {len(FAILED)} failed")
        return 1
    doc = open(doc_path, encoding="utf-8").read()

    # Thresholds: one row each, with the code's default (unit and range when the table has them).
    ths = code_thresholds(args.source)
    check(len(ths) >= 10, f"STATELINE_THRESHOLDS parsed ({len(ths)} thresholds)")
    header, table = thresholds_table(doc)
    check(header is not None, "docs/alerts.md has a thresholds table (threshold | default | ...)")
    for name, default, lo, hi, unit in ths:
        row = table.get(name)
        if row is None:
            check(False, f"threshold {name}: a row in the thresholds table")
            continue
        problems = []
        if row.get("default", "").replace(",", "") != str(default):
            problems.append(f"default '{row.get('default')}' != {default}")
        if "unit" in row and row["unit"] != unit:
            problems.append(f"unit '{row['unit']}' != '{unit}'")
        if "range" in row and row["range"].replace(",", "") != f"{lo}..{hi}":
            problems.append(f"range '{row['range']}' != {lo}..{hi}")
        check(not problems, f"threshold {name}: row with default {default}, unit {unit}"
              + ("; " + "; ".join(problems) if problems else ""))
    extra = sorted(set(table) - {t[0] for t in ths})
    check(not extra, f"every row of the thresholds table is a threshold of the code{': extra ' + str(extra) if extra else ''}")

    # Alert types: a section each, and no section for a type the code lacks.
    types = code_alert_types(args.source)
    check(len(types) >= 10, f"STATELINE_ALERT_TYPES parsed ({len(types)} types)")
    heads = [unquote(t) for _, t in headings(doc)]
    for t in types:
        check(t in heads, f"alert type {t}: a section headed '{t}'")
    # Lower-case snake_case headings are type names by the page's convention.
    stray = [h for h in heads if re.fullmatch(r"[a-z]+(_[a-z]+)+", h) and h not in types]
    check(not stray, f"every type-named section is a type of the code{': extra ' + str(stray) if stray else ''}")

    # The examples in the page parse and use documented fields only.
    fields = schema_fields(doc)
    check(len(fields) >= 10, f"docs/alerts.md has an event schema table ({len(fields)} fields)")
    examples, bad = json_examples(doc)
    check(examples and not bad, f"the page's ```json examples parse ({len(examples)} events"
          + (f"; unparsable: {bad}" if bad else "") + ")")
    undoc = sorted({k for e in examples for k in e} - fields)
    check(not undoc, f"the examples use only fields of the schema table{': ' + str(undoc) if undoc else ''}")

    # Real output.
    out = args.keep or tempfile.mkdtemp(prefix="stateline-docs-alerts.")
    os.makedirs(out, exist_ok=True)
    seen_fields, seen_evidence = set(), {}
    seen_values = {k: set() for k in ("event", "reason", "target_kind", "severity", "type")}
    try:
        for name in SCENARIOS:
            scen = os.path.join(args.source, "tools", "scenarios", name + ".yaml")
            pcap = os.path.join(out, name + ".pcap")
            labels = os.path.join(out, name + ".labels.json")
            alerts = os.path.join(out, name + ".alerts.jsonl")
            g = subprocess.run([args.gen, "-q", "--scenario", scen, "--out", pcap, "--labels", labels],
                               capture_output=True, text=True, timeout=args.timeout)
            if not check(g.returncode == 0, f"{name}: generated"):
                print(g.stderr)
                continue
            p = subprocess.run([args.binary, "--pcap", pcap, "--alerts", alerts, "-q", "--no-progress"],
                               capture_output=True, text=True, timeout=args.timeout)
            if not check(p.returncode == 0 and os.path.exists(alerts), f"{name}: stateline --alerts ran"):
                print(p.stderr)
                continue
            try:
                events = [json.loads(l) for l in open(alerts) if l.strip()]
            except json.JSONDecodeError as e:
                check(False, f"{name}: the alerts file is JSON lines ({e})")
                continue
            starts = [e for e in events if e.get("event") == "start"]
            check(bool(starts), f"{name}: {len(starts)} alert(s) ({sorted({e['type'] for e in starts})})")
            for e in events:
                seen_fields.update(e)
                for k in seen_values:
                    if k in e:
                        seen_values[k].add(str(e[k]))
                keys = set()
                evidence_keys(e.get("evidence", {}), keys)
                for k in keys:
                    seen_evidence.setdefault(k, set()).add(e.get("type", "?"))
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    for f in sorted(seen_fields):
        check(f in fields, f"top-level field {f}: a row in the event schema table")
    for k in sorted(seen_evidence):
        check(named(doc, k), f"evidence key {k} (in {', '.join(sorted(seen_evidence[k]))}): named in the page")
    for what, values in seen_values.items():
        for v in sorted(values):
            # A type is named by its section heading as well.
            check(named(doc, v) or (what == "type" and v in heads), f"{what} value {v}: named in the page")

    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())

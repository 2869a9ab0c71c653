#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: the Prometheus /metrics endpoint, scraped by a real Prometheus server.

    python3 test_prometheus.py [--binary build/src/stateline] [--captures ../shared/captures]
                               [--source .]

Stateline runs live on a net_pcap vdev with two RX queues, two workers, both files looped from
memory (infinite_rx=1): StopDDoS's spoofed SYN flood on one queue, the demo capture on the other.
Debian's prometheus (/usr/bin/prometheus) scrapes it every second on loopback. The test reads
the values back through Prometheus' own query API: up, packet rates, connections by state,
handshakes and teardowns, polls per worker, drops by reason, the SYN flood's active alert, and a
scraped value against a direct GET of the same snapshot. Also checked:
- the endpoint's behaviour: 404 for other paths, 405 for other methods, and a client that
  connects and sends nothing does not hold up other scrapes or the control core;
- a second Stateline whose metrics port is taken keeps running and says why;
- bad --metrics-listen values are usage errors (exit 2), and a replay has no endpoint by default;
- docs/grafana: the README names every family served, and every query of the dashboard is
  valid PromQL that Prometheus answers.

Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure, 77 (skip)
when the prometheus package is not installed (tools/bootstrap.sh installs it).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
PROMETHEUS = "/usr/bin/prometheus"
SKIP = 77
sys.path.insert(0, HERE)
from harness import Checks, parse_exposition, read_text, stop, total, wait_for  # noqa: E402


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, method="GET", data=None, timeout=5.0):
    """(status, body text); status 0 and the reason when there is no HTTP answer."""
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


class Prometheus:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def api(self, path, **params):
        status, body = http(self.base + path + ("?" + urllib.parse.urlencode(params) if params else ""), timeout=10)
        if status != 200:
            return {"status": "error", "error": "HTTP %d: %s" % (status, body[:300])}
        return json.loads(body)

    def query(self, expr):
        """The result list of an instant query, or None (with the error printed) if it failed."""
        r = self.api("/api/v1/query", query=expr)
        if r.get("status") != "success":
            print("  query %r failed: %s" % (expr, r.get("error")))
            return None
        return r["data"]["result"]

    def scalar(self, expr):
        r = self.query(expr)
        return float(r[0]["value"][1]) if r else None


def ctl_call(path, req, timeout=5.0):
    """The control socket's answer ("result") to one request, or None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall((json.dumps(req) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        a = json.loads(buf.decode())
        return a.get("result") if a.get("ok") else None
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    ap.add_argument("--captures", default=os.path.join(SOURCE_ROOT, "..", "shared", "captures"))
    ap.add_argument("--source", default=SOURCE_ROOT, help="source tree (for docs/grafana)")
    args = ap.parse_args()
    t_start = time.monotonic()

    if not os.access(PROMETHEUS, os.X_OK):
        print("SKIP: %s not found: install Debian's prometheus package (apt-get install prometheus, or "
              "tools/bootstrap.sh) to run this test" % PROMETHEUS)
        return SKIP
    flood = os.path.join(args.captures, "stopddos", "pkt.TCP.synflood.spoofed.pcap")
    demo = os.path.join(args.source, "conf", "demo.pcap")
    if not os.path.exists(flood):
        print("SKIP: %s not found: the test needs StopDDoS's SYN flood capture" % flood)
        return SKIP

    check = Checks()

    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    # A live Stateline also opens a control socket, on one default path: each instance here gets
    # its own, so that neither this test nor another running at the same time is refused.
    helptext = subprocess.run([args.binary, "--help"], capture_output=True, text=True, timeout=30).stdout
    has_ctl = "--ctl-socket" in helptext
    procs = []
    held = []  # raw client sockets kept open on purpose
    with tempfile.TemporaryDirectory(prefix="stateline-prom-") as tmp:
        try:
            # ---- Stateline live: 2 workers, one looping queue each.
            mport = free_port()
            cfg = os.path.join(tmp, "mbufs.yaml")
            with open(cfg, "w") as fh:
                # infinite_rx keeps each whole file in mbufs (37,841 + 2,158 frames).
                fh.write("rx:\n  mbufs: 65535\n")
                # Monitor-mode rules that the looped traffic matches: the flood's SYNs (would-drop)
                # and the demo's pure ACKs (alert).
                fh.write("rules:\n"
                         "  - name: flood-syn\n    match: {flags: SYN}\n    action: drop\n"
                         "  - name: any-ack\n    match: {flags: ACK}\n    action: alert\n")
            err_a = os.path.join(tmp, "stateline-a.err")
            cmd = [args.binary, "--lcores", "(0-2)@(%s)" % cpus, "--no-huge", "--no-pci", "--no-shconf",
                   "-m", "1024", "--file-prefix=stateline-prom-%d" % os.getpid(),
                   "--vdev", "net_pcap0,rx_pcap=%s,rx_pcap=%s,infinite_rx=1" % (flood, demo), "--",
                   "--config", cfg, "-q", "--metrics-listen", "127.0.0.1:%d" % mport]
            if has_ctl:
                cmd += ["--ctl-socket", os.path.join(tmp, "a.sock")]
            sa = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(err_a, "w"))
            procs.append(sa)
            url = "http://127.0.0.1:%d/metrics" % mport
            line = "stateline: metrics on %s" % url
            started = wait_for(lambda: line in read_text(err_a) or sa.poll() is not None, 30)
            if not check("live: start-up line names the endpoint", started and sa.poll() is None and line in read_text(err_a),
                         read_text(err_a).strip()[-400:]):
                raise RuntimeError("stateline did not start")

            # ---- Prometheus, scraping every second.
            pport = free_port()
            pcfg = os.path.join(tmp, "prometheus.yml")
            with open(pcfg, "w") as fh:
                fh.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                         "scrape_configs:\n  - job_name: stateline\n    static_configs:\n"
                         "      - targets: ['127.0.0.1:%d']\n" % mport)
            plog = os.path.join(tmp, "prometheus.log")
            pr = subprocess.Popen([PROMETHEUS, "--config.file=" + pcfg, "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                                   "--web.listen-address=127.0.0.1:%d" % pport, "--log.level=warn"],
                                  stdout=subprocess.DEVNULL, stderr=open(plog, "w"), cwd=tmp)
            procs.append(pr)
            prom = Prometheus(pport)

            # ---- Meanwhile, the endpoint itself (once the first snapshot is there: 1 s).
            def first_snapshot():
                st, b = http(url)
                smp = parse_exposition(b)[1]
                return (st, smp) if st == 200 and total(smp, "stateline_snapshots_total") >= 1 else None
            got = wait_for(first_snapshot, 10)
            status, samples = got if got else (0, [])
            check("GET /metrics: 200 with stateline_up 1 and a snapshot",
                  status == 200 and total(samples, "stateline_up") == 1, "HTTP %d" % status)
            promtool = shutil.which("promtool") or "/usr/bin/promtool"
            if os.access(promtool, os.X_OK):  # Prometheus' own linter (naming, HELP, TYPE, duplicates)
                lint = subprocess.run([promtool, "check", "metrics"], input=http(url)[1], capture_output=True,
                                      text=True, timeout=30)
                check("promtool check metrics: no complaint", lint.returncode == 0 and not lint.stdout.strip()
                      and not lint.stderr.strip(), (lint.stdout + lint.stderr).strip()[:400])
            # Mitigation families: monitor mode, generation 1, both rules hit, the drop rule's
            # would-drops equal to its hits; the same figures as the control socket's "rules" for
            # the same snapshot (sequence number).
            def rule_sample(smp, fam, rule):
                return [v for n, l, v in smp if n == fam and l.get("rule") == rule]
            check("metrics: stateline_mitigation_inline 0 (monitor)", total(samples, "stateline_mitigation_inline") == 0)
            check("metrics: stateline_rules_generation 1", total(samples, "stateline_rules_generation") == 1)

            def rules_hit():
                smp = parse_exposition(http(url)[1])[1]
                h = rule_sample(smp, "stateline_rule_hits_total", "flood-syn")
                a = rule_sample(smp, "stateline_rule_hits_total", "any-ack")
                return smp if h and a and h[0] > 0 and a[0] > 0 else None
            smp = wait_for(rules_hit, 10) or []
            h = rule_sample(smp, "stateline_rule_hits_total", "flood-syn")
            d = rule_sample(smp, "stateline_rule_drops_total", "flood-syn")
            check("metrics: rule flood-syn hits > 0, would-drops == hits", h and h[0] > 0 and d == h, "%s %s" % (h, d))
            a = rule_sample(smp, "stateline_rule_hits_total", "any-ack")
            ad = rule_sample(smp, "stateline_rule_drops_total", "any-ack")
            check("metrics: rule any-ack (alert) hits > 0, drops 0", a and a[0] > 0 and ad == [0.0], "%s %s" % (a, ad))
            labels = [l for n, l, v in smp if n == "stateline_rule_hits_total"]
            check("metrics: rule labels rule, action in running order",
                  labels == [{"rule": "flood-syn", "action": "drop"}, {"rule": "any-ack", "action": "alert"}], labels)
            if has_ctl:
                same = None
                for _ in range(20):
                    c1 = ctl_call(os.path.join(tmp, "a.sock"), {"cmd": "rules"})
                    m = parse_exposition(http(url)[1])[1]
                    c2 = ctl_call(os.path.join(tmp, "a.sock"), {"cmd": "rules"})
                    if c1 and c2 and c1["seq"] == c2["seq"] == total(m, "stateline_snapshots_total"):
                        same = (c1, m)
                        break
                    time.sleep(0.1)
                if check("metrics vs ctl rules: one snapshot caught", same is not None):
                    c, m = same
                    mine = [(r["name"], r["action"], r["hits"], r["drops"]) for r in c["rules"]]
                    prom_v = [(l["rule"], l["action"], int(v),
                               int(rule_sample(m, "stateline_rule_drops_total", l["rule"])[0]))
                              for n, l, v in m if n == "stateline_rule_hits_total"]
                    check("metrics vs ctl rules: same hits and drops (seq %d)" % c["seq"],
                          mine == prom_v and c["mode"] == "monitor" and c["generation"] == 1, "%s vs %s" % (mine, prom_v))
            status, body404 = http("http://127.0.0.1:%d/nope" % mport)
            check("GET /nope: 404", status == 404, "HTTP %d %s" % (status, body404.strip()))
            status, body405 = http(url, method="POST", data=b"x=1")
            check("POST /metrics: 405", status == 405, "HTTP %d %s" % (status, body405.strip()))

            # Clients that connect and send nothing, or half a request, then stall.
            for payload in (b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):
                s = socket.create_connection(("127.0.0.1", mport), timeout=5)
                if payload:
                    s.sendall(payload)
                held.append(s)
            time.sleep(0.2)
            seq0 = total(parse_exposition(http(url)[1])[1], "stateline_snapshots_total")
            t0 = time.monotonic()
            status, body = http(url, timeout=5)
            dt = time.monotonic() - t0
            check("stalled clients held open: another scrape answered at once", status == 200 and dt < 1.0,
                  "HTTP %d in %.3f s" % (status, dt))

            # A second Stateline whose metrics port is taken keeps running and says so.
            err_b = os.path.join(tmp, "stateline-b.err")
            cmd = [args.binary, "--lcores", "(0-1)@(%s)" % cpus, "--no-huge", "--no-pci", "--no-shconf",
                   "-m", "512", "--file-prefix=stateline-prom-b-%d" % os.getpid(),
                   "--vdev", "net_pcap0,rx_pcap=%s" % demo, "--", "-q", "--metrics-listen", "127.0.0.1:%d" % mport]
            if has_ctl:
                cmd += ["--ctl-socket", os.path.join(tmp, "b.sock")]
            sb = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(err_b, "w"))
            procs.append(sb)
            want = ("stateline: warning: metrics: cannot listen on 127.0.0.1:%d (Address already in use); "
                    "running without /metrics" % mport)
            wait_for(lambda: "tracking on" in read_text(err_b) or sb.poll() is not None, 30)
            time.sleep(1.0)
            alive = sb.poll() is None
            check("port taken: warning on stderr", want in read_text(err_b), read_text(err_b).strip()[-400:])
            check("port taken: still running 1 s after start-up", alive and "tracking on" in read_text(err_b),
                  "exit %s" % sb.poll())
            rc = stop(sb)
            check("port taken: stops cleanly on SIGINT (exit 0)", rc == 0, "exit %s" % rc)

            # Usage errors and the replay default, while Prometheus settles.
            for bad in ("127.0.0.1", "localhost:9750", "300.1.1.1:80", "[::1]:70000", "::1:9750", ""):
                p = subprocess.run([args.binary, "--pcap", demo, "--metrics-listen", bad], capture_output=True,
                                   text=True, timeout=60)
                check("--metrics-listen %r: usage error (exit 2)" % bad, p.returncode == 2 and "ADDR:PORT" in p.stderr,
                      "exit %d %s" % (p.returncode, p.stderr.strip()[:160]))
            p = subprocess.run([args.binary, "--pcap", demo, "-q"], capture_output=True, text=True, timeout=120)
            check("replay: no endpoint unless asked for", p.returncode == 0 and "metrics" not in p.stderr,
                  p.stderr.strip()[-300:])
            p = subprocess.run([args.binary, "--pcap", demo, "-q", "--metrics-listen", "127.0.0.1:%d" % mport],
                               capture_output=True, text=True, timeout=120)
            check("replay: port taken, warns and completes (exit 0)",
                  p.returncode == 0 and "running without /metrics" in p.stderr, p.stderr.strip()[-300:])

            # ---- Prometheus' view.
            def target_up():
                r = prom.api("/api/v1/targets")
                ts = r.get("data", {}).get("activeTargets", []) if r.get("status") == "success" else []
                return [t for t in ts if t.get("health") == "up" and str(mport) in t.get("scrapeUrl", "")]
            up = wait_for(target_up, 30, 0.5)
            if not check("prometheus: target up", bool(up), read_text(plog).strip()[-400:]):
                raise RuntimeError("prometheus never scraped stateline")
            # A few scrapes, so that rate() over 5s has samples.
            wait_for(lambda: (prom.scalar('count_over_time(stateline_up[10s])') or 0) >= 4, 15, 0.5)

            v = prom.scalar("stateline_up")
            check("prometheus: stateline_up == 1", v == 1, v)
            v = prom.scalar('sum(rate(stateline_rx_packets_total[5s]))')
            check("prometheus: packets/s > 0", v is not None and v > 0, "%s pps" % v)
            v = prom.scalar('sum(rate(stateline_rx_bytes_total[5s]))')
            check("prometheus: bytes/s > 0", v is not None and v > 0, "%s B/s" % v)
            r = prom.query("stateline_connections") or []
            states = {x["metric"].get("state"): float(x["value"][1]) for x in r}
            check("prometheus: connections by state, every state",
                  set(states) >= {"half_open", "established", "closing", "time_wait", "closed"}, states)
            check("prometheus: half_open connections > 0 (SYN flood)", states.get("half_open", 0) > 0, states)
            v = prom.scalar("sum(stateline_connections) - sum(stateline_flows_active)")
            check("prometheus: connections by state add up to the active flows", v == 0, v)
            v = prom.scalar("sum(stateline_packets_total) - sum(stateline_rx_packets_total)")
            check("prometheus: packets by outcome add up to the frames received", v == 0, v)
            r = prom.query("stateline_handshakes_total") or []
            got = {x["metric"].get("result") for x in r}
            check("prometheus: handshakes by result",
                  got >= {"completed", "refused", "timeout", "bad_synack_ack", "bad_ack"}, sorted(got))
            r = prom.query("stateline_teardowns_total") or []
            got = {x["metric"].get("kind") for x in r}
            check("prometheus: teardowns by kind", got >= {"fin", "simultaneous", "rst_orig", "rst_resp", "timeout"},
                  sorted(got))
            r = prom.query("stateline_rx_polls_total") or []
            got = {(x["metric"].get("worker"), x["metric"].get("result")) for x in r}
            check("prometheus: busy and idle polls for each of 2 workers",
                  got == {(w, k) for w in ("0", "1") for k in ("busy", "idle")}, sorted(got))
            r = prom.query('sum by (worker) (rate(stateline_rx_packets_total[5s]))') or []
            got = {x["metric"].get("worker"): float(x["value"][1]) for x in r}
            check("prometheus: packets/s per worker, both > 0", len(got) == 2 and all(v > 0 for v in got.values()), got)
            r = prom.query("stateline_drops_total") or []
            got = {x["metric"].get("reason") for x in r}
            check("prometheus: drops by reason",
                  got >= {"untracked_no_room", "conn_records_dropped", "port_imissed", "port_rx_nombuf", "port_ierrors",
                          "tcp_truncated", "ipv4_truncated"}, sorted(got))
            v = prom.scalar("sum(stateline_flows_active) / sum(stateline_flow_table_capacity)")
            check("prometheus: table occupancy in (0, 1]", v is not None and 0 < v <= 1, v)
            v = prom.scalar("max(stateline_snapshot_age_seconds)")
            check("prometheus: snapshot age under 3 s", v is not None and 0 <= v < 3, v)
            sel = 'stateline_alerts_active{type="syn_flood",target="10.10.10.10:25565"}'
            r = wait_for(lambda: prom.query(sel), 20, 0.5) or []
            check("prometheus: active syn_flood alert on 10.10.10.10:25565",
                  len(r) == 1 and r[0]["metric"].get("target_kind") == "victim_endpoint"
                  and r[0]["metric"].get("severity") in ("low", "medium", "high", "critical")
                  and r[0]["metric"].get("group") == "default" and r[0]["value"][1] == "1",
                  [x["metric"] for x in r])
            v = prom.scalar('stateline_alerts_started_total{type="syn_flood"}')
            check("prometheus: alerts started, syn_flood >= 1", v is not None and v >= 1, v)

            # The control core kept taking snapshots while the stalled clients were held.
            seq1 = total(parse_exposition(http(url)[1])[1], "stateline_snapshots_total")
            check("stalled clients: snapshots kept coming", seq1 >= seq0 + 3, "seq %d -> %d" % (seq0, seq1))

            # A scraped value against a direct GET of the same snapshot (same sequence number):
            # equal. If Prometheus happened to miss that snapshot, within the change per interval.
            direct = parse_exposition(http(url)[1])[1]
            dseq = total(direct, "stateline_snapshots_total")
            dval = total(direct, "stateline_rx_packets_total")

            def scraped():
                seqs = prom.query("stateline_snapshots_total[20s]") or []
                vals = prom.query("stateline_rx_packets_total[20s]") or []
                if not seqs:
                    return None
                by_ts = {}
                for series in vals:
                    for ts, val in series["values"]:
                        by_ts[ts] = by_ts.get(ts, 0.0) + float(val)
                pairs = sorted((float(s), by_ts.get(ts)) for ts, s in seqs[0]["values"] if ts in by_ts)
                return pairs if pairs and pairs[-1][0] >= dseq else None
            pairs = wait_for(scraped, 10, 0.5) or []
            same = [v for s, v in pairs if s == dseq]
            if same:
                check("prometheus vs direct GET: same snapshot, same packets", same[0] == dval,
                      "seq %d: prometheus %d, direct %d" % (dseq, same[0], dval))
            else:
                steps = [b[1] - a[1] for a, b in zip(pairs, pairs[1:]) if b[0] > a[0]]
                near = min(pairs, key=lambda p: abs(p[0] - dseq)) if pairs else None
                ok = near is not None and steps and abs(near[1] - dval) <= max(steps) * max(1, abs(near[0] - dseq))
                check("prometheus vs direct GET: within one interval's change", ok,
                      "direct seq %d = %d, nearest scraped %s" % (dseq, dval, near))

            # ---- docs/grafana: the reference names every family; the dashboard's queries work.
            fams = parse_exposition(http(url)[1])[0]
            readme = read_text(os.path.join(args.source, "docs", "grafana", "README.md"))
            missing = sorted(f for f in fams if "`%s`" % f not in readme)
            check("docs/grafana/README.md names every family served (%d)" % len(fams), not missing, missing)
            try:
                with open(os.path.join(args.source, "docs", "grafana", "stateline.json")) as fh:
                    dash = json.load(fh)
            except (OSError, ValueError) as e:
                dash = None
                check("docs/grafana/stateline.json is JSON", False, e)
            if dash is not None:
                variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
                check("dashboard: a Prometheus data source variable",
                      any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables.values()),
                      sorted(variables))
                exprs = []

                def walk(panels):
                    for p in panels:
                        walk(p.get("panels", []))
                        for t in p.get("targets", []):
                            exprs.append((p.get("title"), t.get("expr", "")))
                walk(dash.get("panels", []))
                used = set()
                for _, e in exprs:
                    used |= set(re.findall(r"\bstateline_[a-zA-Z0-9_]+", e))
                unknown = sorted(used - set(fams))
                check("dashboard: every metric it queries is served", not unknown, unknown)
                bad, empty = [], []
                for title, e in exprs:
                    q = (e.replace("$__rate_interval", "5s").replace("$__range", "1m")
                         .replace("$instance", ".*"))
                    r = prom.query(q)
                    if r is None:
                        bad.append(title)
                    elif not r and "> 0" not in e:  # "> 0": no series is a valid answer (no drops)
                        empty.append(title)
                check("dashboard: all %d queries accepted by Prometheus" % len(exprs), not bad, bad)
                check("dashboard: queries return data", not empty, empty)

            # ---- Stop: Stateline still exits cleanly with a client stalled on it.
            rc = stop(sa)
            check("live: SIGINT with a stalled client held: exit 0", rc == 0, "exit %s %s" % (rc, read_text(err_a).strip()[-300:]))
        except RuntimeError as e:
            check("test set-up", False, e)
        finally:
            for s in held:
                s.close()
            for p in procs:
                if p.poll() is None:
                    stop(p, signal.SIGTERM, 15)
            # EAL leaves a live run's runtime folder behind: remove ours (and only ours).
            rundir = "/var/run/dpdk" if os.geteuid() == 0 else os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "dpdk")
            for prefix in ("stateline-prom-%d" % os.getpid(), "stateline-prom-b-%d" % os.getpid()):
                shutil.rmtree(os.path.join(rundir, prefix), ignore_errors=True)

    return check.summary(" (%.1f s)" % (time.monotonic() - t_start))


if __name__ == "__main__":
    sys.exit(main())

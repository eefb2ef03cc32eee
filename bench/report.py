#!/usr/bin/env python3
"""Turns one bench/run.sh output directory into the markdown report.

Usage: report.py OUT_DIR   (OUT_DIR holds meta.txt and raw/)

Every ratio is proxied / direct within the same round; the table shows the median over
rounds and the min-max. Standard library only.
"""

import json
import os
import re
import statistics
import sys

SYSTEMS_INFO = {
    "direct": ("direct (baseline)", "none", "-", "client ns -> nginx 198.18.1.2:8080 over the veth"),
    "haproxy": ("HAProxy 2.6, 1 hop", "no", "L7",
                "nbthread 1, http mode, keep-alive both sides, http-reuse always, no logs"),
    "nginx": ("nginx 1.22 proxy, 1 hop", "no", "L7",
              "worker_processes 1, upstream keepalive 32, proxy_http_version 1.1, no logs"),
    "weft-1hop": ("Weft, 1 hop plaintext L7", "no", "L7",
                  "outbound listener -> endpoint without identity -> nginx (plaintext)"),
    "weft-2hop-l7": ("Weft, 2 hops HBONE mTLS, L7", "yes (TLS 1.3, HBONE h2 CONNECT)", "L7",
                     "client outbound -> HBONE :15008 -> server inbound -> 127.0.0.1:8080 (protocol http)"),
    "weft-2hop-l4": ("Weft, 2 hops HBONE mTLS, L4", "yes (TLS 1.3, HBONE h2 CONNECT)", "L4",
                     "same path, ports declared protocol tcp (bytes copied)"),
    "weft-2hop-l7-permissions": ("Weft, 2 hops HBONE mTLS, L7, 50 permissions", "yes (TLS 1.3, HBONE h2 CONNECT)",
                                 "L7", "as weft-2hop-l7 with 50 TrafficPermission rules (deny by identity and "
                                 "path, audit by header, allow by identity/method/path) under a default of "
                                 "deny on the server proxy; the last allow admits the client"),
    "weft-1hop-bare": ("Weft, 1 hop, no policies", "no", "L7",
                       "as weft-1hop with outlier detection off and no routes"),
    "weft-1hop-policies": ("Weft, 1 hop, realistic policies", "no", "L7",
                           "as weft-1hop with 3 rules (header/path matches), retries with budget, "
                           "timeouts, outlier detection, peak-EWMA"),
    "direct-unpinned": ("direct, unpinned (baseline of the capture systems)", "none", "-",
                        "as direct, with wrk/oha and the backend on every CPU"),
    "weft-2hop-l7-capture": ("Weft, 2 hops HBONE mTLS, L7, client captured", "yes (TLS 1.3, HBONE h2 CONNECT)",
                             "L7", "wrk dials 198.18.1.2:8080; `weft redirect install` in the client ns -> "
                             "client capture :15001 (service VIP = 198.18.1.2) -> HBONE :15008 -> server "
                             "inbound -> 127.0.0.1:8080 (protocol http); proxies as an unprivileged uid, unpinned"),
    "weft-2hop-l4-capture": ("Weft, 2 hops HBONE mTLS, L4, client captured", "yes (TLS 1.3, HBONE h2 CONNECT)",
                             "L4", "same path, ports declared protocol tcp (bytes copied)"),
}

# Systems measured with nothing pinned (proxies, load generator and backend share every
# CPU); their ratios are against direct-unpinned, the others' against direct.
UNPINNED = {"direct-unpinned", "weft-2hop-l7-capture", "weft-2hop-l4-capture"}
BASELINES = {"direct", "direct-unpinned"}


def base_of(system):
    """A system "NAME@base" is NAME run with the WEFT_BASE binary (an A/B in one run);
    "NAME+wN" is NAME with N runtime threads per proxy."""
    system = system[:-len("@base")] if system.endswith("@base") else system
    return re.sub(r"\+w\d+$", "", system)


def info(system):
    name, *rest = SYSTEMS_INFO.get(base_of(system), (system, "?", "?", "?"))
    workers = re.search(r"\+w(\d+)(@base)?$", system)
    if workers:
        name += f", {workers.group(1)} threads per proxy"
    if system.endswith("@base"):
        name += " (WEFT_BASE binary)"
    return (name, *rest)


HOPS = {"direct": 0, "haproxy": 1, "nginx": 1, "weft-1hop": 1, "weft-2hop-l7": 2, "weft-2hop-l4": 2, "weft-2hop-l7-permissions": 2,
        "weft-1hop-bare": 1, "weft-1hop-policies": 1, "direct-unpinned": 0,
        "weft-2hop-l7-capture": 2, "weft-2hop-l4-capture": 2}


def baseline(system):
    """The system a system's ratios are taken against, in the same round."""
    return "direct-unpinned" if base_of(system) in UNPINNED else "direct"


def is_baseline(system):
    return system in BASELINES


def read_metrics(path):
    """Prometheus text -> [(name, {label: value}, value)]; None if nothing was scraped."""
    if not os.path.exists(path) or not os.path.getsize(path):
        return None
    rows = []
    for line in open(path):
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)', line)
        if not m or line.startswith("#"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        try:
            rows.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            pass
    return rows


def metric_sum(rows, name, **want):
    return sum(v for n, labels, v in rows or () if n == name
               and all(labels.get(k) == w for k, w in want.items()))


def read_meta(out):
    meta = {}
    with open(os.path.join(out, "meta.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    return meta


def read_wrk(path):
    if not os.path.exists(path):
        return None
    text = open(path).read()
    for line in text.splitlines():
        if line.startswith("WRKJSON "):
            j = json.loads(line[8:])
            secs = j["duration_us"] / 1e6 if j["duration_us"] else float("nan")
            j["rps"] = j["requests"] / secs
            j["bps"] = j["bytes"] / secs
            j["errors"] = sum(j[k] for k in j if k.startswith("err_"))
            j["text"] = text
            return j
    return {"missing": True, "text": text}


def read_oha(path):
    if not os.path.exists(path):
        return None
    try:
        j = json.load(open(path))
    except (ValueError, OSError):
        return {"missing": True}
    pct = j.get("latencyPercentiles") or {}
    summ = j.get("summary") or {}
    codes = j.get("statusCodeDistribution") or {}
    # The one request in flight when -z expires is reported as an error; it is not one.
    errs = {k: v for k, v in (j.get("errorDistribution") or {}).items() if "deadline" not in k}
    non2xx = sum(v for k, v in codes.items() if not str(k).startswith("2"))
    return {
        "p50_us": pct.get("p50", float("nan")) * 1e6 if pct.get("p50") is not None else float("nan"),
        "p99_us": pct.get("p99", float("nan")) * 1e6 if pct.get("p99") is not None else float("nan"),
        "rps": summ.get("requestsPerSec", float("nan")),
        "success": summ.get("successRate"),
        "non2xx": non2xx,
        "errors": sum(errs.values()),
        "error_kinds": errs,
    }


def read_proc(path):
    res = {"mem": {}, "cpu": {}, "clk_tck": 100}
    if not os.path.exists(path):
        return res
    for line in open(path):
        p = line.split()
        if not p:
            continue
        if p[0] == "clk_tck":
            res["clk_tck"] = int(p[1])
        elif p[0] == "cpu":
            res["cpu"][p[1]] = int(p[2])
        elif p[0] == "uid" and len(p) == 3:
            res.setdefault("uid", {})[p[1]] = p[2]
        elif p[0] == "mem":
            label, name, rss, hwm = p[1], p[2], int(p[3]), int(p[4])
            d = res["mem"].setdefault(name, {})
            if label == "load":
                d["load_rss"] = max(d.get("load_rss", 0), rss)
            else:
                d[label + "_rss"] = rss
                d[label + "_hwm"] = hwm
    return res


def collect(out, systems, rounds):
    raw = os.path.join(out, "raw")
    data = {}
    for r in range(1, rounds + 1):
        for s in systems:
            base = os.path.join(raw, f"r{r}-{s}")
            status = open(base + "-status.txt").read().strip() if os.path.exists(base + "-status.txt") else "not run"
            rate = None
            if os.path.exists(base + "-lat.rate"):
                rate = int(open(base + "-lat.rate").read().strip() or 0)
            data[(r, s)] = {
                "status": status,
                "c10": read_wrk(base + "-c10_100b.wrk.txt"),
                "c1": read_wrk(base + "-c1_100b.wrk.txt"),
                "m1": read_wrk(base + "-c10_1m.wrk.txt"),
                "warm": read_wrk(base + "-warmup.wrk.txt"),
                "oha": read_oha(base + "-lat.oha.json"),
                "ohafix": read_oha(base + "-latfix.oha.json"),
                "rate": rate,
                "proc": read_proc(base + "-proc.txt"),
                "metrics_client": read_metrics(base + "-metrics-client.txt"),
                "metrics_server": read_metrics(base + "-metrics-server.txt"),
            }
    return data


def ok(w):
    return w is not None and not w.get("missing")


def fmt(vals, digits=2, signed=False):
    vals = [v for v in vals if v is not None and v == v]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    sign = "+" if signed else ""
    f = f"{{:{sign}.{digits}f}}"
    if len(vals) == 1:
        return f.format(med)
    return f"{f.format(med)} ({f.format(min(vals))}–{f.format(max(vals))})"


def through_mesh(system, d):
    """What the two proxies of a capture system counted, against what wrk saw: proof
    that the load went client proxy -> mTLS -> server proxy, not around them."""
    runs = [d[k] for k in ("warm", "c10", "c1", "m1") if ok(d[k])]
    wrk = {
        "requests": sum(w["requests"] for w in runs),
        "bytes": sum(w["bytes"] for w in runs),
        # 10 + 10 + 1 + 10: the warm-up, the two 10-connection runs and the 1-connection run
        "conns": sum(n for k, n in (("warm", 10), ("c10", 10), ("c1", 1), ("m1", 10)) if ok(d[k])),
    }
    cm, sm = d["metrics_client"], d["metrics_server"]
    l7 = "-l7-" in base_of(system)
    seen = {"wrk": wrk, "problems": []}
    if cm is None or sm is None:
        seen["problems"].append("no metrics scraped from "
                                + " and ".join(n for n, m in (("the client proxy", cm), ("the server proxy", sm))
                                               if m is None) + ": cannot tell whether the load went through both")
        return seen
    seen["client_requests"] = metric_sum(cm, "weft_proxy_requests_total", direction="outbound")
    seen["client_conns"] = metric_sum(cm, "weft_proxy_connections_total", direction="outbound")
    seen["passthrough_conns"] = metric_sum(cm, "weft_proxy_connections_total", direction="outbound",
                                           destination_service="passthrough")
    seen["client_conns"] -= seen["passthrough_conns"]
    seen["server_requests"] = metric_sum(sm, "weft_proxy_requests_total", direction="inbound",
                                         connection_security="mutual_tls")
    seen["server_conns"] = metric_sum(sm, "weft_proxy_connections_total", direction="inbound",
                                      connection_security="mutual_tls")
    if seen["passthrough_conns"]:
        seen["problems"].append(f"the client proxy passed {seen['passthrough_conns']:.0f} captured connections "
                                f"straight through (not to the service, outside the mesh)")
    if l7:
        checks = (("client_requests", "requests", "the client proxy's outbound requests"),
                  ("server_requests", "requests", "the server proxy's inbound mTLS requests"))
    else:
        # At L4 there are no requests to count: every wrk connection must have been
        # accepted by the client proxy as the service and have arrived at the server
        # proxy over mTLS. (Not bytes: weft_proxy_tcp_bytes_total adds nothing for a
        # connection that ends in an error, as wrk's do mid-response at the end of a
        # 1 MiB run; it showed 2-100 % of wrk's bytes from one round to the next.)
        checks = (("client_conns", "conns", "the client proxy's outbound connections"),
                  ("server_conns", "conns", "the server proxy's inbound mTLS connections"))
    for key, wkey, what in checks:
        if seen[key] < wrk[wkey]:
            seen["problems"].append(f"{what}: {seen[key]:.0f}, fewer than wrk's {wrk[wkey]} {wkey}: "
                                    f"some load did not go through both proxies")
    return seen


def main():
    out = sys.argv[1]
    meta = read_meta(out)
    systems = meta["systems"].split()
    rounds = int(meta["rounds"])
    data = collect(out, systems, rounds)
    lat_oha = meta.get("lat_tool") == "oha"
    problems = []

    lat_rate = int(meta.get("lat_rate", "0") or 0)

    def latency(r, s):
        d = data[(r, s)]
        if lat_oha:
            o = d["ohafix"]
            if o and not o.get("missing"):
                return o["p50_us"], o["p99_us"]
            return None, None
        if ok(d["c1"]):
            return d["c1"]["p50_us"], d["c1"]["p99_us"]
        return None, None

    # Per-round figures.
    rows = {}
    traffic = {s: [] for s in systems}
    for s in systems:
        acc = {k: [] for k in ("rps10", "rps1", "p50", "p99", "m1", "cpu", "cpu1", "idle", "load", "hwm",
                               "abs_rps10", "abs_rps1", "abs_p50", "abs_p99", "abs_mibs", "rate",
                               "fixfrac", "own_p50", "own_p99", "cpu_mib")}
        per_proxy = {}
        for r in range(1, rounds + 1):
            d, base = data[(r, s)], data.get((r, baseline(s)))
            if d["status"] != "ok":
                problems.append(f"round {r}, {s}: {d['status']}")
            if r == 1 and base is None:
                problems.append(f"{s}: {baseline(s)} was not measured in this run, so no ratios")
            if base_of(s) in UNPINNED and not is_baseline(s) and d["status"] == "ok":
                uids = d["proc"].get("uid", {})
                for name in ("client", "server"):
                    if uids.get(name) in (None, "0"):
                        problems.append(f"round {r}, {s}: the {name} proxy ran as "
                                        f"{'root' if uids.get(name) == '0' else 'an unrecorded uid'}, "
                                        f"not as the unprivileged PROXY_UID")
                if d["status"] == "ok":
                    seen = through_mesh(s, d)
                    traffic[s].append(seen)
                    problems.extend(f"round {r}, {s}: {line}" for line in seen["problems"])
            for key, label in (("warm", "warm-up 10 conns 100 B"), ("c10", "10 conns 100 B"),
                               ("c1", "1 conn 100 B"), ("m1", "10 conns 1 MiB")):
                w = d[key]
                if w is None:
                    continue
                if w.get("missing"):
                    problems.append(f"round {r}, {s}, {label}: wrk gave no result")
                    continue
                if w["errors"]:
                    problems.append(
                        f"round {r}, {s}, {label}: {w['requests']} requests, errors connect {w['err_connect']}, "
                        f"read {w['err_read']}, write {w['err_write']}, timeout {w['err_timeout']}, "
                        f"non-2xx/3xx {w['err_status']}")
                if key == "m1" and w["requests"] and w["bytes"] / w["requests"] < 1048576:
                    problems.append(f"round {r}, {s}, {label}: {w['bytes'] / w['requests']:.0f} bytes per response (< 1 MiB)")
            for okey, target in (("ohafix", lat_rate), ("oha", d["rate"])):
                o = d[okey]
                what = f"oha at {target} req/s"
                if o and not o.get("missing"):
                    if o["errors"] or o["non2xx"]:
                        problems.append(f"round {r}, {s}, {what}: {o['errors']} errors {o['error_kinds']}, "
                                        f"{o['non2xx']} non-2xx")
                    if target and o["rps"] < 0.95 * target:
                        problems.append(f"round {r}, {s}, {what}: only {o['rps']:.0f} req/s achieved")
                if lat_oha and d["status"] == "ok" and (not o or o.get("missing")):
                    problems.append(f"round {r}, {s}: {what} produced no result")
            if lat_oha and ok(d["c1"]) and d["c1"]["rps"]:
                acc["fixfrac"].append(lat_rate / d["c1"]["rps"])
                if lat_rate > 0.6 * d["c1"]["rps"]:
                    problems.append(f"round {r}, {s}: the common latency rate {lat_rate} req/s is "
                                    f"{lat_rate / d['c1']['rps']:.0%} of this system's 1-connection maximum "
                                    f"({d['c1']['rps']:.0f} req/s): queueing, not proxy latency, dominates")
            o = d["oha"]
            if lat_oha and o and not o.get("missing"):
                acc["own_p50"].append(o["p50_us"])
                acc["own_p99"].append(o["p99_us"])

            if ok(d["c10"]):
                acc["abs_rps10"].append(d["c10"]["rps"])
            if ok(d["c1"]):
                acc["abs_rps1"].append(d["c1"]["rps"])
            if ok(d["m1"]):
                acc["abs_mibs"].append(d["m1"]["bps"] / 1048576)
            p50, p99 = latency(r, s)
            if p50 is not None:
                acc["abs_p50"].append(p50)
                acc["abs_p99"].append(p99)
            if d["rate"]:
                acc["rate"].append(d["rate"])
            if base and ok(d["c10"]) and ok(base["c10"]):
                acc["rps10"].append(d["c10"]["rps"] / base["c10"]["rps"])
            if base and ok(d["c1"]) and ok(base["c1"]):
                acc["rps1"].append(d["c1"]["rps"] / base["c1"]["rps"])
            if base and ok(d["m1"]) and ok(base["m1"]):
                acc["m1"].append(d["m1"]["bps"] / base["m1"]["bps"])
            if base:
                bp50, bp99 = latency(r, baseline(s))
                if p50 is not None and bp50 is not None:
                    acc["p50"].append(p50 - bp50)
                    acc["p99"].append(p99 - bp99)
            proc = d["proc"]
            tick_us = 1e6 / proc["clk_tck"]
            if not is_baseline(s) and ok(d["c10"]) and "c10_100b" in proc["cpu"] and d["c10"]["requests"]:
                acc["cpu"].append(proc["cpu"]["c10_100b"] * tick_us / d["c10"]["requests"])
            if not is_baseline(s) and ok(d["m1"]) and "c10_1m" in proc["cpu"] and d["m1"]["bytes"]:
                acc["cpu_mib"].append(proc["cpu"]["c10_1m"] * tick_us / (d["m1"]["bytes"] / 1048576))
            if not is_baseline(s) and ok(d["c1"]) and "c1_100b" in proc["cpu"] and d["c1"]["requests"]:
                acc["cpu1"].append(proc["cpu"]["c1_100b"] * tick_us / d["c1"]["requests"])
            mem = proc["mem"]
            if mem:
                idle = [m["idle_rss"] for m in mem.values() if "idle_rss" in m]
                load = [max(m.get("load_rss", 0), m.get("after_rss", 0)) for m in mem.values()]
                hwm = [m["after_hwm"] for m in mem.values() if "after_hwm" in m]
                if idle:
                    acc["idle"].append(max(idle) / 1024)
                if any(load):
                    acc["load"].append(max(load) / 1024)
                if hwm:
                    acc["hwm"].append(max(hwm) / 1024)
                for name, m in mem.items():
                    pp = per_proxy.setdefault(name, {"idle": [], "load": [], "hwm": []})
                    if "idle_rss" in m:
                        pp["idle"].append(m["idle_rss"] / 1024)
                    if m.get("load_rss") or m.get("after_rss"):
                        pp["load"].append(max(m.get("load_rss", 0), m.get("after_rss", 0)) / 1024)
                    if "after_hwm" in m:
                        pp["hwm"].append(m["after_hwm"] / 1024)
        rows[s] = (acc, per_proxy)

    p = print
    p("# Weft data-plane benchmark")
    p()
    p(f"- date: {meta['date']}")
    p(f"- machine: nproc {meta['nproc']}, CPU {meta['cpu_model']}, kernel {meta['host_kernel']}")
    p(f"- load average before the run: {meta['load_before']} (at script start, before the build: "
      f"{meta['load_at_start']}); busiest processes then (top, %CPU of one core): {meta.get('busiest_before', '?')}")
    if meta.get("spin", "0") == "1":
        p("- SPIN=1: a SCHED_IDLE busy loop on each core kept the vCPUs out of idle (removes the "
          "hypervisor's wake-up latency; not the default configuration)")
    if meta.get("nice", "0") != "0":
        p(f"- every measured process (proxies, backend, wrk, oha) ran at niceness {meta['nice']} "
          f"because the shared host was busy; all systems alike")
    p(f"- command: `{meta['command']}` ({rounds} rounds x {meta['duration_s']} s per test, systems interleaved "
      f"in the order {' '.join(systems)})")
    p(f"- versions: {meta['weft']}; nginx {meta['nginx']}; HAProxy {meta['haproxy']}; wrk {meta['wrk']}")
    p(f"- {meta['lat_note']}")
    p()
    pinned = [s for s in systems if base_of(s) not in UNPINNED]
    unpinned = [s for s in systems if base_of(s) in UNPINNED]
    all_cpus = meta.get("all_cpus", "all")
    p("Ratios are proxied ÷ direct in the same round (pinned systems: ÷ direct; unpinned capture "
      "systems: ÷ direct-unpinned); cells are median (min–max) over rounds. "
      "CPU is all proxy processes of that system together (both proxies for two hops), "
      "from /proc/PID/stat over the 10-connection 100 B run. RSS is per proxy process "
      "(the larger of the two for two hops): idle = ready, before any request; "
      "loaded = highest 1 s sample during the 10-connection runs; peak = VmHWM after all load.")

    def main_table(group):
        p()
        p("| system | req/s, 10 conns | req/s, 1 conn | added p50, 1 conn (µs) | added p99, 1 conn (µs) "
          "| 1 MiB bodies | CPU µs/request | RSS idle / loaded / peak (MB) |")
        p("|---|---|---|---|---|---|---|---|")
        for s in group:
            acc, _ = rows[s]
            name = info(s)[0]
            if is_baseline(s):
                p(f"| {name} | 1 = {fmt(acc['abs_rps10'], 0)} req/s | 1 = {fmt(acc['abs_rps1'], 0)} req/s "
                  f"| p50 = {fmt(acc['abs_p50'], 0)} µs | p99 = {fmt(acc['abs_p99'], 0)} µs "
                  f"| 1 = {fmt(acc['abs_mibs'], 0)} MiB/s | – | – |")
                continue
            mem = "n/a"
            if acc["idle"]:
                mem = (f"{statistics.median(acc['idle']):.1f} / "
                       f"{statistics.median(acc['load']) if acc['load'] else float('nan'):.1f} / "
                       f"{statistics.median(acc['hwm']) if acc['hwm'] else float('nan'):.1f}")
            p(f"| {name} | {fmt(acc['rps10'])} | {fmt(acc['rps1'])} | {fmt(acc['p50'], 0, True)} "
              f"| {fmt(acc['p99'], 0, True)} | {fmt(acc['m1'])} | {fmt(acc['cpu'], 1)} | {mem} |")

    if pinned and unpinned:
        p()
        p(f"### Pinned: systems under test on core {meta.get('proxy_core', '0')}, load generator and "
          f"backend on core {meta.get('load_core', '1')} (ratios ÷ direct)")
    if pinned:
        main_table(pinned)
    if unpinned:
        p()
        p(f"### Unpinned, client side captured transparently: proxies, load generator and backend share "
          f"CPUs {all_cpus} (ratios ÷ direct-unpinned)")
        main_table(unpinned)
    p()
    p("## What was on")
    p()
    p("All: HTTP/1.1 with keep-alive from wrk/oha to the first hop and to nginx; GET of a static file of "
      "100 B (req/s, latency, CPU) or 1 MiB (throughput, bytes/s); `wrk -t1` with 10 connections and "
      "with 1 connection; one worker/thread per proxy, a one-worker nginx backend; two network "
      "namespaces joined by a veth pair (198.18.1.1 client, 198.18.1.2 server).")
    if pinned:
        p(f"Pinned systems ({', '.join(pinned)}): systems under test on core {meta.get('proxy_core', '0')} "
          f"(`taskset -c`; both proxies of two hops share it), load generator and backend on core "
          f"{meta.get('load_core', '1')}.")
    if unpinned:
        p(f"Unpinned systems ({', '.join(unpinned)}): nothing pinned, the proxies, wrk/oha and the backend "
          f"all run on CPUs {all_cpus}; for the capture systems `weft redirect install --proxy-uid "
          f"{meta.get('proxy_uid', '?')} --no-dns` in the client namespace sends wrk's connections to the "
          f"client proxy's capture listener (rules removed when the system stops), and both proxies run "
          f"as uid {meta.get('proxy_uid', '?')} (`setpriv`, no capabilities) with `--workers 1`.")
    p()
    p("| system | hops | mTLS | layer | setup |")
    p("|---|---|---|---|---|")
    for s in systems:
        name, mtls, layer, setup = info(s)
        p(f"| {name} | {HOPS.get(base_of(s), '?')} | {mtls} | {layer} | {setup} |")
    p()
    p("## Absolute figures (median over rounds)")
    p()
    if lat_oha:
        p(f"Latency columns: oha, 1 connection, open loop with coordinated-omission correction; "
          f"first at {lat_rate} req/s for every system (the main table's added latency), then at "
          f"{meta['lat_fraction']} x the system's own 1-connection maximum from the same round.")
    else:
        p("Latency: wrk at 1 connection, closed loop (oha was not available).")
    p()
    p("| system | req/s, 10 conns | req/s, 1 conn | 1 MiB, 10 conns (MiB/s) | CPU µs per MiB "
      "| CPU µs/request, 1 conn "
      "| p50 / p99 (µs) at the common rate | common rate ÷ own 1-conn max "
      "| p50 / p99 (µs) at the own-max fraction | that rate (req/s) |")
    p("|---|---|---|---|---|---|---|---|---|---|")
    for s in systems:
        acc, _ = rows[s]
        med = lambda k, d=0: (f"{statistics.median(acc[k]):.{d}f}" if acc[k] else "n/a")  # noqa: E731
        p(f"| {info(s)[0]} | {med('abs_rps10')} | {med('abs_rps1')} | {med('abs_mibs', 1)} "
          f"| {med('cpu_mib') if not is_baseline(s) else '–'} | {med('cpu1', 1) if not is_baseline(s) else '–'} | {med('abs_p50')} / {med('abs_p99')} "
          f"| {med('fixfrac', 2) if lat_oha else '–'} "
          f"| {(med('own_p50') + ' / ' + med('own_p99')) if lat_oha else '–'} "
          f"| {med('rate') if lat_oha else '–'} |")
    p()
    p("## Memory per proxy process (MB, median over rounds)")
    p()
    p("| system | proxy | RSS idle | RSS loaded | VmHWM after load |")
    p("|---|---|---|---|---|")
    for s in systems:
        _, per_proxy = rows[s]
        for name, m in sorted(per_proxy.items()):
            med = lambda k: (f"{statistics.median(m[k]):.1f}" if m[k] else "n/a")  # noqa: E731
            p(f"| {info(s)[0]} | {name} | {med('idle')} | {med('load')} | {med('hwm')} |")
    p()
    captured = [s for s in systems if traffic[s]]
    if captured:
        p("## Through the mesh (capture systems)")
        p()
        p("What each proxy's own metrics counted over the whole round (from `/metrics` on its metrics "
          "listener, read before it stopped), median over rounds, against what wrk counted in its four "
          "runs (warm-up, 10 and 1 connections at 100 B, 10 connections at 1 MiB; the curl checks and "
          "oha add a few more). Client: outbound to the service, captured; server: inbound over "
          "HBONE with `connection_security=\"mutual_tls\"` (at L7 the client proxy pools its upstream "
          "connections, so the server sees fewer than wrk opened; requests are what is checked). "
          "Passthrough: captured connections that did not match the service and went straight to their "
          "destination (must be 0).")
        p()
        p("| system | wrk requests / conns | client requests / conns | server mTLS requests / conns "
          "| passthrough conns |")
        p("|---|---|---|---|---|")
        for s in captured:
            t = [x for x in traffic[s] if "client_requests" in x]
            if not t:
                p(f"| {info(s)[0]} | n/a | n/a | n/a | n/a | n/a |")
                continue
            med = lambda k: f"{statistics.median(x[k] for x in t):.0f}"  # noqa: E731
            l7 = "-l7-" in base_of(s)
            req = (lambda k: med(k)) if l7 else (lambda k: "–")  # noqa: E731
            wrk_req = statistics.median(x["wrk"]["requests"] for x in t)
            wrk_conns = statistics.median(x["wrk"]["conns"] for x in t)
            p(f"| {info(s)[0]} | {wrk_req:.0f} / {wrk_conns:.0f} "
              f"| {req('client_requests')} / {med('client_conns')} "
              f"| {req('server_requests')} / {med('server_conns')} "
              f"| {med('passthrough_conns')} |")
        p()
    p("## Problems seen")
    p()
    if problems:
        for line in problems:
            p(f"- {line}")
    else:
        p("None: every wrk and oha run finished with zero socket errors and only 2xx responses, "
          "and every proxy process was alive at the end of each round"
          + (" (capture systems: both proxies counted all of wrk's load, none passed through, "
             "both ran unprivileged)." if captured else "."))


if __name__ == "__main__":
    main()

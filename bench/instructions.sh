#!/usr/bin/env bash
# Instructions and heap allocations per proxied request, counted by callgrind:
# deterministic, so two builds can be compared on a busy machine where wall-clock
# figures are noise.
#
#   bench/instructions.sh BINARY [BINARY…]      e.g. /tmp/weft-before target/release/weft
#   HOPS=2 bench/instructions.sh BINARY [BINARY…]
#       two proxies with HBONE mTLS between them; one row per binary and proxy.
#   POLICIES=compare bench/instructions.sh BINARY
#   PERMISSIONS=compare bench/instructions.sh BINARY
#       two hops, the server proxy measured twice: with no permissions, and with 50
#       mixed L4/L7 authorization rules under a default of deny (20 denials by
#       identity, 10 by path, 10 audits by header, 10 allows of which the last lets
#       the benchmark's GETs in); prints the ratios.
#   TELEMETRY=compare bench/instructions.sh BINARY
#       two hops, each proxy measured with three telemetry configs: `off` (request
#       metrics disabled, no tracing), `on` (metrics, and tracing at 1% to an OTLP
#       collector that accepts every export: a Python grpcio sink when
#       COLLECTOR_PYTHON (default python3) has grpcio, else an address nothing listens
#       on, whose failed exports are counted too), and `logs` (`on` plus a JSON access
#       log to a file); prints the ratios to `off`.
#   ORDER=FILE bench/instructions.sh BINARY
#       two hops, and writes FILE: the binary's functions that run while either proxy
#       serves (counted from ready on), those run per request first, hottest first,
#       as the linker's symbol names — the link order of the serving code
#       (crates/weft/symbol-order.txt; see crates/weft/build.rs, ADR 35).
#       one binary, one hop, twice: with no policies (no routes, no outlier detection)
#       and with a realistic set (three rules with header and path matches, retries
#       with the budget, request and per-try timeouts, outlier detection, peak-EWMA);
#       prints the ratios.
#
# One hop (default): one `weft proxy --workers 1` in local-file mode (explicit listener
# → a plaintext endpoint, a Python keep-alive backend) under `valgrind --tool=callgrind`,
# driven by one keep-alive client for N1 and then N2 GETs.
#
# Two hops (HOPS=2): a client-side proxy (workload `web`, 127.0.0.1, explicit outbound
# listener to service `api`) and a server-side proxy (workload `api`, 127.0.0.2, HBONE
# listener) that forwards to the backend, mTLS between them with a P-256 CA and SPIFFE
# leaves (spiffe://cluster.local/ns/default/sa/{web,api}) made here with openssl. Each
# proxy is measured in turn under callgrind while the other runs natively, both
# `--workers 1`.
#
# Per request = (count at N2 − count at N1) ÷ (N2 − N1), which cancels startup and
# shutdown, for:
#   instructions  callgrind's Ir (user space only), less what aws-lc's jitter entropy
#                 source (`jent_*`, called once to seed its DRBG when TLS is first used)
#                 executes: some 420 M instructions at startup in the two-hop mode whose
#                 number varies from run to run by up to 2 M with timing, which would
#                 otherwise move a two-hop per-request figure by 1% or more at the
#                 default N;
#   allocations   calls into the C allocator (malloc, calloc, realloc, posix_memalign,
#                 aligned_alloc/memalign, … and their __libc_ names), read from the
#                 callgrind out file: every `calls=` line whose callee is one of them and
#                 whose caller is not (glibc's realloc(NULL, n) calls malloc: one
#                 allocation). Frees are not counted; a build with another global
#                 allocator (mimalloc, jemalloc) needs its entry points in ALLOC_FNS
#                 (space-separated names), or it reports only what still goes to libc.
#
# Needs valgrind and python3 (and openssl for HOPS=2); no root (127.0.0.2 is on Linux's
# loopback). Ports on loopback: PORT_BASE (16000) to PORT_BASE+90. Knobs: N1 (200),
# N2 (2200), HOPS (1), POLICIES, PORT_BASE, ALLOC_FNS, KEEP_CG (a directory the
# callgrind out files are copied to, for callgrind_annotate; with TELEMETRY=compare,
# each config's files end in `.off`, `.on` and `.logs`). The temporary directory, private
# keys included, is removed on exit.
set -euo pipefail
N1=${N1:-200}
N2=${N2:-2200}
PORT_BASE=${PORT_BASE:-16000}
HOPS=${HOPS:-1}
[ -z "${ORDER:-}" ] || HOPS=2 # the order comes from the two-hop run
[ $# -ge 1 ] || { echo "usage: [HOPS=2] [POLICIES=compare|PERMISSIONS=compare|TELEMETRY=compare] $0 BINARY [BINARY…]" >&2; exit 2; }
case $HOPS in 1 | 2) ;; *) echo "HOPS is 1 or 2, not '$HOPS'" >&2; exit 2 ;; esac
[ "${PERMISSIONS:-}" != compare ] || HOPS=2
[ "${TELEMETRY:-}" != compare ] || HOPS=2
if [ "${POLICIES:-}" = compare ] && [ "$HOPS" != 1 ]; then
  echo "POLICIES=compare is a one-hop comparison; leave HOPS unset" >&2; exit 2
fi
[ "$N2" -gt "$N1" ] || { echo "N2 ($N2) must be larger than N1 ($N1)" >&2; exit 2; }
for cmd in valgrind python3 $([ "$HOPS" = 2 ] && echo openssl); do
  command -v "$cmd" >/dev/null || { echo "$cmd is needed (apt-get install $cmd)" >&2; exit 2; }
done
for bin in "$@"; do
  [ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 2; }
done
work=$(mktemp -d -t weft-instructions-XXXXXX)
pids=() # every background process this script started and has not stopped yet
cleanup() {
  local p
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP_CG:-}" ]; then mkdir -p "$KEEP_CG" && cp "$work"/cg.* "$KEEP_CG"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# start CMD…: runs CMD in the background, its pid in $started.
start() {
  "$@" & started=$!
  pids+=("$started")
}
# stop PID [SIGNAL]: signals one process started here and waits for it.
stop() {
  local p keep=()
  kill -"${2:-TERM}" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in ${pids[@]+"${pids[@]}"}; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=(${keep[@]+"${keep[@]}"})
}

admin=$PORT_BASE admin2=$((PORT_BASE + 1)) hbone=$((PORT_BASE + 8))
listen=$((PORT_BASE + 80)) app=$((PORT_BASE + 90))
cat > "$work/backend.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = BIG if self.path == "/1m" else b"ok\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.do_GET()
    def log_message(self, *a): pass
BIG = bytes(range(256)) * 4096
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
cat > "$work/client.py" <<'PY'
import http.client, sys, time
port, n, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.time() + 120
while True:  # the proxy starts slowly under valgrind
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/", headers={"host": host}); r = c.getresponse(); r.read()
        if r.status == 200: break
    except OSError:
        pass
    if time.time() > deadline: sys.exit("the proxy never answered")
    time.sleep(0.2)
for _ in range(n - 1):
    c.request("GET", "/", headers={"host": host}); r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"status {r.status}")
# With a fourth argument: that many 1 MiB downloads and uploads too (ORDER mode, so
# the bulk path is in the profile; the same number at N1 and N2, so it cancels).
big = bytes(range(256)) * 4096
for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 0):
    c.request("GET", "/1m", headers={"host": host}); r = c.getresponse()
    if len(r.read()) != len(big) or r.status != 200: sys.exit("short 1 MiB download")
    c.request("POST", "/", body=big, headers={"host": host}); r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"upload: status {r.status}")
PY
# Waits until ADDR:PORT listens (read from /proc/net/tcp, so the waiting costs the
# measured proxy nothing) or process PID has exited.
cat > "$work/listening.py" <<'PY'
import os, socket, sys, time
addr, port, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(addr), "little"), port)
deadline = time.time() + 120
while time.time() < deadline:
    with open("/proc/net/tcp") as f:
        if any(l.split()[1] == want and l.split()[3] == "0A" for l in list(f)[1:]):
            sys.exit(0)
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit(f"the proxy meant to listen on {addr}:{port} exited")
    time.sleep(0.1)
sys.exit(f"nothing listens on {addr}:{port} after 120 s")
PY
# Self Ir per function of BINARY's own code in two callgrind out files (N1, N2): the
# functions whose count grew, hottest first, one linker symbol name per line.
cat > "$work/order.py" <<'PY'
import os, re, sys
def costs(path, binary):
    names, obs, ob, fn, positions, call, out = {}, {}, "", "", 1, False, {}
    def name(spec, table):
        m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table[m.group(1)]
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("positions:"):
                positions = len(line.split()) - 1
            elif line.startswith("ob="):
                ob = name(line[3:].rstrip("\n"), obs)
            elif line.startswith("fn="):
                fn = name(line[3:].rstrip("\n"), names)
            elif line.startswith(("cfn=", "cfi=", "cob=")):
                if line.startswith("cfn="):
                    name(line[4:].rstrip("\n"), names)
                elif line.startswith("cob="):
                    name(line[4:].rstrip("\n"), obs)
            elif line.startswith("calls="):
                call = True
            elif line[:1] in "0123456789+-*":
                if call:
                    call = False
                elif os.path.realpath(ob) == binary:
                    parts = line.split()
                    if len(parts) > positions:
                        key = re.sub(r"'\d+$", "", fn)
                        out[key] = out.get(key, 0) + int(parts[positions])
    return out
# Per request first (what grew from N1 to N2, hottest first), then everything else
# that ran while serving (first connections: handshakes, set-up), most run first.
binary = os.path.realpath(sys.argv[1])
grew, ran = {}, {}
for before, after in zip(sys.argv[2::2], sys.argv[3::2]):
    a, b = costs(before, binary), costs(after, binary)
    for fn, ir in b.items():
        ran[fn] = ran.get(fn, 0) + ir
        if ir > a.get(fn, 0):
            grew[fn] = grew.get(fn, 0) + ir - a.get(fn, 0)
for fn, _ in sorted(grew.items(), key=lambda kv: (-kv[1], kv[0])):
    print(fn)
for fn, _ in sorted(ran.items(), key=lambda kv: (-kv[1], kv[0])):
    if fn not in grew:
        print(fn)
PY
# Ir and allocations of one callgrind out file (see the header), printed as "IR ALLOCS".
# Format: `fn=` sets the current function, `cfn=` the callee of the next `calls=N …`
# line, whose next line is the call's inclusive cost; other cost lines are the current
# function's own. Names are compressed as "(id) name" on first use and "(id)" after.
cat > "$work/counts.py" <<'PY'
import os, re, sys
ALLOC = {"malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
         "memalign", "valloc", "pvalloc", "__libc_malloc", "__libc_calloc",
         "__libc_realloc", "__libc_reallocarray", "__libc_memalign", "__posix_memalign",
         "__libc_valloc", "__libc_pvalloc"} | set(os.environ.get("ALLOC_FNS", "").split())
def jitter(f):  # aws-lc's jitterentropy: aws_lc_0_47_0_jent_read_entropy, …
    return "jent_" in f
names, fn, cfn, positions, ir, jitter_ir, allocs, call = {}, "", "", 1, 0, 0, 0, None
def name(spec):
    m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
    if not m:
        return spec
    if m.group(2) is not None:
        names[m.group(1)] = m.group(2)
    # exp@@GLIBC_2.29, f'2 (callgrind's recursion depth): the base name
    return re.sub(r"(@.*|'\d+)$", "", names[m.group(1)])
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        if line.startswith("positions:"):
            positions = len(line.split()) - 1
        elif line.startswith(("summary:", "totals:")):
            ir = max(ir, int(line.split()[1]))
        elif line.startswith("fn="):
            fn = name(line[3:].rstrip("\n"))
        elif line.startswith("cfn="):
            cfn = name(line[4:].rstrip("\n"))
        elif line.startswith("calls="):
            call = (fn, cfn)
            if cfn in ALLOC and fn not in ALLOC:
                allocs += int(line[6:].split()[0])
        elif call and line[:1] in "0123456789+-*":
            if jitter(call[1]) and not jitter(call[0]):
                jitter_ir += int(line.split()[positions])
            call = None
if not ir:
    sys.exit(f"{sys.argv[1]}: no total cost (did callgrind finish?)")
print(ir - jitter_ir, allocs)
PY

cat > "$work/proxy.yaml" <<YAML
workload: { name: bench, address: 127.0.0.1 }
listeners: { admin: 127.0.0.1:$admin, hbone: null, metrics: null, outboundCapture: null, inboundCapture: null }
outbound: [{ listen: "127.0.0.1:$listen", service: echo, port: 80 }]
services:
  - name: echo
    ports: [{ port: 80, targetPort: $app, protocol: http }]
    endpoints: [{ address: 127.0.0.1 }]
YAML
# No policies at all: no routes, outlier detection off.
cp "$work/proxy.yaml" "$work/bare.yaml"
printf '    policy: { outlierDetection: null }\n' >> "$work/bare.yaml"
# A realistic set; the benchmark's GETs match the last rule after trying two.
cp "$work/proxy.yaml" "$work/policies.yaml"
cat >> "$work/policies.yaml" <<YAML
    policy: { outlierDetection: { consecutive5xx: 5, consecutiveGatewayErrors: 3 } }
routes:
  - service: echo
    rules:
      - matches: [{ path: { prefix: /admin }, headers: [{ name: x-canary, value: { exact: "yes" } }] }]
        backends: [{ service: echo }]
        timeout: 2s
      - matches: [{ headers: [{ name: x-user, value: { regex: "test-.*" } }] }]
        backends: [{ service: echo }]
      - matches: [{ path: { prefix: / } }]
        backends: [{ service: echo }]
        timeout: 5s
        perTryTimeout: 1s
        retry: { attempts: 2, codes: [502, 503], backoff: 25ms }
YAML

if [ "$HOPS" = 2 ]; then
  # Operator-provided PKI, openssl only: a P-256 CA whose URI SAN is the trust domain,
  # leaves for the two service accounts (PKCS#8 keys, serverAuth+clientAuth).
  pki() { openssl "$@" >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; exit 1; }; }
  pki genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
  pki req -x509 -new -key "$work/ca.key" -sha256 -days 2 -subj "/O=weft-bench" \
    -addext "basicConstraints=critical,CA:true" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectAltName=URI:spiffe://cluster.local" \
    -addext "subjectKeyIdentifier=hash" -out "$work/ca.crt"
  for sa in web api; do
    pki genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$sa.key"
    pki req -new -key "$work/$sa.key" -subj "/O=weft-bench/CN=$sa" -out "$work/$sa.csr"
    cat > "$work/$sa.ext" <<EXT
basicConstraints=critical,CA:false
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/$sa
authorityKeyIdentifier=keyid
EXT
    pki x509 -req -in "$work/$sa.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
      -CAcreateserial -sha256 -days 2 -extfile "$work/$sa.ext" -out "$work/$sa.crt"
    pki verify -CAfile "$work/ca.crt" "$work/$sa.crt"
  done
  cat > "$work/client.yaml" <<YAML
workload: { name: web, serviceAccount: web, address: 127.0.0.1 }
certificates: { cert: $work/web.crt, key: $work/web.key, trustBundle: $work/ca.crt }
listeners: { admin: 127.0.0.1:$admin, hbone: null, metrics: null, outboundCapture: null, inboundCapture: null }
outbound: [{ listen: "127.0.0.1:$listen", service: api, port: 80 }]
services:
  - name: api
    ports: [{ port: 80, targetPort: $app, protocol: http }]
    endpoints: [{ address: 127.0.0.2, hbone: "127.0.0.2:$hbone", identity: spiffe://cluster.local/ns/default/sa/api }]
YAML
  cat > "$work/server.yaml" <<YAML
workload: { name: api, serviceAccount: api, address: 127.0.0.2, ports: [{ port: $app, protocol: http }] }
certificates: { cert: $work/api.crt, key: $work/api.key, trustBundle: $work/ca.crt }
listeners: { admin: 127.0.0.2:$admin2, hbone: 127.0.0.2:$hbone, metrics: null, outboundCapture: null, inboundCapture: null }
YAML
  # 50 permissions, mixed L4/L7, under a default of deny; the benchmark's GETs (from
  # web) are let in by the last allow, after every other rule has been tried.
  cp "$work/server.yaml" "$work/server-permissions.yaml"
  # shellcheck source=bench/permissions.sh
  . "$(dirname "${BASH_SOURCE[0]}")/permissions.sh"
  permissions_block spiffe://cluster.local/ns/default/sa/web >> "$work/server-permissions.yaml"
  # Telemetry configs of both proxies (TELEMETRY=compare).
  for side in client server; do
    cp "$work/$side.yaml" "$work/$side-base.yaml"
    { cat "$work/$side.yaml"; printf 'telemetry: { metrics: { enabled: false } }\n'; } >"$work/$side-off.yaml"
    { cat "$work/$side.yaml"; printf 'telemetry:\n  tracing: { endpoint: "http://127.0.0.1:%s", sampling: 1 }\n' $((PORT_BASE + 50)); } >"$work/$side-on.yaml"
    { cat "$work/$side-on.yaml"; printf '  accessLog: { format: json, path: %s/access-%s.log }\n' "$work" "$side"; } >"$work/$side-logs.yaml"
  done
fi

start python3 "$work/backend.py" "$app"

proxy_args=(--workers 1 --watch-interval 1h --log-level error)
# check BINARY CONFIG…: fail early, with the proxy's own message, on a config it rejects.
check() {
  local bin=$1 config
  shift
  for config; do
    "$bin" proxy --config "$config" --check >"$work/check.log" 2>&1 ||
      { echo "$bin rejects $config:" >&2; cat "$work/check.log" >&2; exit 1; }
  done
}
# under_callgrind BINARY CONFIG OUT: starts one proxy under callgrind; pid in $started.
under_callgrind() {
  start valgrind --tool=callgrind ${ORDER:+--demangle=no --instr-atstart=no} --callgrind-out-file="$3" --log-file="$3.log" \
    "$1" proxy --config "$2" "${proxy_args[@]}" >/dev/null 2>&1
}
# result OUT: sets $ir and $allocs from a finished callgrind run.
result() {
  grep -q "Collected : [0-9]" "$1.log" ||
    { echo "callgrind gave no count; its log:" >&2; cat "$1.log" >&2; exit 1; }
  local counts
  counts=$(python3 "$work/counts.py" "$1")
  read -r ir allocs <<<"$counts"
}
# count BINARY N [CONFIG]: one hop, one proxy serving N requests; sets $ir, $allocs.
count() {
  local bin=$1 n=$2 config=${3:-$work/proxy.yaml} out="$work/cg.$2" vp
  under_callgrind "$bin" "$config" "$out"; vp=$started
  python3 "$work/client.py" "$listen" "$n" echo
  stop "$vp"
  result "$out"
}
# collect_from_now PID: with ORDER, callgrind counts only from here on (the proxy is
# ready): what runs while serving, first connections included, not start-up.
collect_from_now() {
  [ -z "${ORDER:-}" ] || callgrind_control --instr=on "$1" >/dev/null 2>&1
}
# count2 BINARY N SIDE: two hops, SIDE (client|server) under callgrind and the other
# proxy native; sets $ir, $allocs. The server side listens before the client side starts,
# so no request of the measured run fails.
count2() {
  local bin=$1 n=$2 side=$3 out="$work/cg.$3.$2" vp op
  if [ "$side" = server ]; then
    under_callgrind "$bin" "$work/server.yaml" "$out"; vp=$started
    python3 "$work/listening.py" 127.0.0.2 "$hbone" "$vp"
    collect_from_now "$vp"
    start "$bin" proxy --config "$work/client.yaml" "${proxy_args[@]}" >/dev/null 2>&1; op=$started
  else
    start "$bin" proxy --config "$work/server.yaml" "${proxy_args[@]}" >/dev/null 2>&1; op=$started
    python3 "$work/listening.py" 127.0.0.2 "$hbone" "$op"
    under_callgrind "$bin" "$work/client.yaml" "$out"; vp=$started
    python3 "$work/listening.py" 127.0.0.1 "$listen" "$vp"
    collect_from_now "$vp"
  fi
  python3 "$work/client.py" "$listen" "$n" api ${ORDER:+20}
  stop "$vp"
  stop "$op"
  result "$out"
}
per_request() { awk -v a="$1" -v b="$2" -v d=$((N2 - N1)) 'BEGIN { printf "%.2f", (b - a) / d }'; }

if [ "${POLICIES:-}" = compare ]; then
  bin=$1
  check "$bin" "$work/bare.yaml" "$work/policies.yaml"
  printf '| config | Ir, N=%s | Ir, N=%s | instructions per request | allocations per request |\n' "$N1" "$N2"
  printf '|---|---|---|---|---|\n'
  per=() aper=()
  for config in bare policies; do
    count "$bin" "$N1" "$work/$config.yaml"; a=$ir aa=$allocs
    count "$bin" "$N2" "$work/$config.yaml"; b=$ir ab=$allocs
    per+=($(((b - a) / (N2 - N1)))) aper+=("$(per_request "$aa" "$ab")")
    printf '| %s | %s | %s | %s | %s |\n' "$config" "$a" "$b" "${per[-1]}" "${aper[-1]}"
  done
  awk -v a="${per[0]}" -v b="${per[1]}" -v c="${aper[0]}" -v d="${aper[1]}" 'BEGIN {
    printf "\npolicies / bare = %.3f (instructions)", b / a
    if (c > 0) printf ", %.3f (allocations)", d / c
    printf "\n" }'
  exit 0
fi

if [ "${PERMISSIONS:-}" = compare ]; then
  bin=$1
  check "$bin" "$work/client.yaml" "$work/server.yaml" "$work/server-permissions.yaml"
  printf '| server config | Ir, N=%s | Ir, N=%s | instructions per request | allocations per request |\n' "$N1" "$N2"
  printf '|---|---|---|---|---|\n'
  per=() aper=()
  cp "$work/server.yaml" "$work/server-none.yaml"
  for config in none permissions; do
    cp "$work/server-$config.yaml" "$work/server.yaml"
    count2 "$bin" "$N1" server; a=$ir aa=$allocs
    count2 "$bin" "$N2" server; b=$ir ab=$allocs
    per+=($(((b - a) / (N2 - N1)))) aper+=("$(per_request "$aa" "$ab")")
    printf '| %s | %s | %s | %s | %s |\n' "$config" "$a" "$b" "${per[-1]}" "${aper[-1]}"
  done
  awk -v a="${per[0]}" -v b="${per[1]}" -v c="${aper[0]}" -v d="${aper[1]}" 'BEGIN {
    printf "\n50 permissions / none = %.3f (instructions)", b / a
    if (c > 0) printf ", %.3f (allocations)", d / c
    printf "\n" }'
  exit 0
fi

if [ "${TELEMETRY:-}" = compare ]; then
  bin=$1
  collector_python=${COLLECTOR_PYTHON:-python3}
  if "$collector_python" -c 'import grpc' 2>/dev/null; then
    cat > "$work/collector.py" <<'PY'
# An OTLP/gRPC trace collector that accepts every export and keeps nothing.
import sys
from concurrent import futures
import grpc
class Sink(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method == "/opentelemetry.proto.collector.trace.v1.TraceService/Export":
            return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
        return None
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((Sink(),))
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
server.wait_for_termination()
PY
    start "$collector_python" "$work/collector.py" $((PORT_BASE + 50))
    echo "(spans go to a grpcio sink on 127.0.0.1:$((PORT_BASE + 50)))"
  else
    echo "($collector_python has no grpcio: exports go to an address nothing listens on and fail)"
  fi
  check "$bin" "$work"/client-{off,on,logs}.yaml "$work"/server-{off,on,logs}.yaml
  printf '| proxy | telemetry | Ir, N=%s | Ir, N=%s | instructions per request | allocations per request |\n' "$N1" "$N2"
  printf '|---|---|---|---|---|---|\n'
  declare -A per aper
  for config in off on logs; do
    for side in client server; do
      cp "$work/client-$config.yaml" "$work/client.yaml"
      cp "$work/server-$config.yaml" "$work/server.yaml"
      count2 "$bin" "$N1" "$side"; a=$ir aa=$allocs
      count2 "$bin" "$N2" "$side"; b=$ir ab=$allocs
      if [ -n "${KEEP_CG:-}" ]; then # each config's files, named after it
        mkdir -p "$KEEP_CG" && for f in "$work"/cg."$side".*; do cp "$f" "$KEEP_CG/${f##*/}.$config"; done
      fi
      per[$side.$config]=$(((b - a) / (N2 - N1))) aper[$side.$config]=$(per_request "$aa" "$ab")
      printf '| %s | %s | %s | %s | %s | %s |\n' "$side" "$config" "$a" "$b" "${per[$side.$config]}" "${aper[$side.$config]}"
    done
  done
  echo
  for side in client server; do
    awk -v side="$side" -v off="${per[$side.off]}" -v on="${per[$side.on]}" -v logs="${per[$side.logs]}" \
      -v aoff="${aper[$side.off]}" -v aon="${aper[$side.on]}" -v alogs="${aper[$side.logs]}" 'BEGIN {
      printf "%s: metrics+tracing 1%% / off = %.3f, +access log / off = %.3f (instructions);", side, on / off, logs / off
      printf " allocations %s, %s, %s per request\n", aoff, aon, alogs }'
  done
  exit 0
fi

if [ -n "${ORDER:-}" ]; then
  bin=$1
  check "$bin" "$work/client.yaml" "$work/server.yaml"
  for side in client server; do
    count2 "$bin" "$N1" "$side"
    count2 "$bin" "$N2" "$side"
  done
  python3 "$work/order.py" "$bin" "$work/cg.client.$N1" "$work/cg.client.$N2" \
    "$work/cg.server.$N1" "$work/cg.server.$N2" >"$ORDER"
  echo "$(wc -l <"$ORDER") symbols run while serving, per-request ones first: $ORDER"
  exit 0
fi

if [ "$HOPS" = 2 ]; then
  printf '| binary | proxy | Ir, N=%s | Ir, N=%s | instructions per request | allocations per request |\n' "$N1" "$N2"
  printf '|---|---|---|---|---|---|\n'
  for bin in "$@"; do
    check "$bin" "$work/client.yaml" "$work/server.yaml"
    for side in client server; do
      count2 "$bin" "$N1" "$side"; a=$ir aa=$allocs
      count2 "$bin" "$N2" "$side"; b=$ir ab=$allocs
      printf '| %s | %s | %s | %s | %s | %s |\n' "$bin" "$side" "$a" "$b" \
        $(((b - a) / (N2 - N1))) "$(per_request "$aa" "$ab")"
    done
  done
  exit 0
fi

printf '| binary | Ir, N=%s | Ir, N=%s | instructions per request | allocations per request |\n' "$N1" "$N2"
printf '|---|---|---|---|---|\n'
for bin in "$@"; do
  check "$bin" "$work/proxy.yaml"
  count "$bin" "$N1"; a=$ir aa=$allocs
  count "$bin" "$N2"; b=$ir ab=$allocs
  printf '| %s | %s | %s | %s | %s |\n' "$bin" "$a" "$b" $(((b - a) / (N2 - N1))) "$(per_request "$aa" "$ab")"
done

#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic, so two
# builds can be compared on a busy machine where wall-clock figures are noise.
#
#   bench/instructions.sh BINARY [BINARY…]      e.g. /tmp/weft-before target/release/weft
#   POLICIES=compare bench/instructions.sh BINARY
#       one binary, twice: with no policies (no routes, no outlier detection) and with
#       a realistic set (three rules with header and path matches, retries with the
#       budget, request and per-try timeouts, outlier detection, peak-EWMA); prints
#       the ratio.
#
# For each binary: one `weft proxy --workers 1` in local-file mode (explicit listener →
# a plaintext endpoint, a Python keep-alive backend) under `valgrind --tool=callgrind`,
# driven by one keep-alive client for N1 and then N2 GETs. Instructions per request =
# (Ir at N2 − Ir at N1) ÷ (N2 − N1), which cancels startup and shutdown. Needs
# valgrind and python3; no root. Ports: PORT_BASE (16000) to PORT_BASE+90, loopback.
set -euo pipefail
N1=${N1:-200}
N2=${N2:-2200}
PORT_BASE=${PORT_BASE:-16000}
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY…]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
work=$(mktemp -d -t weft-instructions-XXXXXX)
backend_pid=
cleanup() {
  [ -n "$backend_pid" ] && kill "$backend_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

admin=$PORT_BASE listen=$((PORT_BASE + 80)) app=$((PORT_BASE + 90))
cat > "$work/backend.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
cat > "$work/client.py" <<'PY'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
deadline = time.time() + 120
while True:  # the proxy starts slowly under valgrind
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/", headers={"host": "echo"}); r = c.getresponse(); r.read()
        if r.status == 200: break
    except OSError:
        pass
    if time.time() > deadline: sys.exit("the proxy never answered")
    time.sleep(0.2)
for _ in range(n - 1):
    c.request("GET", "/", headers={"host": "echo"}); r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"status {r.status}")
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
python3 "$work/backend.py" "$app" & backend_pid=$!

# Ir of one proxy run serving $2 requests with config $3 (default proxy.yaml).
count() {
  local bin=$1 n=$2 config=${3:-$work/proxy.yaml}
  local log="$work/vg.$n.log"
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.$n" "$bin" proxy \
    --config "$config" --workers 1 --watch-interval 1h --log-level error \
    >/dev/null 2>"$log" &
  local vp=$!
  python3 "$work/client.py" "$listen" "$n"
  kill -TERM "$vp"; wait "$vp" 2>/dev/null || true
  grep -o "Collected : [0-9]*" "$log" | awk '{print $3}'
}

if [ "${POLICIES:-}" = compare ]; then
  bin=$1
  printf '| config | Ir, N=%s | Ir, N=%s | instructions per request |\n|---|---|---|---|\n' "$N1" "$N2"
  per=()
  for config in bare policies; do
    a=$(count "$bin" "$N1" "$work/$config.yaml")
    b=$(count "$bin" "$N2" "$work/$config.yaml")
    per+=($(( (b - a) / (N2 - N1) )))
    printf '| %s | %s | %s | %s |\n' "$config" "$a" "$b" "${per[-1]}"
  done
  awk -v a="${per[0]}" -v b="${per[1]}" 'BEGIN { printf "\npolicies / bare = %.3f\n", b / a }'
  exit 0
fi

printf '| binary | Ir, N=%s | Ir, N=%s | instructions per request |\n|---|---|---|---|\n' "$N1" "$N2"
for bin in "$@"; do
  a=$(count "$bin" "$N1")
  b=$(count "$bin" "$N2")
  printf '| %s | %s | %s | %s |\n' "$bin" "$a" "$b" $(( (b - a) / (N2 - N1) ))
done

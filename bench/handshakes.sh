#!/usr/bin/env bash
# TLS 1.3 handshake benchmark (issue 4): new mTLS connections per second per core,
# one request per connection, Weft's HBONE listener vs HAProxy terminating TLS with the
# same ECDSA P-256 certificate. Interleaved rounds (haproxy, weft, haproxy, weft, ...).
#
#   sudo bench/handshakes.sh                          # ROUNDS=3 DURATION=10s C=16
#   sudo ROUNDS=5 DURATION=10s C=32 bench/handshakes.sh
#
# Everything runs in one fresh network namespace (loopback only, so no port can clash
# with anything else on the host) and is torn down on exit. Output: a summary on stdout
# and everything under bench/out/handshakes-<stamp>/.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1}                    # seconds of load before each measured window
C=${C:-16}                             # concurrent connection loops
GEN_THREADS=${GEN_THREADS:-1}          # tokio worker threads of the load generator
WEFT_PROTOCOL=${WEFT_PROTOCOL:-http}   # app port protocol in Weft: http (L7) or tcp (L4)
SYSTEMS=${SYSTEMS:-"haproxy weft"}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_PKI=${KEEP_PKI:-0}
SERVER_CORE=0
LOAD_CORE=1

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$BENCH_DIR")
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$BENCH_DIR/out/handshakes-$STAMP}
RUN=$OUT/run
PKI=$RUN/pki
LOGS=$OUT/logs
D_SEC=${DURATION%s}
[[ $D_SEC =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ && $C =~ ^[0-9]+$ && $WARMUP =~ ^[0-9]+$ ]] ||
    { echo "DURATION, WARMUP must be whole seconds, ROUNDS and C integers" >&2; exit 2; }
NS=wefths-$$
APP_PORT=8080
HAPROXY_PORT=8443
HBONE_PORT=15008

log() { printf '[handshakes %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root (network namespace): sudo $0"

PIDS=()
cleanup() {
    local rc=$? pid
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    sleep 0.3
    if ip netns list 2>/dev/null | grep -qw "$NS"; then
        # Only processes this script started live in the namespace.
        for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$NS" 2>/dev/null
    fi
    wait 2>/dev/null
    # server.pem holds the server key too (HAProxy reads cert + key from one file).
    if [[ $KEEP_PKI != 1 && -d $PKI ]]; then rm -f "$PKI"/*.key "$PKI"/server.pem; fi
    [[ $rc -ne 0 ]] && log "exited with status $rc; logs in $LOGS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for cmd in haproxy nginx openssl curl taskset ip; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (apt-get install haproxy nginx openssl curl util-linux iproute2)"
done

run_cargo() {
    if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
        local home
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        sudo -u "$SUDO_USER" -H env "PATH=$home/.cargo/bin:$PATH" cargo "$@"
    else
        env "PATH=$HOME/.cargo/bin:$PATH" cargo "$@"
    fi
}

mkdir -p "$RUN" "$PKI" "$LOGS"
if [[ $SKIP_BUILD != 1 ]]; then
    log "building: cargo build --release -p weft -p weft-control --example handshake_load"
    (cd "$ROOT_DIR" && run_cargo build --release -p weft &&
        run_cargo build --release -p weft-control --example handshake_load) >"$LOGS/build.log" 2>&1 ||
        { tail -30 "$LOGS/build.log" >&2; die "build failed (see $LOGS/build.log)"; }
fi
# Snapshot both binaries: a rebuild of target/ mid-run cannot mix versions.
cp "$ROOT_DIR/target/release/weft" "$RUN/weft" || die "no target/release/weft"
cp "$ROOT_DIR/target/release/examples/handshake_load" "$RUN/handshake_load" ||
    die "no target/release/examples/handshake_load"
WEFT=$RUN/weft
GEN=$RUN/handshake_load

# ---------------------------------------------------------------- PKI ---------------
log "P-256 CA, server and client certificates (openssl)"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
openssl req -x509 -new -key "$PKI/ca.key" -sha256 -days 2 -subj "/O=weft-bench/CN=weft bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$PKI/ca.crt" 2>/dev/null
for sa in server client; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$sa.key" 2>/dev/null
    openssl req -new -key "$PKI/$sa.key" -subj "/O=weft-bench/CN=$sa" -out "$PKI/$sa.csr" 2>/dev/null
    san="URI:spiffe://cluster.local/ns/default/sa/$sa"
    [[ $sa == server ]] && san="$san, DNS:server"
    cat >"$PKI/$sa.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl x509 -req -in "$PKI/$sa.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -sha256 -days 2 -extfile "$PKI/$sa.ext" -out "$PKI/$sa.crt" 2>/dev/null
    openssl verify -CAfile "$PKI/ca.crt" "$PKI/$sa.crt" >/dev/null || die "verify failed: $sa.crt"
done
cat "$PKI/server.crt" "$PKI/server.key" >"$PKI/server.pem"   # HAProxy: cert + key, one file

# ---------------------------------------------------------------- configs -----------
mkdir -p "$RUN/www" "$RUN/nginx-tmp"
head -c 100 /dev/zero | tr '\0' 'x' >"$RUN/www/100b"
cat >"$RUN/backend.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $RUN/backend.pid;
error_log $LOGS/backend-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $RUN/nginx-tmp/body;
    proxy_temp_path $RUN/nginx-tmp/proxy;
    fastcgi_temp_path $RUN/nginx-tmp/fastcgi;
    uwsgi_temp_path $RUN/nginx-tmp/uwsgi;
    scgi_temp_path $RUN/nginx-tmp/scgi;
    default_type application/octet-stream;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    server { listen 127.0.0.1:$APP_PORT; root $RUN/www; location / { } }
}
EOF

# HAProxy: one thread, TLS 1.3 only, client certificate required, HTTP mode, pooled
# upstream keep-alive (the backend side is not what is measured).
cat >"$RUN/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
frontend tls
    bind 127.0.0.1:$HAPROXY_PORT ssl crt $PKI/server.pem ca-file $PKI/ca.crt verify required alpn http/1.1 ssl-min-ver TLSv1.3
    default_backend app
backend app
    server app 127.0.0.1:$APP_PORT
EOF

# Weft: the inbound side only (HBONE listener -> app port), one worker.
cat >"$RUN/weft.yaml" <<EOF
workload:
  name: server
  serviceAccount: server
  address: 127.0.0.1
  ports: [{ port: $APP_PORT, protocol: $WEFT_PROTOCOL }]
certificates: { cert: pki/server.crt, key: pki/server.key, trustBundle: pki/ca.crt }
listeners: { hbone: "127.0.0.1:$HBONE_PORT", metrics: null, outboundCapture: null, admin: "127.0.0.1:15000" }
settings: { drainTimeout: 1s }
EOF
haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy config invalid"
"$WEFT" proxy --config "$RUN/weft.yaml" --check >"$LOGS/weft-check.log" 2>&1 ||
    { cat "$LOGS/weft-check.log" >&2; die "weft rejected its config"; }

# ---------------------------------------------------------------- processes ---------
ip netns add "$NS"
ip -n "$NS" link set lo up
# Many short connections from one client: a wide port range, TIME_WAIT reuse on loopback.
ip netns exec "$NS" sysctl -q -w net.ipv4.ip_local_port_range="1024 65000" \
    net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096 || true

LAST_PID=""
start_proc() {  # core logfile cmd...
    local core=$1 logf=$2; shift 2
    ip netns exec "$NS" taskset -c "$core" "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
stop_proc() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
wait_port() {  # port; 10 s
    local i
    for i in $(seq 100); do
        ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

taskset -pc "$LOAD_CORE" $$ >/dev/null   # the harness stays off the server core
log "nginx backend on 127.0.0.1:$APP_PORT (1 worker, core $LOAD_CORE)"
start_proc "$LOAD_CORE" "$LOGS/backend.log" nginx -c "$RUN/backend.conf" -e "$LOGS/backend-error.log"
wait_port "$APP_PORT" || die "backend did not start"
ip netns exec "$NS" curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/100b" || die "backend not serving /100b"

{
    echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "nproc=$(nproc --all)"
    echo "cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "haproxy=$(haproxy -v | awk 'NR==1 {print $3}')"
    echo "haproxy_ssl=$(haproxy -vv 2>/dev/null | awk -F': ' '/Running on OpenSSL/ {print $2; exit}')"
    echo "weft=$("$WEFT" --version 2>/dev/null || echo weft) (tree at $(cd "$ROOT_DIR" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "command=ROUNDS=$ROUNDS DURATION=${D_SEC}s C=$C WEFT_PROTOCOL=$WEFT_PROTOCOL sudo bench/handshakes.sh"
} >"$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

PKI_ARGS=(--cert "$PKI/client.crt" --key "$PKI/client.key" --ca "$PKI/ca.crt")
GEN_ARGS=(-c "$C" --duration "$D_SEC" --warmup "$WARMUP" --threads "$GEN_THREADS" --clk-tck "$(getconf CLK_TCK)")

measure() {  # system round
    local sys=$1 r=$2 pid out=$OUT/r$2-$1.txt
    case $sys in
    haproxy)
        start_proc "$SERVER_CORE" "$LOGS/r$r-haproxy.log" haproxy -db -f "$RUN/haproxy.cfg"
        pid=$LAST_PID
        wait_port "$HAPROXY_PORT" || { log "haproxy did not start"; stop_proc "$pid"; return; }
        ip netns exec "$NS" taskset -c "$LOAD_CORE" "$GEN" --mode http1 \
            --addr "127.0.0.1:$HAPROXY_PORT" --server-name server "${PKI_ARGS[@]}" \
            "${GEN_ARGS[@]}" --pid "$pid" >"$out" 2>&1 || log "  load generator failed (see $out)"
        ;;
    weft)
        start_proc "$SERVER_CORE" "$LOGS/r$r-weft.log" \
            env NO_COLOR=1 "$WEFT" proxy --config "$RUN/weft.yaml" --workers 1
        pid=$LAST_PID
        wait_port "$HBONE_PORT" || { log "weft did not start"; stop_proc "$pid"; return; }
        ip netns exec "$NS" taskset -c "$LOAD_CORE" "$GEN" --mode weft \
            --addr "127.0.0.1:$HBONE_PORT" --server-id spiffe://cluster.local/ns/default/sa/server \
            --target "127.0.0.1:$APP_PORT" "${PKI_ARGS[@]}" \
            "${GEN_ARGS[@]}" --pid "$pid" >"$out" 2>&1 || log "  load generator failed (see $out)"
        ;;
    *) die "unknown system $sys" ;;
    esac
    kill -0 "$pid" 2>/dev/null || echo "CRASHED" >>"$out"
    stop_proc "$pid"
    log "  r$r $sys: $(grep '^RESULT' "$out" | cut -d' ' -f2- || echo 'no result')"
    sleep 1   # let TIME_WAIT and the CPU settle
}

for r in $(seq "$ROUNDS"); do
    for sys in $SYSTEMS; do
        log "round $r/$ROUNDS: $sys"
        measure "$sys" "$r"
    done
done

# ---------------------------------------------------------------- summary -----------
python3 - "$OUT" "$ROUNDS" $SYSTEMS <<'EOF' | tee "$OUT/report.txt"
import os, statistics, sys
out, rounds, systems = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def res(sys_, r):
    p = os.path.join(out, f"r{r}-{sys_}.txt")
    if not os.path.exists(p): return None
    for line in open(p):
        if line.startswith("RESULT "):
            return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    return None
def fmt(xs, f="{:.0f}"):
    if not xs: return "n/a"
    return f"{f.format(statistics.median(xs))} ({f.format(min(xs))}-{f.format(max(xs))})"
meta = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(out, "meta.txt")))
print(f"# TLS 1.3 handshakes: {meta['date']}, {meta['nproc']} CPUs, {meta['cpu_model']}, load {meta['load_before']}")
print(f"# {meta['command']}; haproxy {meta['haproxy']} ({meta['haproxy_ssl']}); {meta['weft']}")
print("# median (min-max) over rounds; server pinned to core 0, generator + nginx backend on core 1")
print(f"{'system':8} {'conns/s':>18} {'server CPU s':>18} {'conns per CPU-s':>20} {'p50 us':>16} {'p99 us':>18} {'gen CPU %':>10} {'errors':>7}")
per = {}
for s in systems:
    rs = [x for x in (res(s, r) for r in range(1, rounds + 1)) if x]
    per[s] = rs
    if not rs:
        print(f"{s:8} no results"); continue
    g = lambda k: [x[k] for x in rs if k in x]
    gen = [100 * x["gen_cpu_s"] / x["wall_s"] for x in rs]
    print(f"{s:8} {fmt(g('conns_per_s')):>18} {fmt(g('server_cpu_s'), '{:.2f}'):>18} "
          f"{fmt(g('conns_per_cpu_s')):>20} {fmt(g('p50_us')):>16} {fmt(g('p99_us')):>18} "
          f"{fmt(gen):>10} {int(sum(g('errors'))):>7}")
if "weft" in per and "haproxy" in per:
    ratios = {}
    for k in ("conns_per_s", "conns_per_cpu_s"):
        rr = []
        for r in range(1, rounds + 1):
            a, b = res("weft", r), res("haproxy", r)
            if a and b and b.get(k): rr.append(a[k] / b[k])
        ratios[k] = rr
    print(f"weft/haproxy (same round): conns/s {fmt(ratios['conns_per_s'], '{:.2f}')}, "
          f"conns per CPU-second {fmt(ratios['conns_per_cpu_s'], '{:.2f}')}  (target >= 1.00)")
EOF
log "output: $OUT"

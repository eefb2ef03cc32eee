#!/usr/bin/env bash
# Weft data-plane benchmark: direct vs HAProxy vs nginx vs Weft (one hop plaintext L7,
# two hops HBONE mTLS at L7 and at L4), measured interleaved in the same run. Two
# groups: pinned (proxy on core 0, load and backend on core 1; the one-hop comparison
# with HAProxy and nginx) and unpinned with transparent capture on the client side
# (`weft redirect install` in the client namespace, proxies as an unprivileged uid;
# the layout of the shared two-hop figures), each with its own direct baseline.
#
#   sudo bench/run.sh                      # ROUNDS=5 DURATION=10s
#   sudo ROUNDS=3 DURATION=5s bench/run.sh
#
# Rules: /work/shared/BENCHMARKS.md (copied in spirit into bench/README.md).
# Everything it starts lives in two fresh network namespaces joined by a veth pair
# (198.18.1.1/24 client, 198.18.1.2/24 server; RFC 2544 benchmark range) and is torn
# down on exit. Output: a markdown report on stdout and in bench/out/<stamp>/report.md,
# with raw measurements and every process log next to it.
set -euo pipefail

# ---------------------------------------------------------------- parameters --------
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}              # per load test; seconds, "10" or "10s"
WARMUP=${WARMUP:-2s}                   # wrk warm-up before each system's first test
LAT_RATE=${LAT_RATE:-1000}             # oha fixed rate (req/s, 1 conn) common to all systems
LAT_FRACTION=${LAT_FRACTION:-0.25}     # second oha run: this x the system's own 1-conn max
DEFAULT_SYSTEMS="direct haproxy nginx weft-1hop weft-2hop-l7 weft-2hop-l4 direct-unpinned weft-2hop-l7-capture weft-2hop-l4-capture"
SYSTEMS=${SYSTEMS:-$DEFAULT_SYSTEMS}
SKIP_BUILD=${SKIP_BUILD:-0}            # 1: use the existing target/release/weft as is
WEFT_BASE=${WEFT_BASE:-}               # another weft binary: a system named "weft-...@base"
                                       # runs it, interleaved with the same system on $WEFT
OHA_INSTALL=${OHA_INSTALL:-1}          # 0: never try `cargo install --locked oha`
OHA_INSTALL_TIMEOUT=${OHA_INSTALL_TIMEOUT:-1200}
KEEP_PKI=${KEEP_PKI:-0}                # 1: keep the generated keys in the output dir
IDLE_SETTLE=${IDLE_SETTLE:-3}          # seconds between ready and the idle RSS sample
SPIN=${SPIN:-0}                        # 1: keep both CPUs out of idle (SCHED_IDLE busy loops)
                                       # to remove VM idle-wakeup latency; a diagnostic, not default
NICE=${NICE:-0}                        # e.g. -10 on a busy shared host: applies to everything
                                       # measured (proxies, backend, load generators) alike
PROXY_UID=${PROXY_UID:-65534}          # *-capture systems: the proxies' uid (excluded from the
PROXY_GID=${PROXY_GID:-65534}          # redirect) and gid; must not be 0

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$BENCH_DIR")
WEFT=${WEFT:-$ROOT_DIR/target/release/weft}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$BENCH_DIR/out/$STAMP}
RAW=$OUT/raw
LOGS=$OUT/logs
RUN=$OUT/run                            # configs, docroot, pid files, temp dirs
PKI=$RUN/pki

D_SEC=${DURATION%s}
W_SEC=${WARMUP%s}
[[ $D_SEC =~ ^[0-9]+$ && $W_SEC =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ ]] ||
    { echo "DURATION/WARMUP must be whole seconds (e.g. 10s), ROUNDS an integer" >&2; exit 2; }

# Unique names: several runs (or the e2e suites) may share the host.
TAG=$$
NS_C=weftb-c-$TAG
NS_S=weftb-s-$TAG
VETH_C=wbc$TAG
VETH_S=wbs$TAG
ADDR_C=198.18.1.1
ADDR_S=198.18.1.2
PROXY_CORE=0   # system under test
LOAD_CORE=1    # load generator and backend

# Ports inside the client namespace (all on 127.0.0.1).
PORT_HAPROXY=18081
PORT_NGINX=18082
PORT_WEFT1=18083
PORT_WEFT2=18084
# *-capture systems: the client proxy's capture listener (what `weft redirect install`
# sends outbound TCP to) and both proxies' metrics listener (scraped after each round).
PORT_CAPTURE=15001
PORT_METRICS=15020

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (network namespaces): sudo $0"
[[ $PROXY_UID =~ ^[0-9]+$ && $PROXY_GID =~ ^[0-9]+$ && $PROXY_UID != 0 ]] ||
    die "PROXY_UID/PROXY_GID must be numeric and PROXY_UID not 0 (its traffic is not captured)"

# The capture systems' ratios are against direct measured the same way (unpinned, same
# round): add that baseline when it was left out.
NEED_CAPTURE=0
for sys in $SYSTEMS; do [[ ${sys%@base} == *-capture ]] && NEED_CAPTURE=1; done
if [[ $NEED_CAPTURE == 1 && " $SYSTEMS " != *" direct-unpinned "* ]]; then
    SYSTEMS="direct-unpinned $SYSTEMS"
    log "SYSTEMS: added direct-unpinned, the baseline of the capture systems"
fi

# ---------------------------------------------------------------- cleanup -----------
PIDS=()
SAMPLER=""   # the memory sampler loop, while one runs: cleanup's `wait` would wait for it forever
cleanup() {
    local rc=$?
    set +e
    [[ -n $SAMPLER ]] && kill -TERM "$SAMPLER" 2>/dev/null
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    sleep 0.3
    redirect_remove   # rules live in the client namespace; never leave them, even on error
    for ns in "$NS_C" "$NS_S"; do
        if ip netns list 2>/dev/null | grep -qw "$ns"; then
            # Only processes we started live in these namespaces.
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
            ip netns del "$ns" 2>/dev/null
        fi
    done
    ip link del "$VETH_C" 2>/dev/null   # gone with the namespace; in case setup stopped early
    wait 2>/dev/null
    if [[ $KEEP_PKI != 1 && -d $PKI ]]; then rm -f "$PKI"/*.key; fi
    [[ $rc -ne 0 ]] && log "exited with status $rc; logs in $LOGS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- dependencies ------
install_deps() {
    local -A pkg=([nginx]=nginx [haproxy]=haproxy [wrk]=wrk [curl]=curl [openssl]=openssl
                  [ip]=iproute2 [taskset]=util-linux [python3]=python3 [pgrep]=procps)
    local missing=()
    for cmd in "${!pkg[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
    done
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Runs cargo as the invoking user under sudo, so target/ keeps its owner.
run_cargo() {
    local user_home=""
    if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
        user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        sudo -u "$SUDO_USER" -H env "PATH=$user_home/.cargo/bin:$PATH" cargo "$@"
    else
        env "PATH=$HOME/.cargo/bin:$PATH" cargo "$@"
    fi
}

NEED_WEFT=0
[[ $SYSTEMS == *weft* ]] && NEED_WEFT=1

build_weft() {
    [[ $NEED_WEFT == 1 ]] || return 0
    if [[ $SKIP_BUILD == 1 ]]; then
        [[ -x $WEFT ]] || die "SKIP_BUILD=1 but $WEFT does not exist"
        return
    fi
    log "building: cargo build --release -p weft (may wait for the cargo lock)"
    (cd "$ROOT_DIR" && run_cargo build --release -p weft) >"$LOGS/build.log" 2>&1 ||
        { tail -30 "$LOGS/build.log" >&2; die "release build failed (see $LOGS/build.log)"; }
    [[ -x $WEFT ]] || die "no $WEFT after the build"
}

# Measure one binary for the whole run even if someone rebuilds target/ meanwhile.
snapshot_weft() {
    [[ $NEED_WEFT == 1 ]] || return 0
    WEFT_BUILT=$(date -u -r "$WEFT" '+%Y-%m-%d %H:%M:%S UTC')
    cp "$WEFT" "$RUN/weft"
    WEFT=$RUN/weft
    if [[ -n $WEFT_BASE ]]; then
        [[ -x $WEFT_BASE ]] || die "WEFT_BASE=$WEFT_BASE is not an executable"
        cp "$WEFT_BASE" "$RUN/weft-base"
        WEFT_BASE=$RUN/weft-base
    fi
}

OHA=""
LAT_TOOL=""
LAT_NOTE=""
find_oha() {
    local c
    for c in "${OHA_BIN:-}" "$(command -v oha 2>/dev/null || true)" "$HOME/.cargo/bin/oha" \
             "/root/.cargo/bin/oha" \
             "$( [[ -n ${SUDO_USER:-} ]] && echo "$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin/oha")"; do
        [[ -n $c && -x $c ]] && { OHA=$c; return 0; }
    done
    return 1
}
setup_latency_tool() {
    if ! find_oha && [[ $OHA_INSTALL == 1 ]]; then
        log "oha not found: trying 'cargo install --locked oha' (timeout ${OHA_INSTALL_TIMEOUT}s)"
        if ! timeout "$OHA_INSTALL_TIMEOUT" bash -c "$(declare -f run_cargo); run_cargo install --locked oha" \
                >"$LOGS/oha-install.log" 2>&1; then
            log "oha install failed or timed out (see $LOGS/oha-install.log)"
        fi
        find_oha || true
    fi
    if [[ -n $OHA ]]; then
        LAT_TOOL=oha
        LAT_NOTE="latency: oha $("$OHA" --version 2>/dev/null | awk '{print $2}'), open loop (--latency-correction), 1 connection, ${LAT_RATE} req/s for every system (main table; its fraction of each system's own 1-connection maximum is listed below) and ${LAT_FRACTION} x each system's own 1-connection maximum in the same round (absolute table)"
    else
        LAT_TOOL=wrk
        LAT_NOTE="latency: FALLBACK - oha unavailable; p50/p99 from wrk's latency distribution at 1 connection (closed loop, not coordinated-omission corrected)"
    fi
    log "$LAT_NOTE"
}

# ---------------------------------------------------------------- topology ----------
setup_netns() {
    log "namespaces $NS_C ($ADDR_C) <-> $NS_S ($ADDR_S) over veth $VETH_C/$VETH_S"
    ip netns add "$NS_C"
    ip netns add "$NS_S"
    ip link add "$VETH_C" type veth peer name "$VETH_S"
    ip link set "$VETH_C" netns "$NS_C"
    ip link set "$VETH_S" netns "$NS_S"
    ip -n "$NS_C" addr add "$ADDR_C/24" dev "$VETH_C"
    ip -n "$NS_S" addr add "$ADDR_S/24" dev "$VETH_S"
    for ns in "$NS_C" "$NS_S"; do ip -n "$ns" link set lo up; done
    ip -n "$NS_C" link set "$VETH_C" up
    ip -n "$NS_S" link set "$VETH_S" up
    ip netns exec "$NS_C" ping -c1 -W2 "$ADDR_S" >/dev/null 2>&1 ||
        sleep 1  # DAD / link up; curl checks below are the real test
}

# ---------------------------------------------------------------- PKI ---------------
# Operator-provided PKI, made with openssl only: an ECDSA P-256 CA and SPIFFE leaves.
gen_pki() {
    mkdir -p "$PKI"
    log "generating a P-256 CA and SPIFFE leaf certificates with openssl"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -sha256 -days 2 -subj "/O=weft-bench/CN=weft bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$PKI/ca.crt" 2>/dev/null
    local sa
    for sa in bench-client nginx; do
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$sa.key" 2>/dev/null
        openssl req -new -key "$PKI/$sa.key" -subj "/O=weft-bench/CN=$sa" -out "$PKI/$sa.csr" 2>/dev/null
        cat >"$PKI/$sa.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:spiffe://cluster.local/ns/default/sa/$sa
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
        openssl x509 -req -in "$PKI/$sa.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
            -sha256 -days 2 -extfile "$PKI/$sa.ext" -out "$PKI/$sa.crt" 2>/dev/null
        openssl verify -CAfile "$PKI/ca.crt" "$PKI/$sa.crt" >/dev/null ||
            die "openssl verify failed for $sa.crt"
    done
}

# ---------------------------------------------------------------- configs -----------
nginx_common() {  # $1 = name (temp dir prefix)
    cat <<EOF
user root;
worker_processes 1;
daemon off;
master_process on;
pid $RUN/$1.pid;
error_log $LOGS/$1-error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_temp_paths() {  # $1 = name
    local t=$RUN/$1-tmp
    mkdir -p "$t"
    cat <<EOF
    client_body_temp_path $t/body;
    proxy_temp_path $t/proxy;
    fastcgi_temp_path $t/fastcgi;
    uwsgi_temp_path $t/uwsgi;
    scgi_temp_path $t/scgi;
EOF
}

write_configs() {
    mkdir -p "$RUN/www"
    head -c 100 /dev/zero | tr '\0' 'x' >"$RUN/www/100b"
    head -c 1048576 /dev/urandom >"$RUN/www/1m"

    # Backend: one nginx worker on the load core, both loopback and the veth address.
    {
        nginx_common backend
        cat <<EOF
http {
    access_log off;
$(nginx_temp_paths backend)
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:8080;
        listen $ADDR_S:8080;
        root $RUN/www;
        location / { }
    }
}
EOF
    } >"$RUN/backend.conf"

    # HAProxy: one thread, HTTP mode, keep-alive both sides, pooled upstream, no logs.
    cat >"$RUN/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend bench
    bind 127.0.0.1:$PORT_HAPROXY
    default_backend nginx
backend nginx
    server nginx $ADDR_S:8080
EOF

    # nginx as a proxy: one worker, upstream keepalive pool, HTTP/1.1 upstream, no logs.
    {
        nginx_common nginx-proxy
        cat <<EOF
http {
    access_log off;
$(nginx_temp_paths nginx-proxy)
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    upstream backend {
        server $ADDR_S:8080;
        keepalive 32;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$PORT_NGINX;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;   # stream large bodies, never spool to disk
        }
    }
}
EOF
    } >"$RUN/nginx-proxy.conf"

    # Weft, one hop: explicit outbound listener -> endpoint without identity (plaintext).
    # $1: extra service lines (a policy), $2: extra top-level config (routes).
    one_hop() {
        cat <<EOF
workload: { name: bench-client, serviceAccount: bench-client, address: $ADDR_C }
listeners: { hbone: null, metrics: null, outboundCapture: null, admin: "127.0.0.1:15000" }
outbound:
  - { listen: "127.0.0.1:$PORT_WEFT1", service: nginx, port: 80 }
services:
  - name: nginx
    ports: [{ port: 80, targetPort: 8080, protocol: http }]
    endpoints: [{ address: $ADDR_S }]   # no identity: direct plaintext
$1$2settings: { drainTimeout: 1s }
EOF
    }
    one_hop "" "" >"$RUN/weft-1hop.yaml"
    # The same hop with no policies at all, and with a realistic set (SYSTEMS=
    # "weft-1hop-bare weft-1hop-policies" gives the policy cost as a ratio).
    one_hop "    policy: { outlierDetection: null }
" "" >"$RUN/weft-1hop-bare.yaml"
    one_hop "    policy: { outlierDetection: { consecutive5xx: 5, consecutiveGatewayErrors: 3 } }
" "routes:
  - service: nginx
    rules:
      - matches: [{ path: { prefix: /admin }, headers: [{ name: x-canary, value: { exact: \"yes\" } }] }]
        backends: [{ service: nginx }]
        timeout: 2s
      - matches: [{ headers: [{ name: x-user, value: { regex: \"test-.*\" } }] }]
        backends: [{ service: nginx }]
      - matches: [{ path: { prefix: / } }]
        backends: [{ service: nginx }]
        timeout: 5s
        perTryTimeout: 1s
        retry: { attempts: 2, codes: [502, 503], backoff: 25ms }
" >"$RUN/weft-1hop-policies.yaml"

    # shellcheck source=bench/permissions.sh
    . "$BENCH_DIR/permissions.sh"

    # Weft, two hops: client outbound -> HBONE mTLS -> server inbound :15008 -> nginx.
    local proto
    for proto in http tcp; do
        cat >"$RUN/weft-2hop-$proto-client.yaml" <<EOF
workload: { name: bench-client, serviceAccount: bench-client, address: $ADDR_C }
certificates: { cert: pki/bench-client.crt, key: pki/bench-client.key, trustBundle: pki/ca.crt }
listeners: { hbone: null, metrics: null, outboundCapture: null, admin: "127.0.0.1:15000" }
outbound:
  - { listen: "127.0.0.1:$PORT_WEFT2", service: nginx, port: 80 }
services:
  - name: nginx
    ports: [{ port: 80, targetPort: 8080, protocol: $proto }]
    endpoints:
      - { address: $ADDR_S, identity: "spiffe://cluster.local/ns/default/sa/nginx" }
settings: { drainTimeout: 1s }
EOF
        cat >"$RUN/weft-2hop-$proto-server.yaml" <<EOF
workload:
  name: nginx
  serviceAccount: nginx
  address: $ADDR_S
  ports: [{ port: 8080, protocol: $proto }]
certificates: { cert: pki/nginx.crt, key: pki/nginx.key, trustBundle: pki/ca.crt }
listeners: { hbone: "0.0.0.0:15008", metrics: null, outboundCapture: null, admin: "127.0.0.1:15000" }
settings: { drainTimeout: 1s }
EOF
    done
    # The L7 server with 50 permissions of mixed L4/L7 rules under a default of deny,
    # the set bench/instructions.sh measures (SYSTEMS="weft-2hop-l7 weft-2hop-l7-permissions"
    # gives their cost in request rate as a ratio). wrk's GETs from bench-client are let
    # in by the last allow, after every other rule has been tried.
    {
        cat "$RUN/weft-2hop-http-server.yaml"
        permissions_block spiffe://cluster.local/ns/default/sa/bench-client
    } >"$RUN/weft-2hop-http-permissions-server.yaml"
    # Telemetry on both proxies (SYSTEMS="weft-2hop-l7-telemetry-off
    # weft-2hop-l7-telemetry-on weft-2hop-l7-telemetry-logs", the configs
    # bench/instructions.sh TELEMETRY=compare measures): off = request metrics disabled;
    # on = metrics and tracing at 1% (to a collector address nothing listens on);
    # logs = on, plus a JSON access log to a file.
    local side level
    for side in client server; do
        for level in off on logs; do
            {
                cat "$RUN/weft-2hop-http-$side.yaml"
                case $level in
                off) printf 'telemetry: { metrics: { enabled: false } }\n' ;;
                on) printf 'telemetry:\n  tracing: { endpoint: "http://127.0.0.1:4317", sampling: 1 }\n' ;;
                logs) printf 'telemetry:\n  tracing: { endpoint: "http://127.0.0.1:4317", sampling: 1 }\n  accessLog: { format: json, path: %s/access-%s.log }\n' "$RUN" "$side" ;;
                esac
            } >"$RUN/weft-2hop-http-telemetry-$level-$side.yaml"
        done
    done

    # Weft, two hops with transparent capture on the client side (*-capture systems):
    # the app (wrk, as root) dials the backend's own address; `weft redirect install`
    # sends it to the client proxy's capture listener. The proxy routes captured
    # connections by service VIP (anything else is passed through, outside the mesh), so
    # the service's VIP is the backend's address and its port the one wrk dials. Both
    # proxies run as PROXY_UID: they get their own copies of their keys, readable by it.
    if [[ $NEED_CAPTURE == 1 ]]; then
        local sa
        for sa in bench-client nginx; do
            install -m 0400 -o "$PROXY_UID" -g "$PROXY_GID" "$PKI/$sa.key" "$PKI/$sa.proxy-uid.key"
        done
        for proto in http tcp; do
            cat >"$RUN/weft-2hop-$proto-capture-client.yaml" <<EOF
workload: { name: bench-client, serviceAccount: bench-client, address: $ADDR_C }
certificates: { cert: pki/bench-client.crt, key: pki/bench-client.proxy-uid.key, trustBundle: pki/ca.crt }
listeners:
  hbone: null
  inboundCapture: null
  outboundCapture: "127.0.0.1:$PORT_CAPTURE"
  metrics: "127.0.0.1:$PORT_METRICS"
  admin: "127.0.0.1:15000"
services:
  - name: nginx
    vip: $ADDR_S   # the backend's own address: what wrk dials is captured as this service
    ports: [{ port: 8080, targetPort: 8080, protocol: $proto }]
    endpoints:
      - { address: $ADDR_S, identity: "spiffe://cluster.local/ns/default/sa/nginx" }
settings: { drainTimeout: 1s }
EOF
            cat >"$RUN/weft-2hop-$proto-capture-server.yaml" <<EOF
workload:
  name: nginx
  serviceAccount: nginx
  address: $ADDR_S
  ports: [{ port: 8080, protocol: $proto }]
certificates: { cert: pki/nginx.crt, key: pki/nginx.proxy-uid.key, trustBundle: pki/ca.crt }
listeners:
  hbone: "0.0.0.0:15008"
  inboundCapture: null
  outboundCapture: null
  metrics: "127.0.0.1:$PORT_METRICS"
  admin: "127.0.0.1:15000"
settings: { drainTimeout: 1s }
EOF
        done
    fi

    # wrk reporter: exact counts as one JSON line (the text summary is kept too).
    cat >"$RUN/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%.1f,"p90_us":%.1f,' ..
    '"p99_us":%.1f,"mean_us":%.1f,"max_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
EOF
}

check_configs() {
    local f
    ip netns exec "$NS_S" nginx -t -q -c "$RUN/backend.conf" -e "$LOGS/nginx-t.log" || die "backend nginx config invalid"
    ip netns exec "$NS_C" nginx -t -q -c "$RUN/nginx-proxy.conf" -e "$LOGS/nginx-t.log" || die "nginx proxy config invalid"
    haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy config invalid"
    [[ $NEED_WEFT == 1 ]] || return 0
    local as=()
    for f in "$RUN"/weft-*.yaml; do
        # The capture systems' configs are checked as the uid their proxies run as: it
        # must be able to run the binary and read the config, certificates and key.
        as=()
        [[ $f == *-capture-* ]] && as=("${AS_PROXY_UID[@]}")
        "${as[@]}" "$WEFT" proxy --config "$f" --check >>"$LOGS/weft-check.log" 2>&1 ||
            { cat "$LOGS/weft-check.log" >&2; die "weft rejected $f${as:+ (run as uid $PROXY_UID: can it reach every directory of $RUN?)}"; }
    done
    if [[ $NEED_CAPTURE == 1 && -n $WEFT_BASE ]]; then
        "${AS_PROXY_UID[@]}" test -x "$WEFT_BASE" || die "uid $PROXY_UID cannot run $WEFT_BASE"
    fi
    log "configs valid ($(wc -l <"$LOGS/weft-check.log") weft configs accepted, certificates loaded)"
}

# ---------------------------------------------------------------- processes ---------
LAST_PID=""
start_proc() {  # ns cpus logfile cmd...   (cpus: a taskset list, "0" or "0,1")
    local ns=$1 cpus=$2 logf=$3; shift 3
    ip netns exec "$ns" taskset -c "$cpus" "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop_proc() {  # pid -> 0 if it was still running
    local pid=$1 _ alive=0
    kill -0 "$pid" 2>/dev/null || alive=1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return $alive
}

# The capture systems' proxies run as an unprivileged uid: no capabilities, and its own
# connections (the client proxy's HBONE dials) are the ones the redirect leaves alone.
AS_PROXY_UID=(setpriv --reuid "$PROXY_UID" --regid "$PROXY_GID" --clear-groups)

# `weft redirect` only ever runs inside the client namespace (`ip netns exec` runs
# nothing if the namespace is gone), so the host's own rules are never touched.
REDIRECT_BIN=""
redirect_install() {  # weft binary
    REDIRECT_BIN=$1
    ip netns exec "$NS_C" "$1" redirect install --proxy-uid "$PROXY_UID" \
        --outbound-port "$PORT_CAPTURE" --no-dns >>"$LOGS/redirect.log" 2>&1
}
nat_weft_rules() {  # -> the number of WEFT lines in the client namespace's nat tables
    { ip netns exec "$NS_C" iptables-save -t nat 2>/dev/null
      ip netns exec "$NS_C" ip6tables-save -t nat 2>/dev/null; } | grep -c WEFT || true
}
redirect_remove() {  # -> 0 when no WEFT rule is left in the client namespace
    [[ $NEED_CAPTURE == 1 ]] || return 0
    ip netns list 2>/dev/null | grep -qw "$NS_C" || return 0
    local bin=${REDIRECT_BIN:-$WEFT}
    [[ -x $bin ]] || bin=$WEFT
    ip netns exec "$NS_C" "$bin" redirect remove >>"$LOGS/redirect.log" 2>&1
    REDIRECT_BIN=""
    [[ $(nat_weft_rules) == 0 ]]
}

# The backend is pinned to the load core; unpinned systems let it run on every CPU for
# their round (the same nginx process, so no system gets a fresh or a warmer backend).
BACKEND_PID=""
BACKEND_UNPINNED=0
backend_cpus() {  # cpu list
    local p
    [[ -n $BACKEND_PID ]] || return 0
    for p in $(tree_pids "$BACKEND_PID"); do taskset -apc "$1" "$p" >/dev/null 2>&1 || true; done
    BACKEND_UNPINNED=0
    [[ $1 == "$LOAD_CORE" ]] || BACKEND_UNPINNED=1
}

affinity_of() {  # pid -> the cpu list of every process in its tree, e.g. "0,1 0,1"
    local p lists=()
    for p in $(tree_pids "$1"); do lists+=("$(taskset -pc "$p" 2>/dev/null | awk -F': ' '{print $2}')"); done
    echo "${lists[*]}"
}

wait_http() {  # ns url [expect]; 10 s
    local ns=$1 url=$2 _
    for _ in $(seq 100); do
        ip netns exec "$ns" curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

tree_pids() {  # pid -> pid and its direct children (nginx master + worker)
    echo "$1"
    pgrep -P "$1" 2>/dev/null || true
}

cpu_ticks() {  # entries "name:pid" -> utime+stime summed over the process trees
    local e p total=0 stat rest
    for e in "$@"; do
        for p in $(tree_pids "${e#*:}"); do
            stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
            rest=${stat##*) }   # fields from 3 on
            read -r -a f <<<"$rest"
            total=$((total + f[11] + f[12]))   # utime (14), stime (15)
        done
    done
    echo "$total"
}

mem_sample() {  # label entries... -> "mem LABEL NAME RSS_KB HWM_KB" per proxy
    local label=$1 e p rss hwm r h; shift
    for e in "$@"; do
        rss=0 hwm=0
        for p in $(tree_pids "${e#*:}"); do
            r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
            h=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
            rss=$((rss + ${r:-0})) hwm=$((hwm + ${h:-0}))
        done
        echo "mem $label ${e%%:*} $rss $hwm"
    done
}

# ---------------------------------------------------------------- load --------------
run_wrk() {  # out conns path duration url
    local out=$1 conns=$2 path=$3 dur=$4 url=$5
    ip netns exec "$NS_C" taskset -c "$LOAD_CPUS" \
        wrk -t1 -c"$conns" -d"${dur}s" --timeout 5s --latency -s "$RUN/report.lua" "$url$path" \
        >"$out" 2>&1 || true
    grep -q '^WRKJSON' "$out" || { log "  wrk produced no result: $(tail -3 "$out" | tr '\n' ' ')"; }
}

wrk_field() {  # file field
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.startswith("WRKJSON "): print(json.loads(l[8:])[sys.argv[2]])' "$1" "$2"
}

run_with_sampler() {  # procfile label entries... -- command...
    local procfile=$1 label=$2; shift 2
    local entries=()
    while [[ $1 != -- ]]; do entries+=("$1"); shift; done
    shift
    SAMPLER=""
    if ((${#entries[@]})); then
        ( while sleep 1; do mem_sample "$label" "${entries[@]}" >>"$procfile"; done ) &
        SAMPLER=$!
    fi
    "$@"
    if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; fi
    SAMPLER=""
}

# Starts one system; sets URL, ENTRIES ("name:pid" of each proxy process) and LOAD_CPUS
# (where wrk and oha run).
URL=""
ENTRIES=()
LOAD_CPUS=$LOAD_CORE
SCRAPE_METRICS=0
start_system() {  # system round
    local sys=$1 name=$1 r=$2 pid weft=$WEFT
    ENTRIES=()
    LOAD_CPUS=$LOAD_CORE
    if [[ $sys == *@base ]]; then
        [[ -x $WEFT_BASE ]] || die "$sys needs WEFT_BASE=<a weft binary>"
        weft=$WEFT_BASE
        sys=${sys%@base}
    fi
    # "NAME+wN": the same system with N runtime threads per proxy instead of 1.
    local workers=1
    if [[ $sys =~ ^(.*)\+w([0-9]+)$ ]]; then
        sys=${BASH_REMATCH[1]}
        workers=${BASH_REMATCH[2]}
    fi
    case $sys in
    direct)
        URL="http://$ADDR_S:8080" ;;
    haproxy)
        start_proc "$NS_C" "$PROXY_CORE" "$LOGS/r$r-haproxy.log" haproxy -db -f "$RUN/haproxy.cfg"
        ENTRIES=("haproxy:$LAST_PID")
        URL="http://127.0.0.1:$PORT_HAPROXY" ;;
    nginx)
        start_proc "$NS_C" "$PROXY_CORE" "$LOGS/r$r-nginx-proxy.log" \
            nginx -c "$RUN/nginx-proxy.conf" -e "$LOGS/nginx-proxy-error.log"
        ENTRIES=("nginx:$LAST_PID")
        URL="http://127.0.0.1:$PORT_NGINX" ;;
    weft-1hop|weft-1hop-bare|weft-1hop-policies)
        start_proc "$NS_C" "$PROXY_CORE" "$LOGS/r$r-$name.log" \
            env NO_COLOR=1 "$weft" proxy --config "$RUN/$sys.yaml" --workers "$workers"
        ENTRIES=("client:$LAST_PID")
        wait_http "$NS_C" http://127.0.0.1:15000/ready || return 1
        URL="http://127.0.0.1:$PORT_WEFT1" ;;
    weft-2hop-l7|weft-2hop-l4|weft-2hop-l7-permissions|weft-2hop-l7-telemetry-*)
        local proto=http server=http
        [[ $sys == weft-2hop-l4 ]] && proto=tcp server=tcp
        [[ $sys == weft-2hop-l7-permissions ]] && server=http-permissions
        if [[ $sys == weft-2hop-l7-telemetry-* ]]; then
            proto=http-telemetry-${sys#weft-2hop-l7-telemetry-}
            server=$proto
        fi
        start_proc "$NS_S" "$PROXY_CORE" "$LOGS/r$r-$name-server.log" \
            env NO_COLOR=1 "$weft" proxy --config "$RUN/weft-2hop-$server-server.yaml" --workers "$workers"
        ENTRIES=("server:$LAST_PID")
        start_proc "$NS_C" "$PROXY_CORE" "$LOGS/r$r-$name-client.log" \
            env NO_COLOR=1 "$weft" proxy --config "$RUN/weft-2hop-$proto-client.yaml" --workers "$workers"
        ENTRIES=("client:$LAST_PID" "${ENTRIES[@]}")
        wait_http "$NS_S" http://127.0.0.1:15000/ready || return 1
        wait_http "$NS_C" http://127.0.0.1:15000/ready || return 1
        URL="http://127.0.0.1:$PORT_WEFT2" ;;
    direct-unpinned)
        LOAD_CPUS=$ALL_CPUS
        backend_cpus "$ALL_CPUS"
        URL="http://$ADDR_S:8080" ;;
    weft-2hop-l7-capture|weft-2hop-l4-capture)
        # wrk dials the backend's own address, as for direct; the redirect in the client
        # namespace sends it to the client proxy's capture listener, which routes it as
        # service nginx (whose VIP is that address) over HBONE mTLS to the server proxy.
        # Nothing pinned: proxies, wrk/oha and the backend share every CPU.
        local proto=http
        [[ $sys == weft-2hop-l4-capture ]] && proto=tcp
        LOAD_CPUS=$ALL_CPUS
        backend_cpus "$ALL_CPUS"
        SCRAPE_METRICS=1
        start_proc "$NS_S" "$ALL_CPUS" "$LOGS/r$r-$name-server.log" "${AS_PROXY_UID[@]}" \
            env NO_COLOR=1 "$weft" proxy --config "$RUN/weft-2hop-$proto-capture-server.yaml" --workers "$workers"
        ENTRIES=("server:$LAST_PID")
        start_proc "$NS_C" "$ALL_CPUS" "$LOGS/r$r-$name-client.log" "${AS_PROXY_UID[@]}" \
            env NO_COLOR=1 "$weft" proxy --config "$RUN/weft-2hop-$proto-capture-client.yaml" --workers "$workers"
        ENTRIES=("client:$LAST_PID" "${ENTRIES[@]}")
        wait_http "$NS_S" http://127.0.0.1:15000/ready || return 1
        wait_http "$NS_C" http://127.0.0.1:15000/ready || return 1
        redirect_install "$weft" || { log "  weft redirect install failed (see $LOGS/redirect.log)"; return 1; }
        URL="http://$ADDR_S:8080" ;;
    *) die "unknown system $sys" ;;
    esac
    wait_http "$NS_C" "$URL/100b" || return 1
}

alive_check() {  # statusfile entries...
    local st=$1 e; shift
    for e in "$@"; do
        kill -0 "${e#*:}" 2>/dev/null || { echo "crashed ${e%%:*} (pid ${e#*:})" >>"$st"; return 1; }
    done
}

measure() {  # system round
    local sys=$1 r=$2 base=$RAW/r$2-$1
    local proc=$base-proc.txt st=$base-status.txt
    : >"$proc"; : >"$st"
    echo "clk_tck $(getconf CLK_TCK)" >>"$proc"
    log "round $r/$ROUNDS: $sys"
    CUR_BASE=$base
    if ! start_system "$sys" "$r"; then
        echo "failed to start or not ready" >>"$st"
        log "  $sys did not become ready; skipped this round"
        stop_system; return
    fi
    # Idle means settled: a Weft proxy gives back its start-up code's pages 2 s after
    # it is ready (ADR 34); every system waits the same before the sample.
    sleep "$IDLE_SETTLE"
    mem_sample idle "${ENTRIES[@]}" >>"$proc"
    local e
    for e in "${ENTRIES[@]}" "backend:$BACKEND_PID"; do
        echo "affinity ${e%%:*} $(affinity_of "${e#*:}")" >>"$proc"
    done
    echo "affinity load $LOAD_CPUS" >>"$proc"
    for e in "${ENTRIES[@]}"; do   # what ran, as whom: the record of @base and PROXY_UID
        echo "uid ${e%%:*} $(awk '/^Uid:/ {print $2}' "/proc/${e#*:}/status" 2>/dev/null)" >>"$proc"
        echo "exe ${e%%:*} $(readlink "/proc/${e#*:}/exe" 2>/dev/null)" >>"$proc"
    done

    # End-to-end check of both bodies before measuring anything.
    local got100 got1m
    got100=$(ip netns exec "$NS_C" curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "$URL/100b" || true)
    got1m=$(ip netns exec "$NS_C" curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "$URL/1m" || true)
    if [[ $got100 != "200 100" || $got1m != "200 1048576" ]]; then
        echo "bad responses: /100b -> '$got100', /1m -> '$got1m'" >>"$st"
        log "  $sys: bad responses (/100b '$got100', /1m '$got1m'); skipped"
        stop_system; return
    fi

    run_wrk "$base-warmup.wrk.txt" 10 /100b "$W_SEC" "$URL"

    local t0 t1
    t0=$(cpu_ticks "${ENTRIES[@]}")
    run_with_sampler "$proc" load "${ENTRIES[@]}" -- run_wrk "$base-c10_100b.wrk.txt" 10 /100b "$D_SEC" "$URL"
    t1=$(cpu_ticks "${ENTRIES[@]}")
    echo "cpu c10_100b $((t1 - t0))" >>"$proc"
    alive_check "$st" "${ENTRIES[@]}" || { log "  $sys crashed under load"; stop_system; return; }

    t0=$(cpu_ticks "${ENTRIES[@]}")
    run_wrk "$base-c1_100b.wrk.txt" 1 /100b "$D_SEC" "$URL"
    t1=$(cpu_ticks "${ENTRIES[@]}")
    echo "cpu c1_100b $((t1 - t0))" >>"$proc"

    t0=$(cpu_ticks "${ENTRIES[@]}")
    run_with_sampler "$proc" load "${ENTRIES[@]}" -- run_wrk "$base-c10_1m.wrk.txt" 10 /1m "$D_SEC" "$URL"
    t1=$(cpu_ticks "${ENTRIES[@]}")
    echo "cpu c10_1m $((t1 - t0))" >>"$proc"
    alive_check "$st" "${ENTRIES[@]}" || { log "  $sys crashed under load"; stop_system; return; }

    if [[ $LAT_TOOL == oha ]]; then
        local max1 rate
        max1=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.startswith("WRKJSON "):
        j=json.loads(l[8:]); print(j["requests"]/(j["duration_us"]/1e6) if j["duration_us"] else 0)' \
            "$base-c1_100b.wrk.txt" 2>/dev/null || echo 0)
        rate=$(python3 -c 'import sys; print(max(1, int(float(sys.argv[1]) * float(sys.argv[2]))))' "${max1:-0}" "$LAT_FRACTION")
        echo "$rate" >"$base-lat.rate"
        # Same fixed rate for every system: "added" latency compares like with like.
        ip netns exec "$NS_C" taskset -c "$LOAD_CPUS" \
            "$OHA" --no-tui -c 1 -q "$LAT_RATE" -z "${D_SEC}s" --latency-correction \
            --output-format json "$URL/100b" >"$base-latfix.oha.json" 2>"$base-latfix.oha.err" || true
        # A stated fraction of this system's own 1-connection maximum.
        ip netns exec "$NS_C" taskset -c "$LOAD_CPUS" \
            "$OHA" --no-tui -c 1 -q "$rate" -z "${D_SEC}s" --latency-correction \
            --output-format json "$URL/100b" >"$base-lat.oha.json" 2>"$base-lat.oha.err" || true
    fi
    mem_sample after "${ENTRIES[@]}" >>"$proc"
    alive_check "$st" "${ENTRIES[@]}" || { log "  $sys crashed"; stop_system; return; }
    echo ok >>"$st"
    stop_system
}

CUR_BASE=""
stop_system() {
    local e
    if [[ $SCRAPE_METRICS == 1 ]]; then
        # What each proxy counted: report.py checks that the load really went through
        # both (a capture that passed traffic straight to the backend would not show).
        ip netns exec "$NS_C" curl -s --max-time 2 "http://127.0.0.1:$PORT_METRICS/metrics" \
            >"$CUR_BASE-metrics-client.txt" 2>/dev/null || true
        ip netns exec "$NS_S" curl -s --max-time 2 "http://127.0.0.1:$PORT_METRICS/metrics" \
            >"$CUR_BASE-metrics-server.txt" 2>/dev/null || true
        SCRAPE_METRICS=0
    fi
    # Rules off before the proxies stop: the next system must not be captured.
    [[ -z $REDIRECT_BIN ]] || redirect_remove || die "redirect rules left in $NS_C after 'weft redirect remove' (see $LOGS/redirect.log)"
    for e in "${ENTRIES[@]}"; do stop_proc "${e#*:}" || true; done
    ENTRIES=()
    [[ $BACKEND_UNPINNED == 1 ]] && backend_cpus "$LOAD_CORE"
    sleep 0.5   # let TIME_WAIT sockets and the CPU settle
}

# ---------------------------------------------------------------- main --------------
mkdir -p "$RAW" "$LOGS" "$RUN"
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
NPROC=$(nproc)   # before the harness pins itself to one core
ALL_CPUS=$(taskset -pc $$ | awk -F': ' '{print $2}')   # what unpinned systems run on
install_deps
build_weft
snapshot_weft
setup_latency_tool
# From here on, everything not pinned explicitly (this script, curl, the memory sampler,
# python) stays off the core under test.
taskset -pc "$LOAD_CORE" $$ >/dev/null
# Children inherit the niceness: every measured process gets the same priority.
[[ $NICE != 0 ]] && renice -n "$NICE" -p $$ >/dev/null
setup_netns
gen_pki
write_configs
check_configs

log "starting the nginx backend (1 worker, core $LOAD_CORE) in $NS_S"
start_proc "$NS_S" "$LOAD_CORE" "$LOGS/backend.log" nginx -c "$RUN/backend.conf" -e "$LOGS/backend-error.log"
BACKEND_PID=$LAST_PID
wait_http "$NS_S" http://127.0.0.1:8080/100b || die "backend not reachable on 127.0.0.1:8080"
wait_http "$NS_C" "http://$ADDR_S:8080/100b" || die "backend not reachable from $NS_C at $ADDR_S:8080"

if [[ $SPIN == 1 ]]; then
    # A SCHED_IDLE task runs only when nothing else wants the CPU, so the vCPU never
    # halts and wake-ups do not pay the hypervisor's halt/IPI round trip.
    for core in "$PROXY_CORE" "$LOAD_CORE"; do
        taskset -c "$core" chrt -i 0 bash -c 'while :; do :; done' &
        PIDS+=("$!")
    done
fi

# Let the build's load decay a little before recording the "before" figure.
sleep "${SETTLE:-5}"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host_kernel=$(uname -r)"
    echo "nproc=$NPROC"
    echo "cpu_model=$CPU_MODEL"
    echo "load_at_start=$LOAD_AT_START"
    echo "load_before=$LOAD_BEFORE"
    echo "rounds=$ROUNDS"
    echo "duration_s=$D_SEC"
    echo "lat_tool=$LAT_TOOL"
    echo "lat_note=$LAT_NOTE"
    echo "lat_fraction=$LAT_FRACTION"
    echo "lat_rate=$LAT_RATE"
    echo "nice=$NICE"
    echo "spin=$SPIN"
    echo "all_cpus=$ALL_CPUS"
    echo "proxy_core=$PROXY_CORE"
    echo "load_core=$LOAD_CORE"
    echo "proxy_uid=$PROXY_UID"
    echo "busiest_before=$(top -bn2 -d0.5 -w200 | awk '/^top -/ {n++} n==2 && $1 ~ /^[0-9]+$/ && c<4 {printf "%s%s %s%%", (c?", ":""), $12, $9; c++}')"
    echo "systems=$SYSTEMS"
    # sudo resets the environment: the variables go after it to take effect.
    echo "command=sudo $( [[ $SYSTEMS != "$DEFAULT_SYSTEMS" ]] && echo "SYSTEMS=\"$SYSTEMS\" ")$( [[ $ROUNDS != 5 || $D_SEC != 10 ]] && echo "ROUNDS=$ROUNDS DURATION=${D_SEC}s ")$( [[ $NICE != 0 ]] && echo "NICE=$NICE ")$( [[ $SPIN != 0 ]] && echo "SPIN=$SPIN ")bench/run.sh"
    echo "nginx=$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "haproxy=$(haproxy -v | awk 'NR==1 {print $3}')"
    echo "wrk=$(wrk --version 2>&1 | awk 'NR==1 {print $2}')"
    [[ -n $WEFT_BASE ]] && echo "weft_base=$WEFT_BASE ($("$WEFT_BASE" --version 2>/dev/null || echo weft)), systems ending in @base"
    echo "weft=$("$WEFT" --version 2>/dev/null || echo "weft") (binary built ${WEFT_BUILT:-?}; tree at $(cd "$ROOT_DIR" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT_DIR" && git diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/'))"
} >"$OUT/meta.txt"
log "machine: $NPROC CPUs, $CPU_MODEL, load average $LOAD_BEFORE"

for r in $(seq "$ROUNDS"); do
    for sys in $SYSTEMS; do
        kill -0 "$BACKEND_PID" 2>/dev/null || die "the nginx backend died"
        measure "$sys" "$r"
    done
done

python3 "$BENCH_DIR/report.py" "$OUT" | tee "$OUT/report.md"
log "report: $OUT/report.md (raw data in $RAW, logs in $LOGS)"

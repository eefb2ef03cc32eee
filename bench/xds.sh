#!/usr/bin/env bash
# Weft control-plane scale benchmark: N simulated xDS clients against one
# `weft control-plane`; time from an API write to the last ACK, and memory per proxy.
#
#   bench/xds.sh                 # N = 1000 then 10000
#   bench/xds.sh 1000            # one size
#   ROUNDS=10 bench/xds.sh 1000 10000
#
# For each N: a fresh control plane (temporary SQLite data dir, loopback ports,
# --grace-period 10m) pinned to CPU 0, the simulator
# (crates/weft-control/examples/xds_sim.rs) pinned to CPU 1. Output: one result line
# per N on stdout, and everything (control-plane and simulator logs, the binaries'
# copies, report.txt) in bench/out/xds-<stamp>/. See bench/README.md.
set -euo pipefail

# ---------------------------------------------------------------- parameters --------
ROUNDS=${ROUNDS:-5}               # measured API writes per N
TARGETS=${TARGETS:-4}             # clients that are endpoints of the target service
DEBOUNCE=${DEBOUNCE:-50ms}        # control-plane --debounce (its default)
LOG_LEVEL=${LOG_LEVEL:-info}      # control-plane --log-level (its default)
CONCURRENCY=${CONCURRENCY:-200}   # simulator: connections being set up at once
CP_CPU=${CP_CPU:-0}               # core of the control plane (system under test)
SIM_CPU=${SIM_CPU:-1}             # core of the simulator
SKIP_BUILD=${SKIP_BUILD:-0}       # 1: use the existing release binaries as they are
RUN_TIMEOUT=${RUN_TIMEOUT:-300}   # seconds: hard limit on one simulator run

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$BENCH_DIR")
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$BENCH_DIR/out/xds-$STAMP}
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(1000 10000)
for n in "${SIZES[@]}"; do
    [[ $n =~ ^[0-9]+$ && $n -ge $TARGETS ]] || { echo "xds.sh: N must be an integer >= TARGETS ($TARGETS): $n" >&2; exit 2; }
done
[[ $ROUNDS =~ ^[0-9]+$ ]] || { echo "xds.sh: ROUNDS must be an integer" >&2; exit 2; }

log() { printf '[xds.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$OUT"
WEFT=$OUT/weft
SIM=$OUT/xds_sim

# Runs cargo as the invoking user under sudo, so target/ keeps its owner.
run_cargo() {
    if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
        local user_home
        user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        sudo -u "$SUDO_USER" -H env "PATH=$user_home/.cargo/bin:$PATH" cargo "$@"
    else
        env "PATH=$HOME/.cargo/bin:$PATH" cargo "$@"
    fi
}

# ---------------------------------------------------------------- build -------------
if [[ $SKIP_BUILD != 1 ]]; then
    log "building weft and the simulator (release; may wait for the cargo lock)"
    (cd "$ROOT_DIR" && run_cargo build --release -p weft &&
        run_cargo build --release -p weft-control --example xds_sim) >"$OUT/build.log" 2>&1 ||
        { tail -30 "$OUT/build.log" >&2; die "release build failed (see $OUT/build.log)"; }
fi
for bin in "$ROOT_DIR/target/release/weft" "$ROOT_DIR/target/release/examples/xds_sim"; do
    [[ -x $bin ]] || die "$bin missing (build it, or unset SKIP_BUILD)"
done
# Measure one pair of binaries for the whole run even if target/ is rebuilt meanwhile.
cp "$ROOT_DIR/target/release/weft" "$WEFT"
cp "$ROOT_DIR/target/release/examples/xds_sim" "$SIM"

# ---------------------------------------------------------------- limits ------------
# Each stream is one TCP connection: both processes need ~N descriptors.
max_n=0
for n in "${SIZES[@]}"; do (( n > max_n )) && max_n=$n; done
want_fds=$(( 2 * max_n + 4096 ))
if (( $(ulimit -n) < want_fds )); then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
(( $(ulimit -n) >= max_n + 1024 )) || die "open files limit $(ulimit -n) is too low for N=$max_n (raise it or run as root)"
# Raise (never lower) listen-queue limits; the simulator connects 200 at a time anyway.
raise_sysctl() {
    local key=$1 want=$2 path="/proc/sys/${1//./\/}" have
    have=$(cat "$path" 2>/dev/null || echo 0)
    if (( have < want )); then
        sysctl -qw "$key=$want" 2>/dev/null || log "warning: cannot raise $key ($have < $want); run as root"
    fi
}
raise_sysctl net.core.somaxconn 4096
raise_sysctl net.ipv4.tcp_max_syn_backlog 4096

# ---------------------------------------------------------------- helpers -----------
kb_of() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}
CLK_TCK=$(getconf CLK_TCK)

CP_PID=""
DATA=""
stop_cp() {
    if [[ -n $CP_PID ]] && kill -0 "$CP_PID" 2>/dev/null; then
        kill -TERM "$CP_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$CP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CP_PID" 2>/dev/null || true
        wait "$CP_PID" 2>/dev/null || true
    fi
    CP_PID=""
    [[ -n $DATA ]] && rm -rf "$DATA"
    DATA=""
}
trap stop_cp EXIT

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(hostname), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "command: ROUNDS=$ROUNDS TARGETS=$TARGETS DEBOUNCE=$DEBOUNCE LOG_LEVEL=$LOG_LEVEL bench/xds.sh ${SIZES[*]}"
    echo "control plane: CPU $CP_CPU, SQLite store, --debounce $DEBOUNCE, --grace-period 10m, --log-level $LOG_LEVEL, workload quotas and xDS connection caps raised to N"
    echo "simulator: CPU $SIM_CPU, one TCP/h2 connection per stream, plaintext delta ADS, $TARGETS target endpoints"
} | tee "$OUT/report.txt" >&2

RESULTS=()
STATUS=0
for n in "${SIZES[@]}"; do
    api_port=$(pick_port 25681)
    xds_port=$(pick_port $((api_port + 1)))
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/weft-xds-bench.XXXXXX")
    log "N=$n: control plane on CPU $CP_CPU (api :$api_port, xds :$xds_port, data $DATA)"
    taskset -c "$CP_CPU" "$WEFT" control-plane --data-dir "$DATA" \
        --api-listen "127.0.0.1:$api_port" --xds-listen "127.0.0.1:$xds_port" \
        --grace-period 10m --debounce "$DEBOUNCE" --log-level "$LOG_LEVEL" \
        --max-workloads-per-identity "$n" --max-workloads-per-token "$n" \
        --xds-max-connections "$((n + 100))" --xds-max-connections-per-source "$((n + 100))" \
        >"$OUT/cp-$n.log" 2>&1 &
    CP_PID=$!
    ready=0
    for _ in $(seq 200); do
        if [[ -f $DATA/ca.crt ]] && curl -fsS -o /dev/null --cacert "$DATA/ca.crt" "https://127.0.0.1:$api_port/readyz" 2>/dev/null; then ready=1; break; fi
        kill -0 "$CP_PID" 2>/dev/null || break
        sleep 0.1
    done
    [[ $ready == 1 ]] || { tail -20 "$OUT/cp-$n.log" >&2; die "N=$n: control plane not ready (see $OUT/cp-$n.log)"; }
    sleep 1
    rss_idle=$(kb_of "$CP_PID" VmRSS)
    ticks_before=$(cpu_ticks "$CP_PID")

    # The API needs the admin token; with it the simulator issues its workload tokens
    # for default/sim, one per label set (a workload's labels come from its token).
    export WEFT_TOKEN
    WEFT_TOKEN=$(cat "$DATA/admin-token")

    log "N=$n: simulator on CPU $SIM_CPU, $ROUNDS rounds"
    sim_rc=0
    timeout "$RUN_TIMEOUT" taskset -c "$SIM_CPU" "$SIM" \
        --xds "https://127.0.0.1:$xds_port" --api "https://127.0.0.1:$api_port" --ca-file "$DATA/ca.crt" \
        -n "$n" --targets "$TARGETS" --rounds "$ROUNDS" --connect-concurrency "$CONCURRENCY" \
        --cp-pid "$CP_PID" --clk-tck "$CLK_TCK" \
        >"$OUT/sim-$n.log" 2>&1 || sim_rc=$?
    sed 's/^/    /' "$OUT/sim-$n.log" >&2
    ticks_total=$(( $(cpu_ticks "$CP_PID") - ticks_before ))
    cp_alive=yes
    kill -0 "$CP_PID" 2>/dev/null || cp_alive=no
    hwm=$(kb_of "$CP_PID" VmHWM)
    stop_cp

    # key=value pairs of the simulator's RESULT line.
    declare -A r=()
    line=$(grep '^RESULT ' "$OUT/sim-$n.log" | tail -1 || true)
    for kv in ${line#RESULT }; do r[${kv%%=*}]=${kv#*=}; done
    if [[ -z $line ]]; then
        RESULTS+=("N=$n: FAILED (simulator exit $sim_rc, no result; see $OUT/sim-$n.log)")
        STATUS=1
        unset r
        continue
    fi
    synced_kb=${r[cp_rss_synced_kb]:-0}
    res=$(awk -v n="$n" -v idle="$rss_idle" -v con="$synced_kb" -v hwm="$hwm" \
        -v p50="${r[p50_ms]}" -v p90="${r[p90_ms]}" -v p99="${r[p99_ms]}" -v max="${r[max_ms]}" \
        -v sync="${r[sync_s]}" -v conn="${r[connect_s]}" -v rounds="${r[rounds]}" \
        -v cpu="${r[cp_cpu_rounds_s]:-nan}" -v tick="$ticks_total" -v hz="$CLK_TCK" \
        -v simcpu="${r[sim_cpu_rounds_s]:-nan}" -v idlecpu="${r[cp_idle_cpu_pct]:-nan}" \
        -v failed="${r[failed]}" -v missed="${r[missed]}" -v target_ms="$([[ $n -le 1000 ]] && echo 1000 || echo 3000)" '
        BEGIN {
            per = (con - idle) / 1024 / n
            verdict = (p99 < target_ms && per <= 0.5 && failed == 0 && missed == 0) ? "PASS" : "FAIL"
            printf "N=%d: connect %.1f s, connect+sync %.1f s | CP RSS idle %.1f MB, connected %.1f MB, peak %.1f MB -> %.3f MB/proxy | push p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms (%d rounds) | CP CPU %.2f s in rounds (simulator %.2f s), %.1f s whole run, %.1f %% of a core idle-connected | failed %d, missed %d | targets p99 < %d ms, <= 0.5 MB/proxy: %s",
                n, conn, sync, idle / 1024, con / 1024, hwm / 1024, per, p50, p90, p99, max, rounds, cpu, simcpu, tick / hz, idlecpu, failed, missed, target_ms, verdict
        }')
    [[ $sim_rc == 0 && $cp_alive == yes ]] || { res="$res | simulator exit $sim_rc, control plane alive: $cp_alive"; STATUS=1; }
    RESULTS+=("$res")
    unset r
done

{
    echo
    echo "results (bench/xds.sh; output in $OUT):"
    for res in "${RESULTS[@]}"; do echo "$res"; done
} | tee -a "$OUT/report.txt"
exit "$STATUS"

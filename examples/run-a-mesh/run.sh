#!/usr/bin/env bash
# README "Run a mesh", runnable: a control plane with its builtin mesh CA, an app behind
# the api proxy, a client proxy (web), workload tokens that grant each proxy its
# identity and labels, `weft apply`, and one request across HBONE mTLS. Every
# certificate comes from the control plane.
#
#   curl ─► 127.0.0.1:18080 (web proxy) ══ HBONE mTLS ══► 127.0.0.2:15008 (api proxy) ─► app 127.0.0.1:9090
#                    └──── xDS + certificates ──► weft control-plane (xDS :5678, API :5681) ◄── weft apply
#
# Needs: cargo (or WEFT=/path/to/weft), python3, curl. No root. Uses the ports above.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d -t weft-run-a-mesh-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${WEFT:-}" ]; then
  echo "==> building weft (release)"
  cargo build --release --quiet -p weft --manifest-path "$root/Cargo.toml"
  WEFT="$root/target/release/weft"
fi
WEFT=$(realpath "$WEFT")
# `weft` below is the binary itself (not a shell function), so that the cleanup's
# SIGTERM reaches the processes started in the background.
mkdir -p "$work/bin" && ln -s "$WEFT" "$work/bin/weft" && export PATH="$work/bin:$PATH"
cd "$work"

echo "==> the app: echoes the request headers it receives, on 127.0.0.1:9090"
python3 "$here/../local-mesh/echo_app.py" 127.0.0.1 9090 & pids+=($!)

echo "==> weft control-plane --data-dir ./cp"
weft control-plane --data-dir ./cp --log-level warn & pids+=($!)
export WEFT_CONTROL_PLANE=https://127.0.0.1:5681
export WEFT_CA_FILE=./cp/ca.crt
for _ in $(seq 100); do
  [ -f "$WEFT_CA_FILE" ] && curl -sf --cacert "$WEFT_CA_FILE" "$WEFT_CONTROL_PLANE/readyz" >/dev/null && break
  sleep 0.1
done
WEFT_TOKEN=$(weft token admin --data-dir ./cp)
export WEFT_TOKEN

echo "==> one workload token per identity and label set"
weft token workload --service-account web --label app=web > web.token
weft token workload --service-account api --label app=api > api.token
chmod 600 ./*.token

echo "==> two proxies from bootstrap files; they get certificates and config from the control plane"
for proxy in api web; do
  weft proxy --config "$here/$proxy.yaml" --control-plane https://127.0.0.1:5678 \
    --control-plane-ca ./cp/ca.crt --token-file $proxy.token --state-dir "./state-$proxy" \
    --log-level warn & pids+=($!)
done

echo "==> weft apply -f mesh.yaml"
weft apply -f "$here/mesh.yaml"
for admin in 127.0.0.2:15000 127.0.0.1:15000; do
  for _ in $(seq 100); do curl -sf "http://$admin/ready" >/dev/null && break; sleep 0.1; done
done
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18080/ && break; sleep 0.1; done
weft get workloads

echo "==> a request through the mesh: the app sees the caller's verified SPIFFE ID"
curl -sSf http://127.0.0.1:18080/hello | python3 -m json.tool
echo "==> done; the proxies and the control plane drain and exit on SIGTERM"

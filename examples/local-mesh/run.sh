#!/usr/bin/env bash
# A control plane and a two-proxy mesh on loopback, end to end, in about a minute
# (most of it the build): an operator-provided PKI made with openssl, `weft
# control-plane` with its embedded store, an app behind a Weft proxy, a client behind
# another, `weft apply` of a Service and an HTTPRoute, and one request that crosses
# HBONE mTLS between the proxies.
#
#   client ──► 127.0.0.1:18080 (weft, outbound) ══ HBONE mTLS ══► 127.0.0.2:15008 (weft, inbound) ──► app 127.0.0.1:9090
#                           └───────── delta xDS ──► weft control-plane (127.0.0.1:5678, API :5681) ◄── weft apply
#
# Needs: cargo, openssl, python3, curl. No root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d -t weft-local-mesh-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> building weft (release)"
cargo build --release --quiet -p weft --manifest-path "$root/Cargo.toml"
weft="$root/target/release/weft"

echo "==> PKI: a P-256 CA and one certificate per workload (SPIFFE IDs in URI SANs)"
cd "$work"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj /CN=local-mesh-ca -days 7 -out ca.crt \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
for sa in web api; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$sa.key" 2>/dev/null
  openssl req -new -key "$sa.key" -subj "/CN=$sa" -out "$sa.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:spiffe://cluster.local/ns/default/sa/%s\n' "$sa" > "$sa.ext"
  openssl x509 -req -in "$sa.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile "$sa.ext" -out "$sa.crt" 2>/dev/null
done

echo "==> the app: echoes the request headers it receives, on 127.0.0.1:9090"
python3 "$here/echo_app.py" 127.0.0.1 9090 & pids+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:9090/ >/dev/null && break; sleep 0.1; done

echo "==> the control plane: embedded SQLite store, API on 127.0.0.1:5681, xDS on 127.0.0.1:5678"
"$weft" control-plane --data-dir "$work/control-plane" --log-level warn & pids+=($!)
export WEFT_CONTROL_PLANE=https://127.0.0.1:5681
# The control plane serves TLS with a certificate from the mesh CA, and writes that
# CA to its data dir: the CLI and the proxies verify the control plane with it.
export WEFT_CA_FILE="$work/control-plane/ca.crt"
for _ in $(seq 100); do
  [ -f "$WEFT_CA_FILE" ] && curl -sf --cacert "$WEFT_CA_FILE" "$WEFT_CONTROL_PLANE/readyz" >/dev/null && break
  sleep 0.1
done
# The operator's admin token (created on first start); the CLI reads $WEFT_TOKEN.
WEFT_TOKEN=$("$weft" token admin --data-dir "$work/control-plane")
export WEFT_TOKEN

echo "==> a workload token per proxy: a proxy can only register, and get config for, its own identity,"
echo "    and carries the labels its token grants"
for proxy in api web; do
  "$weft" token workload --service-account $proxy --label app=$proxy > $proxy.token 2>/dev/null
  chmod 600 $proxy.token
done

echo "==> two proxies from bootstrap files; they register their workloads"
sed "s#@DIR@#$work#g" "$here/api.yaml" > api.yaml
sed "s#@DIR@#$work#g" "$here/web.yaml" > web.yaml
for proxy in api web; do
  "$weft" proxy --config $proxy.yaml --control-plane https://127.0.0.1:5678 \
    --control-plane-ca "$WEFT_CA_FILE" --token-file $proxy.token --state-dir "$work/state" \
    --log-level warn & pids+=($!)
done

echo "==> weft apply -f mesh.yaml"
"$weft" apply -f "$here/mesh.yaml"
for admin in 127.0.0.2:15000 127.0.0.1:15000; do
  for _ in $(seq 100); do curl -sf "http://$admin/ready" >/dev/null && break; sleep 0.1; done
done
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18080/ && break; sleep 0.1; done
"$weft" get workloads
"$weft" get services

echo "==> the client calls the api service through its local proxy"
curl -sS http://127.0.0.1:18080/hello -H 'x-forwarded-client-cert: spoofed' | python3 -m json.tool
echo "    (the app saw the caller's verified SPIFFE ID; the spoofed header was replaced)"

echo "==> outbound metrics of the client's proxy"
curl -s http://127.0.0.1:15020/metrics | grep '^weft_proxy_requests_total'
echo "==> try, on a running mesh: weft describe service api; weft inspect proxy web"
echo "==> done; the proxies and the control plane drain and exit on SIGTERM"

#!/usr/bin/env bash
# A two-proxy mesh on loopback, end to end, in about a minute (most of it the build):
# an operator-provided PKI made with openssl, an app behind a Weft proxy, a client
# behind another, and one request that crosses HBONE mTLS between them.
#
#   client ──► 127.0.0.1:18080 (weft, outbound) ══ HBONE mTLS ══► 127.0.0.2:15008 (weft, inbound) ──► app 127.0.0.1:9090
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

sed "s#@DIR@#$work#g" "$here/api.yaml" > api.yaml
sed "s#@DIR@#$work#g" "$here/web.yaml" > web.yaml
"$weft" proxy --config api.yaml --log-level warn & pids+=($!)
"$weft" proxy --config web.yaml --log-level warn & pids+=($!)

for admin in 127.0.0.2:15000 127.0.0.1:15000; do
  for _ in $(seq 50); do curl -sf "http://$admin/ready" >/dev/null && break; sleep 0.1; done
done
echo "==> proxies ready"

echo "==> the client calls the api service through its local proxy"
curl -sS http://127.0.0.1:18080/hello -H 'x-forwarded-client-cert: spoofed' | python3 -m json.tool
echo "    (the app saw the caller's verified SPIFFE ID; the spoofed header was replaced)"

echo "==> outbound metrics of the client's proxy"
curl -s http://127.0.0.1:15020/metrics | grep '^weft_proxy_requests_total'
echo "==> done; proxies drain and exit on SIGTERM"

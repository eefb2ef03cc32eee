# Sourced by bench/run.sh and bench/instructions.sh: the 50 authorization rules both
# measure, as the `inbound:` block of a local proxy config.
#
#   permissions_block IDENTITY
#
# Mixed L4/L7 under a default of deny: 20 denials by identity, 10 by path prefix, 10
# audits by header, 9 allows for other callers and paths, and last an allow of GET and
# HEAD from IDENTITY, so a benchmark request from it is let in after every other rule
# has been tried.
permissions_block() {
    local i
    echo "inbound:"
    echo "  authorization:"
    echo "    defaultAction: deny"
    echo "    rules:"
    for i in $(seq 1 20); do
        echo "      - { action: deny, source: TrafficPermission/default/deny-id-$i, from: [{ identity: \"spiffe://cluster.local/ns/other-$i/sa/x\" }] }"
    done
    for i in $(seq 1 10); do
        echo "      - { action: deny, source: TrafficPermission/default/deny-path-$i, to: [{ paths: [{ type: PathPrefix, value: /admin-$i }] }] }"
    done
    for i in $(seq 1 10); do
        echo "      - { action: audit, source: TrafficPermission/default/audit-$i, to: [{ headers: [{ name: x-debug-$i, value: { exact: \"on\" } }] }] }"
    done
    for i in $(seq 1 9); do
        echo "      - { source: TrafficPermission/default/allow-$i, from: [{ identity: \"spiffe://cluster.local/ns/other-$i/*\" }], to: [{ methods: [GET], paths: [{ type: PathPrefix, value: /api-$i }] }] }"
    done
    echo "      - { source: TrafficPermission/default/allow-client, from: [{ identity: \"$1\" }], to: [{ methods: [GET, HEAD] }] }"
}

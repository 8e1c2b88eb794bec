#!/usr/bin/env bash
# make demo: three nsyncd nodes on this machine, files syncing between them,
# a conflict kept as a copy, then everything stopped. Leaves no process behind.
set -euo pipefail
BIN=${1:-.build/release/nsyncd}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
cd "$(dirname "$0")/.."
DEMO=$(mktemp -d /tmp/nsyncd-demo.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]:-}"; do [ "${pid:-0}" != 0 ] && kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]:-}"; do [ "${pid:-0}" != 0 ] && wait "$pid" 2>/dev/null || true; done
    rm -rf "$DEMO"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
    local what=$1 limit=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then echo "demo: timed out waiting for $what" >&2; exit 1; fi
        sleep 0.1
    done
}

step "certificates: one cluster CA, one certificate per node"
certs/gen-certs.sh --out "$DEMO/certs" n1 n2 n3

step "starting 3 nodes (logs in $DEMO/n*.log)"
PIDS=(0 0 0 0)
start_node() {
    local i=$1 others=() j
    mkdir -p "$DEMO/n$i"
    for j in 1 2 3; do [ "$j" != "$i" ] && others+=("localhost:1000$j:800$j"); done
    "$BIN" "$DEMO/n$i" --name "n$i" --file-server-port "800$i" --cluster-port "1000$i" \
        --cluster "$(IFS=,; echo "${others[*]}")" \
        --ca "$DEMO/certs/ca.pem" --cert "$DEMO/certs/n$i.pem" --key "$DEMO/certs/n$i.key" \
        >>"$DEMO/n$i.log" 2>&1 &
    PIDS[$i]=$!
}
for i in 1 2 3; do start_node "$i"; done
leader_known() { "$BIN" status "$DEMO/n1" --json | grep -q '"leader" *: *"n'; }
wait_for "a leader" 20 leader_known
"$BIN" status "$DEMO/n1"

step "writing on n1: a file, a subdirectory, a binary file"
echo "hello from n1" >"$DEMO/n1/hello.txt"
mkdir -p "$DEMO/n1/docs/notes"
echo "nested" >"$DEMO/n1/docs/notes/todo.md"
head -c 1048576 /dev/urandom >"$DEMO/n1/docs/random.bin"
for i in 2 3; do
    wait_for "hello.txt on n$i" 20 test -f "$DEMO/n$i/hello.txt"
    wait_for "random.bin on n$i" 20 cmp -s "$DEMO/n1/docs/random.bin" "$DEMO/n$i/docs/random.bin"
done
"$BIN" wait "$DEMO/n1" --timeout 20s
ls -lR "$DEMO/n3" | sed 's/^/  n3: /'

step "editing on n2: the edit reaches n1 and n3"
echo "edited on n2" >"$DEMO/n2/hello.txt"
for i in 1 3; do wait_for "the edit on n$i" 20 grep -q "edited on n2" "$DEMO/n$i/hello.txt"; done
echo "n1/hello.txt: $(cat "$DEMO/n1/hello.txt")"

step "a conflict: n3 is stopped, then n1 and n3 both edit shared.txt; both versions survive"
echo "first version" >"$DEMO/n1/shared.txt"
wait_for "shared.txt on n3" 20 test -f "$DEMO/n3/shared.txt"
"$BIN" wait "$DEMO/n1" --timeout 20s
kill -TERM "${PIDS[3]}"; wait "${PIDS[3]}" || true
echo "n1's edit" >"$DEMO/n1/shared.txt"
echo "n3's edit, made while it was offline" >"$DEMO/n3/shared.txt"
"$BIN" wait "$DEMO/n1" --timeout 20s
start_node 3
conflict_everywhere() {
    for i in 1 2 3; do ls "$DEMO/n$i" | grep -q 'shared.sync-conflict-' || return 1; done
}
wait_for "the conflict copy on every node" 30 conflict_everywhere
"$BIN" wait "$DEMO/n3" --timeout 20s
for i in 1 2 3; do
    for f in "$DEMO/n$i"/shared*; do echo "  n$i: $(basename "$f"): $(cat "$f")"; done
done

step "status of n1"
"$BIN" status "$DEMO/n1"

step "stopping the nodes"
for i in 1 2 3; do kill -TERM "${PIDS[$i]}"; done
for i in 1 2 3; do wait "${PIDS[$i]}" || true; done
PIDS=()
echo "demo finished: every node stopped, $DEMO removed"

#!/usr/bin/env bash
# A real multi-peer download on this machine, no internet needed:
# makes 256 MiB of random content, a torrent of it, three `swarm seed`s on their own
# loopback addresses (127.0.0.2-4), then `swarm fetch` from all three with progress bars,
# and checks the result byte for byte. Everything stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-256}
cargo build --release --quiet
BIN=$PWD/target/release/swarm
WORK=$(mktemp -d)
pids=()
# The seeds stop first (each writes its resume data and exits), then the files go.
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/seed" "$WORK/out"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/seed/demo.bin"
"$BIN" create "$WORK/seed/demo.bin" -o "$WORK/demo.torrent"
"$BIN" info "$WORK/demo.torrent"

peers=()
for i in 2 3 4; do
  port=$((46880 + i))
  "$BIN" seed --no-lsd --no-dht --no-port-mapping "$WORK/demo.torrent" -d "$WORK/seed" --bind 127.0.0.$i --port $port --quiet \
    --state-dir "$WORK/state-seed-$i" &
  pids+=($!)
  peers+=(--peer 127.0.0.$i:$port)
done
sleep 1  # let the seeders verify their data and listen

timeout 300 "$BIN" fetch --no-lsd --no-dht --no-port-mapping "$WORK/demo.torrent" -o "$WORK/out" --bind 127.0.0.1 --port 0 \
  --state-dir "$WORK/state-fetch" "${peers[@]}"
cmp "$WORK/seed/demo.bin" "$WORK/out/demo.bin"
echo "demo: downloaded ${SIZE_MIB} MiB from 3 seeders; content identical."

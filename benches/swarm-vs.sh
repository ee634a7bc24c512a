#!/usr/bin/env bash
# swarm vs. libtorrent, aria2, Transmission (and qBittorrent) on loopback: see README.md
# ("Benchmarks") and `benches/swarm-vs.sh --help`. The work is done by swarm_vs.py, run with
# Debian's /usr/bin/python3 (the only python here that imports python3-libtorrent).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec /usr/bin/python3 "$here/swarm_vs.py" "$@"

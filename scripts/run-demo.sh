#!/usr/bin/env bash
# Starts the demo origin (127.0.0.1:9000) and the edge on its embedded
# defaults (127.0.0.1:8080, store ./sliceedge-data) plus an admin API on
# 127.0.0.1:8081 with a new token (written with the rest of the
# configuration to ./sliceedge-data/demo.yaml), prints curl and sliceedge
# commands that work as printed, and stops both on Ctrl-C.
set -euo pipefail
BIN=${1:-bin/sliceedge}
ORIGIN_ADDR=127.0.0.1:9000
EDGE_ADDR=127.0.0.1:8080
ADMIN_ADDR=127.0.0.1:8081
CONFIG=sliceedge-data/demo.yaml

wait_port() { # host:port name
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "run-demo: $2 did not start on $1 (is the port taken? see the messages above)" >&2
	return 1
}

pids=()
# Once, and waiting for each process by its PID, so that the edge's last
# log line ("stopped") is written before the script ends.
cleanup() {
	trap - EXIT INT TERM
	kill "${pids[@]}" 2>/dev/null || true
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

"$BIN" origin --listen "$ORIGIN_ADDR" &
pids+=($!)
wait_port "$ORIGIN_ADDR" "the demo origin"
# The embedded defaults and an admin section with a token of this run's.
mkdir -p sliceedge-data
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
{
	"$BIN" config defaults
	printf 'admin:\n  listen: %s\n  token: %s\n' "$ADMIN_ADDR" "$TOKEN"
} >"$CONFIG.new"
chmod 600 "$CONFIG.new"
mv "$CONFIG.new" "$CONFIG"
"$BIN" serve --config "$CONFIG" &
pids+=($!)
wait_port "$EDGE_ADDR" "the edge"
wait_port "$ADMIN_ADDR" "the admin API"

cat <<MSG

sliceedge is up: edge http://$EDGE_ADDR -> demo origin http://$ORIGIN_ADDR
(any path whose last element starts with a size is an object: /video/1GiB.mp4, /dl/64MiB-patch.bin)

Try, in another terminal:
  # 64 KiB at 900 MiB into a cold 1 GiB video: one 1 MiB slice comes from the origin
  curl -s -o /dev/null -D - -r 943718400-943783935 http://$EDGE_ADDR/video/1GiB.mp4
  # the same range again: X-Cache: HIT, nothing from the origin
  curl -s -o /dev/null -D - -r 943718400-943783935 http://$EDGE_ADDR/video/1GiB.mp4
  # two ranges at once: a multipart/byteranges answer
  curl -s -D - -r 0-15,1048576-1048591 http://$EDGE_ADDR/video/1GiB.mp4 | head -30
  # a whole 64 MiB object, then its headers alone
  curl -s -o /dev/null -w '%{http_code} %{size_download} bytes\n' http://$EDGE_ADDR/dl/64MiB-patch.bin
  curl -sI http://$EDGE_ADDR/dl/64MiB-patch.bin

The admin API is on http://$ADMIN_ADDR, token $TOKEN
(in $CONFIG, which the commands below read):
  export SLICEEDGE_CONFIG=\$PWD/$CONFIG
  $BIN stats                                   # store, hit ratio, origin traffic
  $BIN stats --watch                           # the same, every 2 s, with rates
  $BIN inspect http://$EDGE_ADDR/video/1GiB.mp4   # which slices are stored
  $BIN purge http://$EDGE_ADDR/video/1GiB.mp4     # drop it
  curl -s http://$ADMIN_ADDR/readyz                       # no token needed
  curl -s -H "Authorization: Bearer $TOKEN" http://$ADMIN_ADDR/config

Ctrl-C stops both. The access log follows.

MSG
wait -n "${pids[@]}"

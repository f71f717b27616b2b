#!/usr/bin/env bash
# memory.sh measures the resident memory of `sliceedge serve` while many
# connections stream large objects: it starts a demo origin and an edge on
# its default settings (a store in a temporary directory, default
# memory_cache) on 127.0.0.1, runs `sliceedge bench -w stream` against it,
# samples the edge's RSS meanwhile, and prints the peak.
#
#   scripts/memory.sh                       # 1000 connections, 16 objects of 64 MiB, 30 s
#   scripts/memory.sh --connections 200 --duration 10s
set -euo pipefail

CONNECTIONS=1000
OBJECTS=16
OBJECT_SIZE=64MiB
DURATION=30s
MEMORY_CACHE=""     # store.memory_cache; empty: the default
BIN=""

usage() {
	cat <<EOF
usage: scripts/memory.sh [options]

Streams OBJECTS cold objects of OBJECT_SIZE whole to CONNECTIONS clients at
once through a fresh sliceedge edge, and reports the edge's peak resident
memory (VmHWM) and the bench figures.

  --connections N     concurrent streaming clients (default: $CONNECTIONS)
  --objects N         objects in the catalogue (default: $OBJECTS)
  --object-size SIZE  their size (default: $OBJECT_SIZE)
  --duration D        how long new downloads start (default: $DURATION)
  --memory-cache SIZE the edge's store.memory_cache (default: sliceedge's default)
  --bin PATH          a sliceedge binary (default: build one)
  -h, --help          this help
EOF
}

die() { echo "memory.sh: $*" >&2; exit 1; }

while (($#)); do
	case $1 in
	--connections) CONNECTIONS=${2:?}; shift ;;
	--objects) OBJECTS=${2:?}; shift ;;
	--object-size) OBJECT_SIZE=${2:?}; shift ;;
	--duration) DURATION=${2:?}; shift ;;
	--memory-cache) MEMORY_CACHE=${2:?}; shift ;;
	--bin) BIN=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sliceedge-memory.XXXXXX")
PIDS=()
cleanup() {
	kill "${PIDS[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [[ -z $BIN ]]; then
	BIN=$WORK/sliceedge
	(cd "$(dirname "$0")/.." && go build -o "$BIN" ./cmd/sliceedge) || die "go build failed"
fi

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "found no free port on 127.0.0.1"
}

wait_port() { # port name pid
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "$3" 2>/dev/null || die "$2 exited while starting (see $WORK/$2.log)"
		sleep 0.1
	done
	die "$2 does not listen on 127.0.0.1:$1 after 30 s"
}

ORIGIN_PORT=$(free_port)
"$BIN" origin --listen "127.0.0.1:$ORIGIN_PORT" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_port "$ORIGIN_PORT" origin "${PIDS[-1]}"

EDGE_PORT=$(free_port)
{
	echo "listen: 127.0.0.1:$EDGE_PORT"
	echo "store:"
	echo "  dir: $WORK/store"
	echo "  max_bytes: 10GiB"
	[[ -n $MEMORY_CACHE ]] && echo "  memory_cache: $MEMORY_CACHE"
	echo "origins:"
	echo "  default:"
	echo "    url: http://127.0.0.1:$ORIGIN_PORT"
	echo "rules:"
	echo "  - match: /"
	echo "    origin: default"
} >"$WORK/edge.yaml"
"$BIN" serve --config "$WORK/edge.yaml" --log-level warn >"$WORK/edge.log" 2>&1 &
EDGE_PID=$!
PIDS+=("$EDGE_PID")
wait_port "$EDGE_PORT" edge "$EDGE_PID"

rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
idle=$(rss_kib "$EDGE_PID" VmRSS)

# The largest RSS seen by sampling, besides the kernel's own high-water mark.
(
	max=0
	while kill -0 "$EDGE_PID" 2>/dev/null; do
		r=$(rss_kib "$EDGE_PID" VmRSS 2>/dev/null || echo 0)
		((r > max)) && max=$r && echo "$max" >"$WORK/max_rss"
		sleep 0.2
	done
) &
SAMPLER=$!

echo "memory.sh: $CONNECTIONS connections streaming $OBJECTS objects of $OBJECT_SIZE for $DURATION (edge RSS at start: $((idle / 1024)) MiB)" >&2
status=0
"$BIN" bench --target "http://127.0.0.1:$EDGE_PORT" --origin "http://127.0.0.1:$ORIGIN_PORT" \
	--workload stream --connections "$CONNECTIONS" --objects "$OBJECTS" --object-size "$OBJECT_SIZE" \
	--duration "$DURATION" --max-requests 1000000 --no-progress || status=$?

hwm=$(rss_kib "$EDGE_PID" VmHWM)
now=$(rss_kib "$EDGE_PID" VmRSS)
kill "$SAMPLER" 2>/dev/null || true
echo
echo "edge resident memory: peak $((hwm / 1024)) MiB (VmHWM), at start $((idle / 1024)) MiB, after $((now / 1024)) MiB"
echo "  ($CONNECTIONS connections, memory_cache ${MEMORY_CACHE:-default}, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'))"
exit "$status"

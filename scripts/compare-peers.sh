#!/usr/bin/env bash
# compare-peers.sh: sliceedge against nginx (slice cache) and Varnish
# (streaming cache), each in front of the same demo origin, on the same
# workloads, in one run, alternating; then a table of each figure and the
# ratio sliceedge ÷ peer.
#
#   scripts/compare-peers.sh [--rounds N] [--duration D] [--workloads LIST] ...
#   scripts/compare-peers.sh --help
#
# What it does:
#   1. installs nginx-extras (nginx with the slice module), varnish and curl
#      with apt-get when they are missing (needs root for that);
#   2. builds sliceedge and the table program into a temporary directory;
#   3. starts ONE demo origin (`sliceedge origin`), then nginx, Varnish and
#      `sliceedge serve` in front of it, each with its own configuration and
#      cache in a temporary work directory, all on 127.0.0.1 only;
#   4. for each round, for each workload, runs `sliceedge bench` against the
#      three targets in an order that rotates from one run to the next,
#      saving every JSON report;
#   5. prints the table (scripts/comparetable) and stops everything.
#
# No traffic leaves 127.0.0.1. The reports and the table stay in the
# results directory (--out); everything else is removed on exit, also on
# Ctrl-C and on errors. docs/peers.md explains the method and the figures.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=$ROOT/scripts/peers
# varnishd and nginx live in sbin, which a user's PATH may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# --- options -----------------------------------------------------------------

ALL_WORKLOADS=hot,seek,mixed,collapse,sequential,flap,stream,coldfill
WORKLOADS=$ALL_WORKLOADS
DURATION=5s          # measured time per workload and target (bench --duration)
ROUNDS=2
CONNECTIONS=16
BIG_OBJECT_SIZE=1GiB # objects of seek, sequential and coldfill (bench --big-object-size)
CACHE_SIZE_GIB=16    # disk budget of nginx's and sliceedge's caches, each
VARNISH_MEM=""       # malloc storage; default: half the available memory
SLICEEDGE_MEMORY=""  # sliceedge's store.memory_cache; empty: its default, as users get it
OUT=""
KEEP_WORKDIR=0
MAX_OTHERS=25        # with --retries, a run during which other processes took more CPU (%)...
RETRIES=0            # ...is repeated at most this many times
TARGETS=(sliceedge nginx varnish) # the first is the one compared

usage() {
	cat <<EOF
usage: scripts/compare-peers.sh [options]

Runs sliceedge, nginx (slice 1m) and Varnish (malloc, streaming) in front of
one demo origin on 127.0.0.1 and compares them with \`sliceedge bench\`.

  --workloads LIST      comma-separated, from $ALL_WORKLOADS (default: all)
  --duration D          measured time per workload and target (default: $DURATION)
  --rounds N            rounds; each runs every workload on every target (default: $ROUNDS)
  --connections N       concurrent clients of bench (default: $CONNECTIONS)
  --big-object-size S   size of the seek, sequential and coldfill objects (default: $BIG_OBJECT_SIZE)
  --cache-size GIB      disk cache budget of nginx and of sliceedge, each (default: $CACHE_SIZE_GIB)
  --varnish-mem SIZE    Varnish malloc storage, e.g. 8G (default: half the available memory)
  --sliceedge-memory S  set sliceedge's store.memory_cache, the RAM of its index (default: not
                        set, so sliceedge's own default, as every other key of its config)
  --retries N           on a shared machine: measure a run again, up to N times, when other
                        processes took more than --max-others of the CPU meanwhile, and
                        keep the least disturbed try (default: $RETRIES)
  --max-others PCT      see --retries (default: $MAX_OTHERS)
  --out DIR             where the reports and the table go (default: a new directory under \${TMPDIR:-/tmp})
  --keep-workdir        do not delete the work directory (configs, caches, logs) on exit
  -h, --help            this help

With the defaults it takes 7 to 10 minutes on 2 cores (more when other
programs keep the CPU busy). Missing packages are installed with apt-get,
which needs root.
EOF
}

die() {
	log "error: $*"
	exit 1
}

log() { printf '%s compare-peers: %s\n' "$(date +%T)" "$*" >&2; }

parse_args() {
	while (($# > 0)); do
		case $1 in
		--workloads) WORKLOADS=${2:?--workloads needs a value}; shift ;;
		--duration) DURATION=${2:?--duration needs a value}; shift ;;
		--rounds) ROUNDS=${2:?--rounds needs a value}; shift ;;
		--connections) CONNECTIONS=${2:?--connections needs a value}; shift ;;
		--big-object-size) BIG_OBJECT_SIZE=${2:?--big-object-size needs a value}; shift ;;
		--cache-size) CACHE_SIZE_GIB=${2:?--cache-size needs a value}; shift ;;
		--varnish-mem) VARNISH_MEM=${2:?--varnish-mem needs a value}; shift ;;
		--sliceedge-memory) SLICEEDGE_MEMORY=${2:?--sliceedge-memory needs a value}; shift ;;
		--out) OUT=${2:?--out needs a value}; shift ;;
		--max-others) MAX_OTHERS=${2:?--max-others needs a value}; shift ;;
		--retries) RETRIES=${2:?--retries needs a value}; shift ;;
		--keep-workdir) KEEP_WORKDIR=1 ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die "unknown argument: $1" ;;
		esac
		shift
	done
	[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds $ROUNDS: want a positive whole number"
	[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "--connections $CONNECTIONS: want a positive whole number"
	[[ $MAX_OTHERS =~ ^[0-9]+$ ]] || die "--max-others $MAX_OTHERS: want a whole percentage"
	[[ $RETRIES =~ ^[0-9]+$ ]] || die "--retries $RETRIES: want a whole number"
	[[ $CACHE_SIZE_GIB =~ ^[1-9][0-9]*$ ]] || die "--cache-size $CACHE_SIZE_GIB: want a whole number of GiB"
	local w
	IFS=, read -ra WORKLOAD_LIST <<<"$WORKLOADS"
	((${#WORKLOAD_LIST[@]} > 0)) || die "--workloads: none given"
	for w in "${WORKLOAD_LIST[@]}"; do
		[[ ,$ALL_WORKLOADS, == *",$w,"* ]] || die "--workloads: unknown workload '$w' (want some of $ALL_WORKLOADS)"
	done
}

# --- tools -------------------------------------------------------------------

# nginx_has_slice: an nginx is installed and built with the slice module.
nginx_has_slice() { command -v nginx >/dev/null && nginx -V 2>&1 | grep -q -- --with-http_slice_module; }

# install_missing installs, with apt-get, the peers and curl when absent.
install_missing() {
	local pkgs=()
	nginx_has_slice || pkgs+=(nginx-extras)
	command -v varnishd >/dev/null || pkgs+=(varnish)
	command -v curl >/dev/null || pkgs+=(curl)
	command -v go >/dev/null || die "Go is needed to build sliceedge and is not on PATH"
	((${#pkgs[@]} > 0)) || return 0

	log "missing: ${pkgs[*]}; installing with apt-get"
	if ((EUID != 0)); then
		die "installing ${pkgs[*]} needs root, and this is not root (uid $EUID): run as root, or install them first: sudo apt-get install ${pkgs[*]}"
	fi
	command -v apt-get >/dev/null || die "no apt-get on this machine: install ${pkgs[*]} (nginx with --with-http_slice_module) by hand"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
	nginx_has_slice || die "nginx is installed but has no slice module (nginx -V shows no --with-http_slice_module)"
	log "installed ${pkgs[*]}. Note: on a machine with systemd, Debian starts their own services" \
		"(nginx on :80, varnish on :6081); this script neither uses nor stops them"
}

# build compiles sliceedge and the table program into $BIN_DIR, so a
# broken build shows before the long run, not after.
build() {
	log "building sliceedge and scripts/comparetable"
	(cd "$ROOT" && go build -o "$BIN_DIR/sliceedge" ./cmd/sliceedge && go build -o "$BIN_DIR/comparetable" ./scripts/comparetable)
	SLICEEDGE=$BIN_DIR/sliceedge
}

# --- processes ---------------------------------------------------------------

declare -A PIDS=()  # name -> pid of what this script started
STARTED=()          # names, in start order (stopped in reverse)
declare -A URLS=()  # target -> base URL
declare -A LOGS=()  # name -> log file
USED_PORTS=" "
PORT=""
RC=0
SECS=0
OTHERS=0
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

# pick_port sets PORT to a TCP port on 127.0.0.1 that nothing listens on
# and that was not handed out before.
pick_port() {
	for _ in $(seq 1 200); do
		PORT=$((20000 + RANDOM % 40000))
		[[ $USED_PORTS == *" $PORT "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			USED_PORTS+="$PORT "
			return 0
		fi
	done
	die "found no free port on 127.0.0.1"
}

# start NAME LOG CMD...: runs CMD in the background, output to LOG.
start() {
	local name=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 &
	PIDS[$name]=$!
	STARTED+=("$name")
	LOGS[$name]=$logf
}

# wait_ready NAME URL: waits until URL answers over HTTP (any status), or
# fails, showing NAME's log, when NAME exits or 30 s pass.
wait_ready() {
	local name=$1 url=$2
	for _ in $(seq 1 300); do
		if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
		if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
			tail -n 20 "${LOGS[$name]}" >&2 || true
			die "$name exited while starting (log above: ${LOGS[$name]})"
		fi
		sleep 0.1
	done
	tail -n 20 "${LOGS[$name]}" >&2 || true
	die "$name does not answer on $url after 30 s (log above)"
}

alive() { kill -0 "${PIDS[$1]}" 2>/dev/null; }

# stop_all stops what this script started, by pid, newest first: TERM,
# then KILL for what is still there after 15 s.
stop_all() {
	local i name pid
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		name=${STARTED[i]}
		pid=${PIDS[$name]}
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name (pid $pid) did not stop after 15 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	STARTED=()
}

CLEANED=0
cleanup() {
	local status=$?
	((CLEANED)) && return
	CLEANED=1
	trap - EXIT INT TERM
	stop_all
	if [[ -n ${WORKDIR:-} && -d $WORKDIR ]]; then
		# The servers' logs are what explains a failure: keep them.
		if [[ -n ${OUT:-} && -d $OUT ]]; then
			mkdir -p "$OUT/logs"
			local f
			for f in "${LOGS[@]}"; do
				[[ -f $f ]] && cp "$f" "$OUT/logs/" 2>/dev/null
			done
			[[ -f $WORKDIR/nginx/error.log ]] && cp "$WORKDIR/nginx/error.log" "$OUT/logs/nginx-error.log"
		fi
		if ((KEEP_WORKDIR)); then
			log "work directory kept: $WORKDIR"
		else
			rm -rf "$WORKDIR"
		fi
	fi
	return "$status"
}

on_signal() {
	log "interrupted; stopping everything"
	cleanup
	exit 130
}

# --- the origin and the three targets -----------------------------------------

start_origin() {
	pick_port
	ORIGIN_ADDR=127.0.0.1:$PORT
	ORIGIN_URL=http://$ORIGIN_ADDR
	start origin "$WORKDIR/origin.log" "$SLICEEDGE" origin --listen "$ORIGIN_ADDR"
	wait_ready origin "$ORIGIN_URL/.origin/stats"
}

# fill TEMPLATE OUT KEY=VALUE...: copies TEMPLATE to OUT with each @KEY@
# replaced by VALUE.
fill() {
	local tmpl=$1 out=$2 kv content
	shift 2
	content=$(<"$tmpl")
	for kv in "$@"; do
		content=${content//"@${kv%%=*}@"/"${kv#*=}"}
	done
	printf '%s\n' "$content" >"$out"
	if grep -q '@[A-Z_]*@' "$out"; then die "$out: placeholder left unfilled: $(grep -o '@[A-Z_]*@' "$out" | head -1)"; fi
}

start_nginx() {
	local dir=$WORKDIR/nginx user=""
	pick_port
	mkdir -p "$dir/tmp"
	# As root, the workers run as nobody; nginx creates the cache and temp
	# directories and hands them to that user.
	((EUID == 0)) && user="user nobody $(id -gn nobody);"
	fill "$PEERS_DIR/nginx.conf.tmpl" "$dir/nginx.conf" \
		"DIR=$dir" "USER_DIRECTIVE=$user" "CACHE_MAX=${CACHE_SIZE_GIB}g" \
		"ORIGIN=$ORIGIN_ADDR" "LISTEN=127.0.0.1:$PORT"
	nginx -t -q -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" ||
		die "nginx refuses $dir/nginx.conf (see above)"
	start nginx "$WORKDIR/nginx.log" nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log"
	URLS[nginx]=http://127.0.0.1:$PORT
	wait_ready nginx "${URLS[nginx]}/"
}

start_varnish() {
	local dir=$WORKDIR/varnish
	pick_port
	mkdir -p "$dir"
	fill "$PEERS_DIR/varnish.vcl.tmpl" "$dir/default.vcl" \
		"ORIGIN_HOST=${ORIGIN_ADDR%:*}" "ORIGIN_PORT=${ORIGIN_ADDR#*:}"
	# -F: foreground; -T none: no management port; -n: its own instance
	# directory, so a system Varnish is left alone.
	start varnish "$WORKDIR/varnish.log" varnishd -F -a "127.0.0.1:$PORT" -T none \
		-f "$dir/default.vcl" -s "malloc,$VARNISH_MEM" -n "$dir/instance"
	URLS[varnish]=http://127.0.0.1:$PORT
	wait_ready varnish "${URLS[varnish]}/"
}

start_sliceedge() {
	local dir=$WORKDIR/sliceedge
	pick_port
	mkdir -p "$dir"
	# Only what it needs to run, and nginx's disk budget: every other key
	# (slice_size, memory_cache, timeouts, ...) stays at sliceedge's
	# default, as a user gets it. --sliceedge-memory is the one exception.
	cat >"$dir/edge.yaml" <<EOF
# sliceedge for compare-peers.sh: its defaults, a store in the work directory.
listen: 127.0.0.1:$PORT
store:
  dir: $dir/store
  max_bytes: ${CACHE_SIZE_GIB}GiB${SLICEEDGE_MEMORY:+
  memory_cache: $SLICEEDGE_MEMORY}
origins:
  default:
    url: $ORIGIN_URL
rules:
  - match: /
    origin: default
EOF
	"$SLICEEDGE" config check "$dir/edge.yaml" >/dev/null || die "sliceedge refuses $dir/edge.yaml"
	# warn: no access log line per request (nginx runs with access_log off).
	start sliceedge "$WORKDIR/sliceedge.log" "$SLICEEDGE" serve --config "$dir/edge.yaml" \
		--log-format json --log-level warn --shutdown-timeout 5s
	URLS[sliceedge]=http://127.0.0.1:$PORT
	wait_ready sliceedge "${URLS[sliceedge]}/"
}

# check_targets asks each target for one small object twice and checks
# that the second answer is a cache hit: the configurations do cache.
check_targets() {
	local t path hdr
	for t in "${TARGETS[@]}"; do
		path=/compare-peers/check-$t/1MiB.bin
		curl -fsS -o /dev/null -r 0-1023 "${URLS[$t]}$path" || die "$t: GET $path failed"
		hdr=$(curl -fsS -o /dev/null -D - -r 0-1023 "${URLS[$t]}$path") || die "$t: GET $path failed"
		grep -qi '^x-cache: *hit' <<<"$hdr" ||
			die "$t does not cache (second GET of $path was not a hit): $(tr -d '\r' <<<"$hdr" | tr '\n' ' ')"
	done
	log "all three answer and cache: ${URLS[sliceedge]} (sliceedge), ${URLS[nginx]} (nginx), ${URLS[varnish]} (varnish)"
}

# --- measuring ----------------------------------------------------------------

# origin_bytes prints the origin's body byte counter.
origin_bytes() {
	curl -fsS --max-time 5 "$ORIGIN_URL/.origin/stats" | sed -n 's/.*"body_bytes": *\([0-9]*\).*/\1/p'
}

# cpu_ticks prints three numbers, in clock ticks: the CPU time the machine
# has spent working (user, nice, system, interrupts, over all cores) since
# boot; the part of it spent by this script and everything it started
# (live processes, and through their parents' counts, the ones that ended:
# bench runs, nginx and Varnish children); and the part spent by kernel
# threads (network softirqs and disk writeback, mostly on our behalf). The
# rest, over a bench run, is what other programs on the machine took
# meanwhile. It is an estimate: a run that leaves the CPU idle (waiting on
# a lock, on the origin) leaves more of it to the others.
cpu_ticks() {
	local f line pid p total=0 ours=0 kernel=0
	local -A parent=() spent=()
	local -a st fields
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		pid=${line%% *}
		read -ra fields <<<"${line##*) }" # after "pid (comm) ": state ppid ...
		parent[$pid]=${fields[1]}
		spent[$pid]=$((fields[11] + fields[12] + fields[13] + fields[14])) # utime stime cutime cstime
	done
	for pid in "${!spent[@]}"; do
		p=$pid
		while [[ -n $p && $p != 0 && $p != 1 && $p != 2 && $p != "$$" ]]; do p=${parent[$p]:-}; done
		case $p in
		"$$") ours=$((ours + spent[$pid])) ;;
		2) kernel=$((kernel + spent[$pid])) ;; # kthreadd's children
		esac
	done
	read -ra st < <(grep '^cpu ' /proc/stat)
	# user nice system irq softirq: a process's own count includes the
	# interrupts handled while it ran.
	total=$((st[1] + st[2] + st[3] + st[6] + st[7]))
	echo "$total $ours $kernel"
}

# percent A B S: the CPU time between two cpu_ticks readings A and B taken
# S seconds apart, as percentages of all cores: "ours others" (others:
# neither this script's processes nor kernel threads).
percent() {
	awk -v a="$1" -v b="$2" -v s="$3" -v hz="$CLK_TCK" -v n="$NCPU" 'BEGIN {
		split(a, x); split(b, y); ours = y[2] - x[2]; others = (y[1] - x[1]) - ours - (y[3] - x[3])
		if (others < 0) others = 0
		printf "%.0f %.0f", 100 * ours / hz / (s * n), 100 * others / hz / (s * n) }'
}

# settle waits until what the last run left behind is done: the origin
# sends nothing and this script's processes (fills that outlive their
# clients, compactions) use under 10% of the CPU; at most 30 s. Then it
# waits up to 10 s more for other processes on the machine to quieten
# (under 20%); it cannot wait for them forever, so their share during each
# run is measured and recorded instead.
settle() {
	local prev cur a b ours others quiet=0 waited=0
	prev=$(origin_bytes)
	a=$(cpu_ticks)
	while :; do
		sleep 1
		waited=$((waited + 1))
		b=$(cpu_ticks)
		cur=$(origin_bytes)
		read -r ours others <<<"$(percent "$a" "$b" 1)"
		a=$b
		if [[ $cur != "$prev" ]] || ((ours >= 10)); then
			prev=$cur
			quiet=0
			if ((waited >= 30)); then
				log "warning: the targets are still busy after 30 s (origin sending, or their CPU at ${ours}%); measuring anyway"
				return 0
			fi
			continue
		fi
		quiet=$((quiet + 1))
		if ((others < 20 || quiet >= 10)); then return 0; fi
	done
}

# bench_once TARGET WORKLOAD NAME: one bench run, its report in
# runs/NAME.json and its output in runs/NAME.txt. Sets RC (bench's exit
# status), SECS (wall time) and OTHERS (the CPU other processes took
# meanwhile, in percent of all cores).
bench_once() {
	local t=$1 w=$2 name=$3 before after began
	before=$(cpu_ticks)
	began=$(date +%s.%N)
	RC=0
	"$SLICEEDGE" bench --target "${URLS[$t]}" --origin "$ORIGIN_URL" --workload "$w" \
		--duration "$DURATION" --connections "$CONNECTIONS" --big-object-size "$BIG_OBJECT_SIZE" \
		--no-progress --json "$OUT/runs/$name.json" >"$OUT/runs/$name.txt" 2>&1 || RC=$?
	after=$(cpu_ticks)
	SECS=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	read -r _ OTHERS <<<"$(percent "$before" "$after" "$SECS")"
}

# run_bench ROUND WORKLOAD TARGET: one measurement, recorded in runs.tsv
# whatever its outcome. Exit status 1 (wrong bytes or mixed bodies) is a
# finding, not a reason to stop. When other processes took more than
# --max-others of the CPU during the run, it is run again (--retries times
# at most) and the try they disturbed least is kept; the others stay in
# runs/ as NAME.tryN.*. A try that found wrong bytes or mixed bodies is
# always kept: that stands whatever the load.
run_bench() {
	local round=$1 w=$2 t=$3 name note="" try best=0 best_rc=-1 best_secs=0 best_others=101
	name=r$round-$w-$t
	if ! alive "$t"; then
		log "round $round, $w, $t: $t is not running; skipped (see its log)"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$w" "$t" down 0 "" "$t was not running" "" >>"$OUT/runs.tsv"
		return 0
	fi
	for ((try = 1; ; try++)); do
		settle
		bench_once "$t" "$w" "$name.try$try"
		# Keep this try if it found wrong bytes, or was disturbed less (but
		# never trade a result for a failure to run).
		if ((RC == 1 || (OTHERS < best_others && !(RC > 1 && best_rc == 0)))); then
			best=$try best_rc=$RC best_secs=$SECS best_others=$OTHERS
		fi
		if ((RC == 1 || OTHERS <= MAX_OTHERS || try > RETRIES)); then break; fi
		log "round $round/$ROUNDS, $w, $t: other processes took ${OTHERS}% of the CPU; measuring again"
	done
	mv "$OUT/runs/$name.try$best.txt" "$OUT/runs/$name.txt"
	[[ -f $OUT/runs/$name.try$best.json ]] && mv "$OUT/runs/$name.try$best.json" "$OUT/runs/$name.json"
	case $best_rc in
	0) ;;
	1) note="wrong bytes or mixed bodies" ;;
	*) note=$(tail -n 1 "$OUT/runs/$name.txt" | tr '\t' ' ') ;;
	esac
	if ((try > 1)); then
		note+="${note:+; }kept try $best of $try (others took over ${MAX_OTHERS}% of the CPU)"
	fi
	[[ -f $OUT/runs/$name.json ]] || name=""
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$w" "$t" "$best_rc" "$best_secs" "${name:+runs/$name.json}" "$note" "$best_others" >>"$OUT/runs.tsv"
	log "round $round/$ROUNDS, $w, $t: ${best_secs}s, exit $best_rc${note:+ ($note)}; other processes took ${best_others}% of the CPU"
}

# run_all runs every workload on every target in every round. The order of
# the targets starts one further for every workload and for every round, so
# over three rounds each target runs each workload first, second and third
# once: none is always first on a quiet machine, or always after a given
# peer.
run_all() {
	local round i k n=${#TARGETS[@]}
	printf 'round\tworkload\ttarget\texit\tseconds\tjson\tnote\tothers_cpu_pct\n' >"$OUT/runs.tsv"
	mkdir -p "$OUT/runs"
	for ((round = 1; round <= ROUNDS; round++)); do
		for i in "${!WORKLOAD_LIST[@]}"; do
			for ((k = 0; k < n; k++)); do
				run_bench "$round" "${WORKLOAD_LIST[i]}" "${TARGETS[(round - 1 + i + k) % n]}"
			done
		done
	done
}

# default_slice_size prints sliceedge's default slice_size, which its
# configuration here leaves unset, as config/config.go defines it.
default_slice_size() {
	local v
	v=$(sed -n 's|^[[:space:]]*DefaultSliceSize[[:space:]]*=.*//[[:space:]]*\([0-9][0-9]*[KMG]iB\).*|\1|p' "$ROOT/config/config.go")
	echo "default, ${v:-unknown}"
}

# write_about records the machine, the date, the versions and the
# settings above the table.
write_about() {
	local cpu mem
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
	mem=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
	{
		echo "date        $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "machine     $(nproc) cores ($cpu), $mem RAM, $(uname -sr)"
		echo "sliceedge   $("$SLICEEDGE" version 2>/dev/null | head -n 1) ($(go version | cut -d' ' -f3)): default config (slice_size $(default_slice_size)), store (max_bytes ${CACHE_SIZE_GIB}GiB), memory_cache ${SLICEEDGE_MEMORY:-default}"
		echo "nginx       $(nginx -v 2>&1 | sed 's/^nginx version: //'): slice 1m, disk cache (max_size ${CACHE_SIZE_GIB}g), proxy_cache_lock on"
		echo "varnish     $(varnishd -V 2>&1 | head -n 1 | sed 's/^varnishd (\(.*\))$/\1/' | cut -d' ' -f1): do_stream, malloc $VARNISH_MEM"
		echo "bench       workloads $WORKLOADS; rounds $ROUNDS, $DURATION each, $CONNECTIONS connections, big objects $BIG_OBJECT_SIZE"
		echo "            targets alternate (order rotates per round and workload); all on 127.0.0.1, one shared demo origin"
	} >"$OUT/about.txt"
}

# --- main ---------------------------------------------------------------------

main() {
	parse_args "$@"
	install_missing

	WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/sliceedge-peers-work.XXXXXX")
	trap cleanup EXIT
	trap on_signal INT TERM
	# Varnish's manager drops root for its own user, which must reach the
	# instance directory and the VCL: let others traverse and read.
	chmod 755 "$WORKDIR"
	BIN_DIR=$WORKDIR/bin
	if [[ -z $OUT ]]; then
		OUT=$(mktemp -d "${TMPDIR:-/tmp}/sliceedge-peers-$(date +%Y%m%d-%H%M%S).XXXX")
	fi
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)

	if [[ -z $VARNISH_MEM ]]; then
		VARNISH_MEM=$(awk '/^MemAvailable:/ { printf "%dM", $2 / 1024 / 2 }' /proc/meminfo)
	fi
	local avail_gib
	avail_gib=$(df -P -k "$WORKDIR" | awk 'NR == 2 { print int($4 / 1048576) }')
	if ((avail_gib < 2 * CACHE_SIZE_GIB + 4)); then
		log "warning: $avail_gib GiB free under $WORKDIR; nginx and sliceedge may each write up to ${CACHE_SIZE_GIB} GiB (--cache-size)"
	fi

	build
	start_origin
	start_nginx
	start_varnish
	start_sliceedge
	check_targets
	write_about

	log "running ${#WORKLOAD_LIST[@]} workloads x ${#TARGETS[@]} targets x $ROUNDS rounds ($DURATION each); reports go to $OUT"
	run_all

	"$BIN_DIR/comparetable" -format markdown "$OUT" >"$OUT/table.md"
	"$BIN_DIR/comparetable" "$OUT" | tee "$OUT/table.txt"
	log "done in $((SECONDS / 60))m$((SECONDS % 60))s; reports, table.txt and table.md (for docs/peers.md) are in $OUT"
}

main "$@"

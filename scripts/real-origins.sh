#!/usr/bin/env bash
# real-origins.sh: sliceedge as a new user meets it, in front of three
# origins that no one here wrote, each serving the same three files:
#
#   nginx       static files: strong ETag ("hex-hex"), Last-Modified, Range
#   apache2     static files: strong ETag ("size-mtime", FileETag MTime Size),
#               Last-Modified, Range
#   python      `python3 -m http.server`: Last-Modified only, no ETag, and it
#               ignores Range (answers 200 with the whole file)
#
#   scripts/real-origins.sh [--bin PATH] [--keep-workdir]
#   make real-origins
#
# For each origin it starts `sliceedge serve` with a minimal configuration
# (listen, store, one origin, one rule `match: /`, and an admin listener so
# that `sliceedge inspect` can ask it; every other key at its default), sends
# a fixed list of requests with curl, and checks every body's sha256 against
# the file's bytes (cut to the range). It prints one table per origin: each
# client request, its status, X-Cache and Cache-Status, and the requests the
# origin's own access log recorded for it; then what `sliceedge inspect` and
# `sliceedge stats` say.
#
# Exit status: 1 if any body (or a 206's Content-Range) is wrong, or
# something fails to start. The cache behaviour (hits, origin requests) is
# printed, not asserted: it is being changed.
#
# Every server binds 127.0.0.1 on a free port and runs as the current user
# (as root, nginx's workers and Apache's children run as nobody, as they
# refuse root); nothing leaves 127.0.0.1. Missing packages (nginx, apache2,
# curl, python3) are installed with apt-get, which needs root. Everything
# the script started is stopped by PID on exit, also on Ctrl-C and errors.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# nginx and apache2 live in sbin, which a user's PATH may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

BIN=""
KEEP_WORKDIR=0
# The files' modification time: a day-old Last-Modified or older gives
# heuristic freshness (10% of its age, at most a day) to answers without
# Cache-Control, as a real site's static files have; a file written a
# second ago would be stale at once.
FILE_MTIME='2025-01-01 00:00:00 UTC'

usage() {
	cat <<EOF
usage: scripts/real-origins.sh [--bin PATH] [--keep-workdir]

Runs sliceedge in front of nginx, Apache (apache2) and python3 -m http.server,
one after the other, all on 127.0.0.1, and prints what each origin saw for
each client request. Takes about a minute.

  --bin PATH       use this sliceedge binary (default: make build, bin/sliceedge)
  --keep-workdir   keep the work directory (files, configs, logs, stores) on exit
  -h, --help       this help
EOF
}

log() { printf '%s real-origins: %s\n' "$(date +%T)" "$*" >&2; }

die() {
	log "error: $*"
	exit 1
}

parse_args() {
	while (($# > 0)); do
		case $1 in
		--bin) BIN=${2:?--bin needs a value}; shift ;;
		--keep-workdir) KEEP_WORKDIR=1 ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die "unknown argument: $1" ;;
		esac
		shift
	done
}

# --- tools -------------------------------------------------------------------

# need CMD PKG: apt-get install Debian package PKG unless CMD is on PATH
# (as .ci/run does).
need() {
	command -v "$1" >/dev/null 2>&1 && return
	log "$1 is missing; installing $2 with apt-get"
	((EUID == 0)) || die "installing $2 needs root, and this is not root (uid $EUID): run as root, or first: sudo apt-get install $2"
	command -v apt-get >/dev/null || die "no apt-get on this machine: install $2 by hand"
	if [[ -z ${APT_UPDATED:-} ]]; then
		apt-get update -qq
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
	command -v "$1" >/dev/null 2>&1 || die "installed $2, but there is still no $1 on PATH"
}

install_missing() {
	need curl curl
	need python3 python3
	need nginx nginx
	need apache2 apache2
	# Debian's packages start their own services where systemd runs (nginx
	# and Apache on :80); this script neither uses nor stops them.
}

build() {
	if [[ -n $BIN ]]; then
		[[ -x $BIN ]] || die "--bin $BIN: not an executable file"
		return
	fi
	command -v go >/dev/null || die "Go is needed to build sliceedge and is not on PATH"
	log "building sliceedge (make build)"
	make -s -C "$ROOT" build >/dev/null
	BIN=$ROOT/bin/sliceedge
}

# --- processes ---------------------------------------------------------------

declare -A PIDS=()  # name -> pid of what this script started ("" once stopped)
declare -A LOGS=()  # name -> its output
STARTED=()          # names, in start order (stopped in reverse)
USED_PORTS=" "
PORT=""

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
# fails, showing NAME's log, when NAME exits or 20 s pass.
wait_ready() {
	local name=$1 url=$2
	for _ in $(seq 1 200); do
		if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
		if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
			tail -n 20 "${LOGS[$name]}" >&2 || true
			die "$name exited while starting (log above: ${LOGS[$name]})"
		fi
		sleep 0.1
	done
	tail -n 20 "${LOGS[$name]}" >&2 || true
	die "$name does not answer on $url after 20 s (log above)"
}

# stop NAME: TERM, then KILL if it is still there after 10 s.
stop() {
	local name=$1 pid=${PIDS[$1]:-}
	[[ -n $pid ]] || return 0
	PIDS[$name]=""
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) did not stop after 10 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

stop_all() {
	local i
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		stop "${STARTED[i]}"
	done
}

CLEANED=0
cleanup() {
	local status=$?
	((CLEANED)) && return
	CLEANED=1
	trap - EXIT INT TERM
	stop_all
	if [[ -n ${WORKDIR:-} && -d $WORKDIR ]]; then
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

# --- the files ---------------------------------------------------------------

declare -A SIZE=() # file name -> bytes

# make_files writes the three files with deterministic bytes (a seeded
# generator), all with the same old modification time.
make_files() {
	WWW=$WORKDIR/www
	mkdir -p "$WWW"
	python3 - "$WWW" <<'EOF'
import random, sys
d = sys.argv[1]
for name, size, seed in (("small.bin", 100 << 10, 1), ("large.bin", 40 << 20, 2), ("empty.bin", 0, 3)):
    with open(f"{d}/{name}", "wb") as f:
        f.write(random.Random(seed).randbytes(size))
EOF
	touch -d "$FILE_MTIME" "$WWW"/*.bin
	chmod 644 "$WWW"/*.bin
	local f
	for f in small.bin large.bin empty.bin; do
		SIZE[$f]=$(stat -c %s "$WWW/$f")
	done
	log "files: small.bin ${SIZE[small.bin]} B, large.bin ${SIZE[large.bin]} B, empty.bin ${SIZE[empty.bin]} B (mtime $FILE_MTIME)"
}

# --- the origins -------------------------------------------------------------

# Each start_* sets ORIGIN_URL and ORIGIN_ACCESS (its access log).

start_nginx() {
	local dir=$WORKDIR/nginx user=""
	pick_port
	mkdir -p "$dir"
	# As root, nginx's workers would run as nobody anyway; say so.
	((EUID == 0)) && user="user nobody $(id -gn nobody);"
	cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    log_format ro '\$request\t\$http_range\t\$status\t\$body_bytes_sent\t\$http_if_match';
    access_log $dir/access.log ro;
    server {
        listen 127.0.0.1:$PORT;
        root $WWW;
    }
}
EOF
	nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || die "nginx refuses $dir/nginx.conf (see above)"
	start nginx "$WORKDIR/nginx.out" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;'
	ORIGIN_URL=http://127.0.0.1:$PORT
	ORIGIN_ACCESS=$dir/access.log
	wait_ready nginx "$ORIGIN_URL/small.bin"
}

start_apache() {
	local dir=$WORKDIR/apache user=""
	pick_port
	mkdir -p "$dir"
	# Apache refuses to serve as root: as root, its children run as nobody.
	((EUID == 0)) && user="User nobody
Group $(id -gn nobody)"
	cat >"$dir/apache2.conf" <<EOF
ServerRoot $dir
ServerName 127.0.0.1
Listen 127.0.0.1:$PORT
PidFile $dir/apache2.pid
DefaultRuntimeDir $dir
Mutex file:$dir default
ErrorLog $dir/error.log
LogLevel warn
$user
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
<IfModule !log_config_module>
    LoadModule log_config_module /usr/lib/apache2/modules/mod_log_config.so
</IfModule>
<IfModule !unixd_module>
    LoadModule unixd_module /usr/lib/apache2/modules/mod_unixd.so
</IfModule>
TypesConfig /etc/mime.types
LogFormat "%r\t%{Range}i\t%>s\t%B\t%{If-Match}i" ro
CustomLog $dir/access.log ro
# Apache's default, said out loud: a strong ETag of size and mtime.
FileETag MTime Size
DocumentRoot $WWW
<Directory />
    Require all granted
    AllowOverride None
</Directory>
EOF
	[[ -f /etc/mime.types ]] || sed -i 's|^TypesConfig .*|TypesConfig /dev/null|' "$dir/apache2.conf"
	apache2 -t -f "$dir/apache2.conf" >"$dir/configtest.out" 2>&1 || {
		cat "$dir/configtest.out" >&2
		die "apache2 refuses $dir/apache2.conf (see above)"
	}
	start apache "$WORKDIR/apache.out" apache2 -f "$dir/apache2.conf" -DFOREGROUND
	ORIGIN_URL=http://127.0.0.1:$PORT
	ORIGIN_ACCESS=$dir/access.log
	wait_ready apache "$ORIGIN_URL/small.bin"
}

start_python() {
	pick_port
	# Its stderr is its access log (-u: unbuffered).
	ORIGIN_ACCESS=$WORKDIR/python.log
	start python "$ORIGIN_ACCESS" python3 -u -m http.server --bind 127.0.0.1 --directory "$WWW" "$PORT"
	ORIGIN_URL=http://127.0.0.1:$PORT
	wait_ready python "$ORIGIN_URL/small.bin"
}

# origin_requests KIND: the requests in the origin's access log, one per
# line, as "METHOD TARGET [Range: R] [If-Match: M] -> STATUS, BYTES B".
# python's log has no headers and no byte count.
origin_requests() {
	case $1 in
	nginx | apache)
		# nginx writes a quote as \x22, Apache as \".
		awk -F'\t' '{
			gsub(/\\x22|\\"/, "\"")
			n = split($1, r, " ")
			line = r[1] " " r[2]
			if ($2 != "-" && $2 != "") line = line "  Range: " $2
			if ($5 != "-" && $5 != "") line = line "  If-Match: " $5
			print line "  -> " $3 ", " $4 " B"
		}' "$ORIGIN_ACCESS"
		;;
	python)
		# 127.0.0.1 - - [date] "GET /x HTTP/1.1" 200 -, written as the
		# answer starts; a traceback follows when the edge closes the
		# connection before the body's end: it is told after its request.
		awk '
			/^[0-9.]+ - - \[[^]]*\] "[A-Z]+ / {
				split($0, q, "\""); split(q[2], r, " "); split(q[3], t, " ")
				line[++n] = r[1] " " r[2] "  -> " t[1]
			}
			/^(BrokenPipeError|ConnectionResetError)/ && n > 0 { line[n] = line[n] " (body cut: the edge closed the connection)" }
			END { for (i = 1; i <= n; i++) print line[i] }
		' "$ORIGIN_ACCESS"
		;;
	esac
}

origin_count() { origin_requests "$1" | wc -l; }

# settle KIND: waits until the origin's access log stops growing (0.5 s
# without a new line, at most 10 s): the edge may go on fetching after its
# answer is complete.
settle() {
	local kind=$1 n last quiet=0
	last=$(origin_count "$kind")
	for _ in $(seq 1 100); do
		sleep 0.1
		n=$(origin_count "$kind")
		if ((n == last)); then
			quiet=$((quiet + 1))
			((quiet >= 5)) && return 0
		else
			quiet=0 last=$n
		fi
	done
}

# --- the edge ----------------------------------------------------------------

start_edge() {
	local kind=$1 dir=$WORKDIR/edge-$1
	pick_port
	EDGE_URL=http://127.0.0.1:$PORT
	mkdir -p "$dir"
	EDGE_CONFIG=$dir/edge.yaml
	local edge_port=$PORT token
	pick_port
	token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	# A new user's minimal file: everything else at its default. The admin
	# listener is there for `sliceedge inspect`, which asks a running edge.
	cat >"$EDGE_CONFIG" <<EOF
listen: 127.0.0.1:$edge_port
admin:
  listen: 127.0.0.1:$PORT
  token: $token
store:
  dir: $dir/store
  max_bytes: 1GiB
origins:
  $kind:
    url: $ORIGIN_URL
rules:
  - match: /
    origin: $kind
EOF
	"$BIN" config check "$EDGE_CONFIG" >"$dir/config-check.out" 2>&1 || {
		cat "$dir/config-check.out" >&2
		die "sliceedge refuses $EDGE_CONFIG"
	}
	start "edge-$kind" "$dir/edge.log" "$BIN" serve --config "$EDGE_CONFIG" --log-format json --shutdown-timeout 5s
	wait_ready "edge-$kind" "$EDGE_URL/"
}

# --- the requests ------------------------------------------------------------

WRONG=0
ROW=0
BASE=0 # the origin's requests before the first client request

# expect_range SPEC SIZE: prints "START END" of a single byte range
# (bytes=A-B or bytes=-N) over SIZE bytes.
expect_range() {
	local spec=${1#bytes=} size=$2 a b
	a=${spec%-*} b=${spec#*-}
	if [[ -z $a ]]; then
		a=$((size > b ? size - b : 0))
		b=$((size - 1))
	elif [[ -z $b ]] || ((b >= size)); then
		b=$((size - 1))
	fi
	echo "$a $b"
}

# sha_of FILE START LEN: sha256 of LEN bytes of FILE from START.
sha_of() { dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=1M status=none | sha256sum | cut -d' ' -f1; }

# request KIND METHOD PATH [RANGE]: one client request through the edge; a
# row of the table, then the origin's requests for it.
request() {
	local kind=$1 method=$2 path=$3 range=${4:-} file size before after hdr body code
	local xcache cstatus crange check="ok" note="" want got a b label
	file=$WWW/${path%%\?*}
	size=${SIZE[${file##*/}]}
	hdr=$WORKDIR/resp.hdr body=$WORKDIR/resp.body
	rm -f "$body"
	before=$(origin_count "$kind")
	local args=(-sS --max-time 60 -D "$hdr" -w '%{http_code}')
	# curl -I would write the headers into -o's file: HEAD's is not kept.
	if [[ $method == HEAD ]]; then args+=(-I -o /dev/null); else args+=(-o "$body"); fi
	[[ -n $range ]] && args+=(-H "Range: $range")
	code=$(curl "${args[@]}" "$EDGE_URL$path") || code="curl-failed"
	settle "$kind"
	after=$(origin_count "$kind")

	xcache=$(sed -n 's/^x-cache:[[:space:]]*//Ip' "$hdr" | tr -d '\r' | paste -sd, -)
	cstatus=$(sed -n 's/^cache-status:[[:space:]]*//Ip' "$hdr" | tr -d '\r' | paste -sd, -)
	crange=$(sed -n 's/^content-range:[[:space:]]*//Ip' "$hdr" | tr -d '\r')

	# What the body must be, given the status.
	if [[ $method == HEAD ]]; then
		got=$(sed -n 's/^content-length:[[:space:]]*//Ip' "$hdr" | tr -d '\r')
		if [[ $code != 200 ]]; then
			check="WRONG: HEAD answered $code"
		elif [[ $got != "$size" ]]; then
			check="WRONG: Content-Length '$got', want $size"
		fi
	elif [[ $code == 200 ]]; then
		want=$(sha_of "$file" 0 "$size")
		got=$(sha256sum <"$body" | cut -d' ' -f1)
		[[ $got == "$want" ]] || check="WRONG: body ($(stat -c %s "$body") B) is not the file"
		[[ -n $range ]] && note="200 to a Range request: the whole file"
	elif [[ $code == 206 && -n $range ]]; then
		read -r a b <<<"$(expect_range "$range" "$size")"
		want=$(sha_of "$file" "$a" $((b - a + 1)))
		got=$(sha256sum <"$body" | cut -d' ' -f1)
		if [[ $crange != "bytes $a-$b/$size" ]]; then
			check="WRONG: Content-Range '$crange', want 'bytes $a-$b/$size'"
		elif [[ $got != "$want" ]]; then
			check="WRONG: body ($(stat -c %s "$body") B) is not bytes $a-$b"
		fi
	else
		check="WRONG: status $code"
	fi
	[[ $check == WRONG* ]] && WRONG=$((WRONG + 1))

	ROW=$((ROW + 1))
	label="$method $path${range:+ $range}"
	printf '%-3s %-36s %-6s %-5s %-8s %3s %5s   %s\n' "$ROW" "$label" "$code" \
		"${check%%:*}" "${xcache:--}" "+$((after - before))" "$((after - BASE))" "${cstatus:--}"
	[[ $check == ok ]] || printf '      %s\n' "$check"
	[[ -z $note ]] || printf '      note: %s\n' "$note"
	if ((after > before)); then
		origin_requests "$kind" | sed -n "$((before + 1)),${after}p" | sed 's/^/      origin <- /'
	fi
}

# run_origin KIND: start the origin and an edge in front of it, send the
# requests, print the table, inspect, stats; stop both.
run_origin() {
	local kind=$1 u
	case $kind in
	nginx) start_nginx ;;
	apache) start_apache ;;
	python) start_python ;;
	esac
	start_edge "$kind"
	local v
	v=$(curl -sS -o /dev/null -D - "$ORIGIN_URL/large.bin" | tr -d '\r' |
		grep -iE '^(server|etag|last-modified|accept-ranges|cache-control):' | paste -sd' ' - || true)
	echo
	echo "=== $kind: edge $EDGE_URL -> origin $ORIGIN_URL"
	echo "    origin's own answer for large.bin: $v"
	printf '%-3s %-36s %-6s %-5s %-8s %3s %5s   %s\n' "#" "client request (to the edge)" status body X-Cache "+o" "total" Cache-Status
	# The readiness probes and the look above are not the edge's doing.
	settle "$kind"
	BASE=$(origin_count "$kind")
	ROW=0
	request "$kind" GET /small.bin
	request "$kind" GET /small.bin
	request "$kind" GET /large.bin
	request "$kind" GET /large.bin
	request "$kind" GET /large.bin bytes=1000-1999
	request "$kind" GET /large.bin bytes=1000-1999
	request "$kind" GET /large.bin bytes=-500
	request "$kind" HEAD /large.bin
	request "$kind" GET /empty.bin
	request "$kind" GET /empty.bin
	# Ranges of an object the edge has not seen (the query string makes it
	# another cache key; the origin ignores it).
	request "$kind" GET '/large.bin?cold1' bytes=1000-1999
	request "$kind" GET '/large.bin?cold1' bytes=1000-1999
	request "$kind" GET '/large.bin?cold1' bytes=-500
	request "$kind" GET '/large.bin?cold2' bytes=-500
	echo "    (+o: requests the origin's access log recorded for this client request; total: so far)"

	for u in /small.bin /large.bin /empty.bin '/large.bin?cold1' '/large.bin?cold2'; do
		echo "--- sliceedge inspect $EDGE_URL$u"
		"$BIN" inspect --config "$EDGE_CONFIG" "$EDGE_URL$u" 2>&1 | sed 's/^/    /' || true
	done
	echo "--- sliceedge stats"
	"$BIN" stats --config "$EDGE_CONFIG" 2>&1 | sed 's/^/    /' || true

	stop "edge-$kind"
	stop "$kind"
}

# --- main --------------------------------------------------------------------

main() {
	parse_args "$@"
	install_missing
	WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/sliceedge-real-origins.XXXXXX")
	trap cleanup EXIT
	trap on_signal INT TERM
	# As root, nginx's and Apache's workers run as nobody and must reach
	# the files.
	chmod 755 "$WORKDIR"
	build
	make_files
	log "sliceedge $("$BIN" version 2>/dev/null | head -n 1); $(nginx -v 2>&1 | sed 's/^nginx version: //'); $(apache2 -v | sed -n 's/^Server version: //p'); $(python3 --version)"

	local kind
	for kind in nginx apache python; do
		run_origin "$kind"
	done

	echo
	if ((WRONG > 0)); then
		log "FAIL: $WRONG wrong answer(s) (see WRONG above); ${SECONDS}s"
		exit 1
	fi
	log "every body was right; ${SECONDS}s"
}

main "$@"

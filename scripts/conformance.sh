#!/usr/bin/env bash
# conformance.sh: the HTTP caching test suite of cache-tests.fyi (npm
# package http-cache-tests, pinned below) against sliceedge and, in the
# same run, nginx proxy_cache and Varnish, each in front of the suite's own
# origin, all on 127.0.0.1.
#
#   scripts/conformance.sh [--bin PATH] [--keep-workdir]
#   make conformance
#
# sliceedge runs twice: on its defaults (one rule, nothing else set), and
# with `forward_headers: [Req-Num]`. The suite's origin numbers each
# client request by its Req-Num header, and a cache whose fetches do not
# carry it (sliceedge's default: cached fetches carry no client header)
# sees most of its multi-request tests marked "retry" (setup failed). nginx
# and Varnish forward every client header. It prints tests passed, and
# setup failures, per cache; the JSON results stay in the work directory
# with --keep-workdir. About two minutes; needs npm (installed with
# apt-get when missing, as are nginx and varnish).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
SUITE_VERSION=0.4.5
BIN=""
KEEP_WORKDIR=0

log() { printf '%s conformance: %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

while (($# > 0)); do
	case $1 in
	--bin) BIN=${2:?--bin needs a value}; shift ;;
	--keep-workdir) KEEP_WORKDIR=1 ;;
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	*) die "unknown argument: $1" ;;
	esac
	shift
done

need() {
	command -v "$1" >/dev/null 2>&1 && return
	((EUID == 0)) || die "$1 is missing; installing $2 needs root: sudo apt-get install $2"
	if [[ -z ${APT_UPDATED:-} ]]; then
		apt-get update -qq
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
	command -v "$1" >/dev/null 2>&1 || die "installed $2, but there is still no $1 on PATH"
}
need npm npm
need node nodejs
need nginx nginx
need varnishd varnish
need python3 python3

WORK=$(mktemp -d /tmp/sliceedge-conformance.XXXXXX)
chmod 755 "$WORK" # nginx's workers run as nobody under root
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if ((KEEP_WORKDIR)); then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# pidof_file FILE: waits for a daemon's pid file and records the pid.
pidof_file() {
	for _ in $(seq 1 100); do
		if [[ -s $1 ]]; then
			PIDS+=("$(cat "$1")")
			return
		fi
		sleep 0.1
	done
	die "no pid file $1"
}

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port on 127.0.0.1"
}

wait_port() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
		sleep 0.1
	done
	die "nothing listens on 127.0.0.1:$1 ($2)"
}

if [[ -z $BIN ]]; then
	log "building sliceedge"
	make -s -C "$ROOT" build >/dev/null
	BIN=$ROOT/bin/sliceedge
fi

log "installing http-cache-tests@$SUITE_VERSION into $WORK"
(cd "$WORK" && npm install --silent --no-audit --no-fund "http-cache-tests@$SUITE_VERSION" >/dev/null)
SUITE=$WORK/node_modules/http-cache-tests

# The suite's origin listens on every interface; this makes it 127.0.0.1.
cat >"$WORK/loopback.cjs" <<'EOF'
const net = require('net')
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || typeof args[0] === 'string') {
    return listen.call(this, Number(args[0]), '127.0.0.1', ...args.slice(1))
  }
  return listen.apply(this, args)
}
EOF
ORIGIN=$(free_port)
(cd "$SUITE" && exec env npm_config_port="$ORIGIN" npm_package_config_protocol=http npm_config_pidfile="$WORK/origin.pid" \
	node --require "$WORK/loopback.cjs" server/server.mjs >"$WORK/origin.log" 2>&1) &
PIDS+=($!)
wait_port "$ORIGIN" "the suite's origin"

edge() { # edge NAME EXTRA-RULE-LINE: starts sliceedge; EDGE_PORT is its port
	local name=$1 extra=$2 port
	port=$(free_port)
	mkdir -p "$WORK/$name"
	cat >"$WORK/$name/edge.yaml" <<EOF
listen: 127.0.0.1:$port
store:
  dir: $WORK/$name/store
  max_bytes: 1GiB
origins:
  default:
    url: http://127.0.0.1:$ORIGIN
rules:
  - match: /
    origin: default
$extra
EOF
	"$BIN" serve --config "$WORK/$name/edge.yaml" >"$WORK/$name/edge.log" 2>&1 &
	PIDS+=($!)
	wait_port "$port" "sliceedge $name"
	EDGE_PORT=$port
}
edge default ""
DEFAULT=$EDGE_PORT
edge forward "    forward_headers: [Req-Num]"
FORWARD=$EDGE_PORT

NGINX=$(free_port)
mkdir -p "$WORK/nginx/cache"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/cb; proxy_temp_path $WORK/nginx/pt;
  fastcgi_temp_path $WORK/nginx/ft; uwsgi_temp_path $WORK/nginx/ut; scgi_temp_path $WORK/nginx/st;
  proxy_cache_path $WORK/nginx/cache keys_zone=c:10m;
  server {
    listen 127.0.0.1:$NGINX;
    location / { proxy_pass http://127.0.0.1:$ORIGIN; proxy_cache c; proxy_http_version 1.1; }
  }
}
EOF
user=()
((EUID == 0)) && user=(-g 'user nobody nogroup;')
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" "${user[@]}"
pidof_file "$WORK/nginx/nginx.pid"
wait_port "$NGINX" nginx

VARNISH=$(free_port)
varnishd -a "127.0.0.1:$VARNISH" -b "127.0.0.1:$ORIGIN" -s malloc,256m -n "$WORK/varnish" \
	-P "$WORK/varnish.pid" -T "127.0.0.1:$(free_port)" >"$WORK/varnish.log" 2>&1
pidof_file "$WORK/varnish.pid"
wait_port "$VARNISH" varnish

run() { # run NAME PORT
	log "running the suite against $1"
	(cd "$SUITE" && npm run --silent cli --base="http://127.0.0.1:$2" >"$WORK/$1.json" 2>"$WORK/$1.err") ||
		die "the suite failed against $1: $(tail -3 "$WORK/$1.err")"
}
run sliceedge "$DEFAULT"
run sliceedge-forward "$FORWARD"
run nginx "$NGINX"
run varnish "$VARNISH"

python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
rows = [("sliceedge (defaults)", "sliceedge"), ("sliceedge, forward_headers: [Req-Num]", "sliceedge-forward"),
        ("nginx proxy_cache", "nginx"), ("Varnish (builtin VCL)", "varnish")]
print(f"{'cache':40} {'passed':>7} {'of':>4} {'setup failed':>13}")
for label, name in rows:
    r = json.load(open(f"{work}/{name}.json"))
    passed = sum(1 for v in r.values() if v is True)
    setup = sum(1 for v in r.values() if isinstance(v, list) and v[0] == "Setup")
    print(f"{label:40} {passed:>7} {len(r):>4} {setup:>13}")
EOF

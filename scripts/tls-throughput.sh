#!/usr/bin/env bash
# tls-throughput.sh: how fast sliceedge serves hits over plain HTTP/1.1
# (sendfile), HTTP/1.1 over TLS and HTTP/2 over TLS, next to nginx serving
# the same bytes from a file on the same three, in one run.
#
#   scripts/tls-throughput.sh [--rounds N] [--object-size SIZE] [--clients N]
#
# It builds sliceedge, makes a self-signed certificate for 127.0.0.1,
# starts the demo origin, `sliceedge serve` on its default settings with a
# plain and a TLS listener, and nginx (sendfile on, http2, the same
# certificate) serving the object saved to a file; it warms the edge, then
# each round runs h2load (nghttp2-client) against each target and protocol
# in turn, and prints the median MiB/s and the ratio sliceedge ÷ nginx.
# nginx here serves a file, not a cache: the bound a cache's hit path can
# reach. Everything listens on 127.0.0.1 and is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
ROUNDS=3
SIZE=64MiB
CLIENTS=4
REQUESTS_PER_CLIENT=16

while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--object-size) SIZE=$2; shift 2 ;;
	--clients) CLIENTS=$2; shift 2 ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "tls-throughput: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

for cmd in nginx h2load curl openssl go; do
	command -v $cmd >/dev/null || { echo "tls-throughput: $cmd is missing (apt-get install nginx nghttp2-client curl openssl)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/tls-throughput.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 100); do
		curl -sk -o /dev/null "$1" && return
		sleep 0.1
	done
	echo "tls-throughput: nothing answers at $1" >&2
	exit 1
}

(cd "$ROOT" && go build -o "$WORK/sliceedge" ./cmd/sliceedge)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

O=$(port) PLAIN=$(port) TLS=$(port) NPLAIN=$(port) NTLS=$(port)
OBJ=/tls/$SIZE.bin
"$WORK/sliceedge" origin --listen 127.0.0.1:$O >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/edge.yaml" <<YAML
listeners:
  - 127.0.0.1:$PLAIN
  - {address: 127.0.0.1:$TLS, tls: {cert: $WORK/cert.pem, key: $WORK/key.pem}}
store: {dir: $WORK/store, max_bytes: 8GiB}
origins: {default: {url: http://127.0.0.1:$O}}
rules: [{match: /, origin: default}]
YAML
"$WORK/sliceedge" serve --config "$WORK/edge.yaml" --log-format json 2>"$WORK/edge.log" &
PIDS+=($!)
wait_port http://127.0.0.1:$O/.origin/stats
wait_port http://127.0.0.1:$PLAIN/
mkdir -p "$WORK/www/tls"
curl -sf -o "$WORK/www$OBJ" http://127.0.0.1:$O$OBJ
# nginx's workers run as another user when this runs as root.
chmod 755 "$WORK" "$WORK/www" "$WORK/www/tls"
chmod 644 "$WORK/www$OBJ"
curl -sf -o /dev/null http://127.0.0.1:$PLAIN$OBJ # the edge stores it
cat >"$WORK/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $WORK/nginx-tmp;
    server {
        listen 127.0.0.1:$NPLAIN;
        listen 127.0.0.1:$NTLS ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        root $WORK/www;
    }
}
NGINX
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"
PIDS+=($(cat "$WORK/nginx.pid"))
wait_port http://127.0.0.1:$NPLAIN$OBJ
for url in http://127.0.0.1:$PLAIN$OBJ https://127.0.0.1:$NTLS$OBJ; do
	if ! cmp -s <(curl -sSk "$url") "$WORK/www$OBJ"; then
		cat "$WORK/nginx-error.log" >&2
		echo "tls-throughput: $url does not serve the origin's bytes" >&2
		exit 1
	fi
done

# rate URL [h2load flags]: MiB/s of one h2load run.
rate() {
	local url=$1
	shift
	h2load "$@" -n $((CLIENTS * REQUESTS_PER_CLIENT)) -c "$CLIENTS" -m 1 "$url" 2>&1 | awk '
		/^finished in/ { v = $NF; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z\/]+$/, "", v)
			m = (u == "GB/s") ? 1024 : (u == "MB/s") ? 1 : (u == "KB/s") ? 1/1024 : 1/1048576
			printf "%.0f\n", v * m }
		/succeeded/ { if ($8 != $2) bad = 1 }
		END { if (bad) print "h2load: failed requests" > "/dev/stderr" }'
}

declare -A R
for round in $(seq "$ROUNDS"); do
	for mode in plain tls-h1 tls-h2; do
		for target in sliceedge nginx; do
			case $target:$mode in
			sliceedge:plain) u=http://127.0.0.1:$PLAIN$OBJ f=--h1 ;;
			sliceedge:tls-h1) u=https://127.0.0.1:$TLS$OBJ f=--h1 ;;
			sliceedge:tls-h2) u=https://127.0.0.1:$TLS$OBJ f= ;;
			nginx:plain) u=http://127.0.0.1:$NPLAIN$OBJ f=--h1 ;;
			nginx:tls-h1) u=https://127.0.0.1:$NTLS$OBJ f=--h1 ;;
			nginx:tls-h2) u=https://127.0.0.1:$NTLS$OBJ f= ;;
			esac
			R[$target:$mode]+="$(rate "$u" $f) "
		done
	done
	echo "round $round: done" >&2
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf "%d clients, %s object, %d requests each, median of %d rounds (MiB/s)\n" "$CLIENTS" "$SIZE" "$REQUESTS_PER_CLIENT" "$ROUNDS"
printf "%-8s %10s %10s %8s\n" protocol sliceedge nginx ratio
for mode in plain tls-h1 tls-h2; do
	s=$(median <<<"${R[sliceedge:$mode]}") n=$(median <<<"${R[nginx:$mode]}")
	printf "%-8s %10s %10s %8s\n" "$mode" "$s" "$n" "$(awk -v s="$s" -v n="$n" 'BEGIN { printf "%.2f", s / n }')"
done

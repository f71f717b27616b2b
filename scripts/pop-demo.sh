#!/usr/bin/env bash
# Starts the demo origin (127.0.0.1:9000) and a POP of three sliceedge
# nodes on this machine, each with its own config and store under
# ./pop-demo, prints commands that show the POP at work, and stops all
# four on Ctrl-C.
#
#   node   clients          admin            peer             gossip
#   pop-1  127.0.0.1:8081   127.0.0.1:8181   127.0.0.1:8281   127.0.0.1:7946
#   pop-2  127.0.0.1:8082   127.0.0.1:8182   127.0.0.1:8282   127.0.0.1:7947
#   pop-3  127.0.0.1:8083   127.0.0.1:8183   127.0.0.1:8283   127.0.0.1:7948
set -euo pipefail
BIN=${1:-bin/sliceedge}
DIR=${POP_DIR:-pop-demo}
ORIGIN_ADDR=127.0.0.1:9000

wait_port() { # host:port name
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "pop-demo: $2 did not start on $1 (is the port taken? see the messages above)" >&2
	return 1
}

mkdir -p "$DIR"
# One secret for the whole POP, made once and kept with the configs.
if [ ! -s "$DIR/secret" ]; then
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/secret"
fi
secret=$(cat "$DIR/secret")
for i in 1 2 3; do
	join=""
	if [ "$i" != 1 ]; then join="  join: [127.0.0.1:7946]"; fi
	cat >"$DIR/pop-$i.yaml" <<YAML
# pop-$i of the demo POP (scripts/pop-demo.sh writes this file).
name: pop-$i
listen: 127.0.0.1:808$i
admin:
  listen: 127.0.0.1:818$i
  token: $secret
store:
  dir: $DIR/pop-$i-data
  max_bytes: 1GiB
origins:
  default:
    url: http://$ORIGIN_ADDR
rules:
  - match: /
    hosts: [pop.localhost]
    origin: default
    slice_size: 1MiB
cluster:
  gossip: 127.0.0.1:794$((5 + i))
  peer: 127.0.0.1:828$i
  secret: $secret
$join
YAML
done

pids=()
cleanup() {
	trap - EXIT INT TERM
	kill "${pids[@]}" 2>/dev/null || true
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

"$BIN" origin --listen "$ORIGIN_ADDR" 2>"$DIR/origin.log" &
pids+=($!)
wait_port "$ORIGIN_ADDR" "the demo origin"
for i in 1 2 3; do
	"$BIN" serve --config "$DIR/pop-$i.yaml" --log-format json 2>"$DIR/pop-$i.log" &
	pids+=($!)
	wait_port "127.0.0.1:808$i" "pop-$i"
done

cat <<MSG

A POP of three sliceedge nodes is up in front of the demo origin http://$ORIGIN_ADDR.
Configs, stores and logs are in $DIR/. A balancer would send clients to any
node with one Host; curl does it by hand with -H 'Host: pop.localhost'.

Try, in another terminal:
  # the members as pop-1 sees them, and each one's share of the slice groups
  $BIN cluster status --admin http://127.0.0.1:8181 --token $secret
  # a cold 64 MiB download through pop-1: each 16 MiB group is fetched by its owner
  curl -s -o /dev/null -w '%{http_code} %{size_download} bytes\\n' -H 'Host: pop.localhost' http://127.0.0.1:8081/dl/64MiB.bin
  # the same object through pop-2: nothing more from the origin
  curl -s -o /dev/null -D - -H 'Host: pop.localhost' http://127.0.0.1:8082/dl/64MiB.bin
  # what each node fetched from the origin and from its peers
  curl -s -H "Authorization: Bearer $secret" http://127.0.0.1:8182/metrics | grep -E '^sliceedge_(origin_bytes|peer_bytes)'
  # a purge on pop-3 purges every node
  $BIN purge --admin http://127.0.0.1:8183 --token $secret http://pop.localhost/dl/64MiB.bin
  # the objects each store holds after it
  for i in 1 2 3; do $BIN stats --admin http://127.0.0.1:818\$i --token $secret | grep objects; done

Ctrl-C stops the four. A node killed alone (kill -9 its PID) leaves the
other nodes serving: the POP finds it dead in seconds.
MSG
wait "${pids[@]}"

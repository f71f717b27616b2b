#!/usr/bin/env bash
# check-dockerfile.sh [DOCKERFILE [CONTEXT]]: builds the image with docker when docker
# can (a daemon answers and the base images can be pulled), and otherwise
# checks what a build would rely on:
#   - two stages, a Go builder pinned to go.mod's Go version and a runtime
#     image pinned by tag (never :latest);
#   - a static build (CGO_ENABLED=0, -trimpath) stamped with VERSION/COMMIT;
#   - the runtime stage runs as a non-root USER, with the store on a VOLUME
#     that is the store.dir of the config it copies in, and EXPOSEs that
#     config's port;
#   - every COPY source exists and .dockerignore does not exclude it;
#   - ENTRYPOINT and CMD are in exec form (signals reach sliceedge);
#   - the config it copies in passes `sliceedge config check`.
# Prints one line per problem and exits 1 when there is any.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DF=${1:-$ROOT/Dockerfile}
CTX=$(cd "${2:-$(dirname "$DF")}" && pwd)

if [ -z "${CHECK_DOCKERFILE_STATIC:-}" ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
	echo "check-dockerfile: docker answers; building $DF"
	exec docker build -f "$DF" -t sliceedge:check "$CTX"
fi

problems=0
bad() {
	echo "$DF: $*"
	problems=$((problems + 1))
}

# The instructions, continuation lines joined, comments dropped.
instr=$(sed -e 's/#.*$//' "$DF" | awk '{ if (sub(/\\[ \t]*$/, "")) { buf = buf $0 " "; next } print buf $0; buf = "" }' | grep -v '^[[:space:]]*$')
froms=$(grep -ci '^FROM ' <<<"$instr")
[ "$froms" -ge 2 ] || bad "want a multi-stage build (a builder and a runtime stage), found $froms FROM"
gover=$(awk '$1 == "go" { print $2 }' "$ROOT/go.mod")
builder=$(grep -i '^FROM ' <<<"$instr" | head -1 | awk '{ print $2 }')
case $builder in
golang:"$gover"-* | golang:"$gover") ;;
*) bad "the builder is $builder, want golang:$gover (go.mod's go line)" ;;
esac
while read -r _ image _; do
	case $image in
	*@sha256:*) ;;
	*:latest | *:) bad "FROM $image: pin a tag other than latest" ;;
	*:*) ;;
	*) bad "FROM $image: pin a tag" ;;
	esac
done < <(grep -i '^FROM ' <<<"$instr")
build=$(grep -i '^RUN .*go build' <<<"$instr")
grep -q 'CGO_ENABLED=0' <<<"$build" || bad "the go build does not set CGO_ENABLED=0 (want a static binary)"
grep -q -- '-trimpath' <<<"$build" || bad "the go build has no -trimpath"
grep -q 'main.version=' <<<"$build" || bad "the go build does not stamp main.version"

# The runtime stage: after the last FROM.
final=$(awk 'toupper($1) == "FROM" { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' <<<"$instr")
user=$(grep -i '^USER ' <<<"$final" | tail -1 | awk '{ print $2 }')
case ${user%%:*} in
"") bad "the runtime stage sets no USER (it would run as root)" ;;
0 | root) bad "the runtime stage runs as $user (want a non-root user)" ;;
esac
for k in ENTRYPOINT CMD; do
	line=$(grep -i "^$k " <<<"$final" | tail -1)
	[ -n "$line" ] || { bad "no $k in the runtime stage"; continue; }
	grep -qi "^$k *\[" <<<"$line" || bad "$k is in shell form (want [\"...\"]: the shell would not pass SIGTERM on)"
done

# The config copied in, its store and port.
cfgsrc=$(grep -i '^COPY .*/etc/sliceedge/edge.yaml' <<<"$final" | awk '{ print $2 }')
if [ -z "$cfgsrc" ] || [ ! -f "$CTX/$cfgsrc" ]; then
	bad "the runtime stage copies no config file to /etc/sliceedge/edge.yaml"
else
	store=$(awk '$1 == "dir:" { print $2; exit }' "$CTX/$cfgsrc")
	grep -i '^VOLUME ' <<<"$final" | grep -q -- "\"$store\"\|[[:space:]]$store\$" ||
		bad "no VOLUME for the store directory $store of $cfgsrc"
	port=$(awk '$1 == "listen:" { n = split($2, a, ":"); print a[n]; exit }' "$CTX/$cfgsrc")
	grep -i '^EXPOSE ' <<<"$final" | grep -qw "$port" || bad "no EXPOSE $port (the listen port of $cfgsrc)"
	if ! out=$(cd "$ROOT" && go run ./cmd/sliceedge config check "$CTX/$cfgsrc" 2>&1); then
		bad "$cfgsrc does not pass config check: $out"
	fi
fi

# COPY sources: they exist and the build context keeps them.
while read -r _ args; do
	[[ $args == --from=* || $args == *" --from="* ]] && continue
	set -- ${args//--chown=* /}
	srcs=("${@:1:$#-1}")
	for s in "${srcs[@]}"; do
		[ "$s" = . ] && continue
		[ -e "$CTX/$s" ] || bad "COPY $s: no such file in the build context"
		if [ -f "$CTX/.dockerignore" ] && grep -qxF "${s%%/*}" "$CTX/.dockerignore"; then
			bad "COPY $s: .dockerignore excludes it"
		fi
	done
done < <(grep -i '^COPY ' <<<"$instr")

if [ "$problems" -gt 0 ]; then
	echo "check-dockerfile: $problems problem(s)"
	exit 1
fi
echo "check-dockerfile: $DF ok (static checks; docker is not available to build it)"

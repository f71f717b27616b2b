#!/usr/bin/env bash
# dist.sh BINARY VERSION GOOS GOARCH OUTDIR: the release tarball of a built
# sliceedge binary, with what installs and documents it, and its checksum.
#
#   OUTDIR/sliceedge-VERSION-GOOS-GOARCH.tar.gz
#     sliceedge-VERSION-GOOS-GOARCH/
#       sliceedge                       the static binary
#       systemd/sliceedge.service       the unit (Type=notify)
#       systemd/sliceedge.sysusers      the service user
#       edge.yaml                       the sample configuration, every key
#       completion/sliceedge.bash, _sliceedge (zsh), sliceedge.fish
#       man/sliceedge.1                 generated from the CLI
#       README.md, docs/deploying.md, LICENSE when there is one
#   OUTDIR/SHA256SUMS                   sha256 of the tarball (sha256sum -c)
#
# Completion and man page come from a host build of the same source
# (go run), so a cross build gets them too.
set -euo pipefail
BIN=$1 VERSION=$2 GOOS=$3 GOARCH=$4 OUT=$5
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=sliceedge-$VERSION-$GOOS-$GOARCH
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
D=$STAGE/$NAME
mkdir -p "$D/systemd" "$D/completion" "$D/man" "$D/docs"
install -m 0755 "$BIN" "$D/sliceedge"
install -m 0644 "$ROOT/scripts/sliceedge.service" "$ROOT/scripts/sliceedge.sysusers" "$D/systemd/"
install -m 0644 "$ROOT/testdata/config/edge.yaml" "$D/edge.yaml"
install -m 0644 "$ROOT/README.md" "$D/"
install -m 0644 "$ROOT/docs/deploying.md" "$D/docs/"
[ -f "$ROOT/LICENSE" ] && install -m 0644 "$ROOT/LICENSE" "$D/"
host=$STAGE/sliceedge-host
(cd "$ROOT" && GOOS= GOARCH= CGO_ENABLED=0 go build -buildvcs=false -o "$host" ./cmd/sliceedge)
"$host" completion bash >"$D/completion/sliceedge.bash"
"$host" completion zsh >"$D/completion/_sliceedge"
"$host" completion fish >"$D/completion/sliceedge.fish"
"$host" man >"$D/man/sliceedge.1"
mkdir -p "$OUT"
# Owned by root, dated by the commit: the same tree gives the same listing.
when=$(cd "$ROOT" && git log -1 --format=%cI 2>/dev/null || date -u +%FT%TZ)
tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner --mtime="$when" -czf "$OUT/$NAME.tar.gz" "$NAME"
(cd "$OUT" && sha256sum "$NAME.tar.gz" >SHA256SUMS)
echo "$OUT/$NAME.tar.gz"
cat "$OUT/SHA256SUMS"

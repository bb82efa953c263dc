#!/usr/bin/env bash
# spire-build.sh: put spire-server and spire-agent, at the version tools/spire/go.mod pins,
# into bin/tools (make spire). The build lands first in a cache outside the clone, keyed by
# that version: ${XDG_CACHE_HOME:-$HOME/.cache}/mtlsbank/spire-VERSION/ (SPIRE_CACHE_DIR
# overrides the mtlsbank/ part). A cold build takes 10 minutes or more on two cores; after
# it, every clone on the machine (CI's fresh ones included) only links or copies from the
# cache, and a rebuild after the cache is gone is mostly a link step from Go's build cache.
#
# It must not run alongside `go test -race` (both need a lot of memory): make test runs
# it as a prerequisite, before the tests start.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '$1 == "github.com/spiffe/spire" { print $2 }' tools/spire/go.mod)
if [[ -z $version ]]; then
	echo "spire-build.sh: tools/spire/go.mod pins no github.com/spiffe/spire version" >&2
	exit 1
fi
cache_root=${SPIRE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mtlsbank}
cache=$cache_root/spire-$version
tools=bin/tools

if [[ ! -f $cache/.complete ]]; then
	echo "spire-build.sh: building spire-server and spire-agent $version into $cache" >&2
	echo "spire-build.sh: the first build takes 10 minutes or more; later ones (any clone) copy from the cache" >&2
	mkdir -p "$cache_root"
	tmp=$(mktemp -d "$cache.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	start=$SECONDS
	(cd tools/spire && GOBIN=$tmp go install github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent)
	touch "$tmp/.complete"
	# Another build may have finished meanwhile: keep the first, which is the same.
	if [[ ! -f $cache/.complete ]]; then
		rm -rf "$cache"
		mv "$tmp" "$cache" 2>/dev/null || true
	fi
	echo "spire-build.sh: built in $((SECONDS - start))s" >&2
fi

mkdir -p "$tools"
for b in spire-server spire-agent; do
	if ! cmp -s "$cache/$b" "$tools/$b"; then
		rm -f "$tools/$b"
		ln "$cache/$b" "$tools/$b" 2>/dev/null || cp "$cache/$b" "$tools/$b"
	fi
done
echo "spire-build.sh: $tools/spire-server and $tools/spire-agent are SPIRE $version (from $cache)" >&2

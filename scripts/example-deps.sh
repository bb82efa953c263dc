#!/usr/bin/env bash
# example-deps.sh: install what the example clients in other languages need (.ci/run runs
# it; so can you, as root or with sudo):
#
#   - examples/python: Debian's python3-grpcio and python3-grpc-tools, for /usr/bin/python3
#     (a pyenv or venv python3 first on PATH does not see Debian's packages);
#   - examples/node: Node.js and npm (Debian's nodejs and npm if there is no node), then
#     `npm ci` in examples/node from the committed package-lock.json.
#
# Idempotent and quick when everything is there: apt-get runs only for a missing package,
# npm ci only when package-lock.json changed since the last install (a stamp in
# node_modules/ remembers its hash).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
/usr/bin/python3 -c 'import grpc, grpc_tools' 2>/dev/null || missing+=(python3-grpcio python3-grpc-tools)
{ command -v node && command -v npm; } >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
	sudo=()
	[[ $(id -u) == 0 ]] || sudo=(sudo)
	echo "example-deps.sh: apt-get install ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp=examples/node/node_modules/.package-lock.sha256
want=$(sha256sum examples/node/package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(<"$stamp") != "$want" ]]; then
	echo "example-deps.sh: npm ci in examples/node"
	(cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
	echo "$want" >"$stamp"
fi
echo "example-deps.sh: $(/usr/bin/python3 -c 'import grpc; print("grpcio", grpc.__version__)'), node $(node --version), examples/node installed"

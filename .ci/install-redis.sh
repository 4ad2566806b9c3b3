#!/usr/bin/env bash
# Installs redis-server and redis-cli (Debian/Ubuntu packages redis-server and
# redis-tools) with apt-get, only when one of them is missing from PATH.
# Idempotent: a second run changes nothing. Prints what it found and did.
# Needs root (or sudo) only when it has to install something.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-cli)

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-redis: already installed, nothing to do:"
	echo "  $(command -v redis-server): $(redis-server --version)"
	echo "  $(command -v redis-cli): $(redis-cli --version)"
	exit 0
fi

echo "install-redis: missing from PATH: ${missing[*]}"
if ! have apt-get; then
	echo "install-redis: apt-get not found; install redis-server and redis-cli (Redis >= 6.0; 7.0 is the tested version) by hand" >&2
	exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if have sudo; then
		sudo=(sudo)
	else
		echo "install-redis: not root and no sudo; cannot run apt-get" >&2
		exit 1
	fi
fi

# redis-server pulls redis-tools (redis-cli) in; name both in case one was
# removed by hand. The packaged service is not needed by the tests (they
# start their own servers), but the package starts it on 127.0.0.1:6379; the
# tests never touch it.
export DEBIAN_FRONTEND=noninteractive
echo "install-redis: apt-get update"
"${sudo[@]}" apt-get update -qq
echo "install-redis: apt-get install redis-server redis-tools"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null

for bin in redis-server redis-cli; do
	if ! have "$bin"; then
		echo "install-redis: $bin still not on PATH after apt-get install" >&2
		exit 1
	fi
done
echo "install-redis: installed:"
echo "  $(command -v redis-server): $(redis-server --version)"
echo "  $(command -v redis-cli): $(redis-cli --version)"

#!/usr/bin/env bash
# Fails when a redis-server started by internal/redisserver is still running
# (its ports are 12000-21999; the TLS port comes from the same range). Run it
# after the integration tests: every server they start must be stopped by
# their cleanups. It only reads the process list; it signals nothing.
set -euo pipefail

leftovers=$(pgrep -a redis-server | awk '
	{
		for (i = 2; i <= NF; i++) {
			n = split($i, hp, ":")
			port = hp[n] + 0
			if (port >= 12000 && port < 22000) { print; next }
		}
	}' || true)

if [ -n "$leftovers" ]; then
	echo "redis-leftovers: redis-server processes of the test harness are still running:" >&2
	echo "$leftovers" >&2
	exit 1
fi
echo "redis-leftovers: none (running redis-server: $(pgrep -c redis-server || true))"

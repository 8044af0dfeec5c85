#!/bin/sh
# Starts one Sentinel watching the current primary. Sentinel rewrites its config file at run
# time, so the file lives on the pod's emptyDir; the password reaches it as in redis.sh.
set -eu
# The two directories are the pod's mounts; the tests point them elsewhere.
scripts="${SCRIPTS_DIR:-/scripts}"
. "$scripts/common.sh"
conf="${RUN_DIR:-/run/sentinel}/sentinel.conf"
self="$(hostname).$HEADLESS_DOMAIN"
primary="$(find_primary)"
cat > "$conf" <<CONF
port $SENTINEL_PORT
dir /tmp
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
requirepass "$REDIS_PASSWORD"
sentinel sentinel-pass "$REDIS_PASSWORD"
sentinel monitor $MASTER_NAME $primary $REDIS_PORT $QUORUM
sentinel auth-pass $MASTER_NAME "$REDIS_PASSWORD"
sentinel down-after-milliseconds $MASTER_NAME $DOWN_AFTER_MS
sentinel failover-timeout $MASTER_NAME $FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $MASTER_NAME 1
CONF
exec redis-sentinel "$conf"

#!/bin/sh
# Starts one Sentinel watching the current primary. Sentinel rewrites its config file at run
# time (the primary after each failover, the epoch, the replicas and sentinels it knows), and
# the file lives on the pod's own volume: when every Redis pod restarts at once, the sentinels
# still name the last primary, the server holding the newest data, instead of letting the
# first server to start make itself primary with data that may be the stalest. The password
# reaches it as in redis.sh, rewritten at every start (the Secret may have changed).
set -eu
# The two directories are the pod's mounts; the tests point them elsewhere.
scripts="${SCRIPTS_DIR:-/scripts}"
. "$scripts/common.sh"
conf="${DATA_DIR:-/data}/sentinel.conf"
self="$(hostname).$HEADLESS_DOMAIN"
if grep -q "^sentinel monitor $MASTER_NAME " "$conf" 2>/dev/null; then
    # A restart: what this sentinel knew stays; only the credentials are written afresh.
    credentials="requirepass|sentinel sentinel-pass|sentinel auth-pass $MASTER_NAME"
    grep -v -E "^($credentials) " "$conf" > "$conf.new"
else
    primary="$(find_primary)"
    # Staggered by the sentinel's ordinal (a second each): sentinels that lose the primary at
    # the same instant would all stand for leader in one epoch and split the vote, and the
    # failover would wait twice the failover timeout (a primary pod back by then is kept).
    # Staggered, at most two stand before the next one has voted for one of them.
    ordinal="$(hostname)"; ordinal="${ordinal##*-}"
    case "$ordinal" in ''|*[!0-9]*) ordinal=0 ;; esac
    cat > "$conf.new" <<CONF
port $SENTINEL_PORT
dir /tmp
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
sentinel monitor $MASTER_NAME $primary $REDIS_PORT $QUORUM
sentinel down-after-milliseconds $MASTER_NAME $((DOWN_AFTER_MS + ordinal * 1000))
sentinel failover-timeout $MASTER_NAME $FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $MASTER_NAME 1
CONF
fi
{
    printf 'requirepass "%s"\n' "$REDIS_PASSWORD"
    printf 'sentinel sentinel-pass "%s"\n' "$REDIS_PASSWORD"
    printf 'sentinel auth-pass %s "%s"\n' "$MASTER_NAME" "$REDIS_PASSWORD"
} >> "$conf.new"
mv "$conf.new" "$conf"
exec redis-sentinel "$conf"

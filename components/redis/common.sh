# Shared by redis.sh and sentinel.sh: where the current primary is.
#
# Environment (set by the RedisHA component): REDIS_PORT, REDIS_STATEFULSET, REDIS_REPLICAS,
# HEADLESS_DOMAIN (<headless service>.<namespace>.svc.cluster.local), SENTINEL_HOST,
# SENTINEL_PORT, MASTER_NAME, and REDISCLI_AUTH (the password, from the Secret; redis-cli
# reads it from the environment so it never appears on a command line).

# Prints the primary's host name. The sentinels' view wins because it survives failovers and,
# kept on their volumes, restarts of every pod; a server that reports role:master is next (the
# sentinels' volumes lost); the first pod of the StatefulSet is the primary only when nothing
# is running yet (first bootstrap).
find_primary() {
    known="$(redis-cli -h "$SENTINEL_HOST" -p "$SENTINEL_PORT" --raw \
        sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1 || true)"
    if [ -n "$known" ]; then
        echo "$known"
        return
    fi
    i=0
    while [ "$i" -lt "$REDIS_REPLICAS" ]; do
        host="$REDIS_STATEFULSET-$i.$HEADLESS_DOMAIN"
        if redis-cli -h "$host" -p "$REDIS_PORT" info replication 2>/dev/null | grep -q '^role:master'; then
            echo "$host"
            return
        fi
        i=$((i + 1))
    done
    echo "$REDIS_STATEFULSET-0.$HEADLESS_DOMAIN"
}

#!/bin/sh
# Starts one Redis server of the StatefulSet as primary or as replica of the current primary.
# The password comes from the Secret through the environment and is written only to the
# config file on the pod's emptyDir, never to the ConfigMap or a command line.
set -eu
# The two directories are the pod's mounts; the tests point them elsewhere.
scripts="${SCRIPTS_DIR:-/scripts}"
. "$scripts/common.sh"
conf="${RUN_DIR:-/run/redis}/redis.conf"
self="$(hostname).$HEADLESS_DOMAIN"
cp "$scripts/redis.conf" "$conf"
{
    printf 'requirepass "%s"\nmasterauth "%s"\n' "$REDIS_PASSWORD" "$REDIS_PASSWORD"
    # Announce the stable DNS name, not the pod IP, which changes when the pod is rescheduled.
    printf 'replica-announce-ip %s\n' "$self"
} >> "$conf"
primary="$(find_primary)"
if [ "$primary" != "$self" ]; then
    printf 'replicaof %s %s\n' "$primary" "$REDIS_PORT" >> "$conf"
fi
exec redis-server "$conf"

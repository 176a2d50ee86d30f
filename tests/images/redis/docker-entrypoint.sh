#!/usr/bin/env bash
# Entrypoint of hsm-test/redis:7, after the official redis image's:
#  - `docker run IMAGE --flag …` or `… some.conf` runs `redis-server …`;
#  - redis-server without a config file gets /etc/redis/hsm.conf first (listen on
#    0.0.0.0:6379, protected-mode no, dir /data), so flags given after it still win;
#  - started as root, it hands /data to the redis user and drops privileges (setpriv);
#  - redis-server is exec'd, so it is PID 1 and `docker stop` (SIGTERM) saves and exits.
set -Eeo pipefail

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ]; then
    if [ "${2:-}" = "${2%.conf}" ]; then
        set -- redis-server /etc/redis/hsm.conf "${@:2}"
    fi
    if [ "$(id -u)" = 0 ]; then
        find /data \! -user redis -exec chown redis:redis '{}' +
        export HOME=/data
        exec setpriv --reuid=redis --regid=redis --init-groups "${BASH_SOURCE[0]}" "$@"
    fi
fi

exec "$@"

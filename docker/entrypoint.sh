#!/bin/sh
# Started as root (for a root-owned bind mount on /data): give /data to the bridge user, then
# run the command as that user, never as root. Started as any other user: run it as it is.
set -eu
data=/data
if [ "$(id -u)" = 0 ]; then
    # Only what is not the bridge's already: a large store is not rewritten at every start.
    find "$data" ! -user bridge -exec chown bridge:bridge {} +
    chmod u+rwx "$data"
    exec setpriv --reuid=bridge --regid=bridge --init-groups -- "$@"
fi
exec "$@"

#!/bin/sh
# Runs after the package is removed. The state in /var/lib/chatsync, the
# config in /etc/chatsync and the chatsync user stay (remove them by hand,
# or with `apt purge chatsync`, which removes the state and the user too).
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = "purge" ]; then
	rm -rf /var/lib/chatsync
	userdel chatsync >/dev/null 2>&1 || true
	groupdel chatsync >/dev/null 2>&1 || true
fi
exit 0

#!/bin/sh
# Runs before the package is removed (not before an upgrade): stop and
# disable the system service. Per-user services are each user's to stop.
set -e
case "$1" in
	upgrade|1) exit 0 ;; # deb: "upgrade"; rpm: 1 package left after this one
esac
if [ -d /run/systemd/system ]; then
	systemctl disable --now chatsync.service >/dev/null 2>&1 || true
fi
exit 0

#!/bin/sh
# Runs after the package is installed or upgraded: make the system user
# the system service runs as, give it its config directory, and tell systemd
# about the units. The service is not enabled or started here: edit
# /etc/chatsync/config.toml first, then `systemctl enable --now chatsync`.
set -e

if ! getent group chatsync >/dev/null 2>&1; then
	groupadd --system chatsync 2>/dev/null || addgroup --system chatsync
fi
if ! getent passwd chatsync >/dev/null 2>&1; then
	useradd --system --gid chatsync --home-dir /var/lib/chatsync --no-create-home \
		--shell /usr/sbin/nologin --comment "chatsync daemon" chatsync 2>/dev/null ||
		adduser --system --ingroup chatsync --home /var/lib/chatsync --no-create-home \
			--shell /usr/sbin/nologin chatsync
fi

# On the first install only (an upgrade keeps what the admin set): the
# config may hold secrets, so it is readable by root and the service only.
first_install=false
case "$1" in
	configure) [ -z "${2:-}" ] && first_install=true ;; # deb: configure <old version>
	1) first_install=true ;;                            # rpm: 1 on install, 2 on upgrade
esac
if [ "$first_install" = true ]; then
	if [ -d /etc/chatsync ]; then
		chown root:chatsync /etc/chatsync
		chmod 0750 /etc/chatsync
	fi
	if [ -f /etc/chatsync/config.toml ]; then
		chown root:chatsync /etc/chatsync/config.toml
		chmod 0640 /etc/chatsync/config.toml
	fi
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# On upgrade, restart a service that was running so it runs the new binary.
	if systemctl is-active --quiet chatsync.service; then
		systemctl try-restart chatsync.service >/dev/null 2>&1 || true
	fi
fi
exit 0

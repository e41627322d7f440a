#!/bin/sh
# Runs after the package is removed. Nothing the service made or the admin
# put there is deleted, not even by `apt purge`: /var/lib/chatsync holds the
# keys and the message stores (the only copy of a history the server has
# dropped), and the user chatsync stays, so the password files it owns in
# /etc/chatsync keep a known owner. The admin deletes them, when asked to
# below.
#
# Paths are under $DPKG_ROOT (empty: /), as dpkg --root sets it.
set -e
root=${DPKG_ROOT:-}
if [ -d "$root/run/systemd/system" ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
case "$1" in
purge | 0) # deb: purge; rpm: 0 packages left (an erase, not an upgrade)
	if [ -d "$root/var/lib/chatsync" ]; then
		echo "chatsync: kept /var/lib/chatsync: the keys, message stores and state of the system service are there" >&2
	fi
	if [ -d "$root/etc/chatsync" ]; then
		echo "chatsync: kept /etc/chatsync: what is left there is yours (password files)" >&2
	fi
	echo "chatsync: kept the user and group chatsync, which own them" >&2
	echo "chatsync: to delete all of it: sudo rm -rf /var/lib/chatsync /etc/chatsync && sudo userdel chatsync" >&2
	;;
esac
exit 0

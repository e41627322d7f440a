#!/bin/sh
# Runs after the package is installed or upgraded: make the system user the
# system service runs as, its state directory /var/lib/chatsync and the
# store directories the config names there, give it its config directory,
# and tell systemd about the units. The service is not enabled or started
# here: edit /etc/chatsync/config.toml first, then
# `systemctl enable --now chatsync`.
#
# Paths are under $DPKG_ROOT (empty: /), as dpkg --root sets it; CI runs
# this script on a temporary root with that.
set -e
root=${DPKG_ROOT:-}
state=/var/lib/chatsync

if ! getent group chatsync >/dev/null 2>&1; then
	groupadd --system chatsync 2>/dev/null || addgroup --system chatsync
fi
if ! getent passwd chatsync >/dev/null 2>&1; then
	useradd --system --gid chatsync --home-dir "$state" --no-create-home \
		--shell /usr/sbin/nologin --comment "chatsync daemon" chatsync 2>/dev/null ||
		adduser --system --ingroup chatsync --home "$state" --no-create-home \
			--shell /usr/sbin/nologin chatsync
fi

# mkstate DIR: makes DIR (under /var/lib/chatsync) and each missing
# directory above it, 0700 and owned by chatsync; what exists stays as it is.
mkstate() {
	missing=
	d=$1
	while [ ! -d "$root$d" ]; do
		missing="$d
$missing"
		[ "$d" = "$state" ] && break
		d=$(dirname "$d")
	done
	printf '%s' "$missing" | while IFS= read -r d; do
		[ -n "$d" ] || continue
		mkdir -m 0700 "$root$d"
		chown chatsync:chatsync "$root$d"
	done
}

# /var/lib/chatsync holds the service's state, its keys and its message
# stores. It is made at install, so that
#   sudo -u chatsync chatsync key generate --out /var/lib/chatsync/alice.key
# works before the first start. No maintainer script ever deletes it, not
# even purge: it holds the keys and the history.
[ -d "$root/var/lib" ] || mkdir -p "$root/var/lib"
mkstate "$state"

# On the first install only (an upgrade keeps what the admin set): the
# config may hold secrets, so it is readable by root and the service only;
# and the stores it names under /var/lib/chatsync are made, so the service
# does not start paused on a missing store. (On an upgrade a missing store
# is one that disappeared: the daemon pauses on it, and it is not made
# again here.)
first_install=false
case "$1" in
configure) [ -z "${2:-}" ] && first_install=true ;; # deb: configure <old version>
1) first_install=true ;;                            # rpm: 1 on install, 2 on upgrade
esac
if [ "$first_install" = true ]; then
	if [ -d "$root/etc/chatsync" ]; then
		chown root:chatsync "$root/etc/chatsync"
		chmod 0750 "$root/etc/chatsync"
	fi
	if [ -f "$root/etc/chatsync/config.toml" ]; then
		chown root:chatsync "$root/etc/chatsync/config.toml"
		chmod 0640 "$root/etc/chatsync/config.toml"
		sed -n 's|^[[:space:]]*store[[:space:]]*=[[:space:]]*"\(/var/lib/chatsync/[^"]*\)".*|\1|p' \
			"$root/etc/chatsync/config.toml" | while IFS= read -r store; do
			case "$store" in
			*/../* | */..) continue ;;
			esac
			mkstate "${store%/}"
		done
	fi
elif [ -f "$root/etc/chatsync/config.toml" ] && [ "$(stat -c %G "$root/etc/chatsync/config.toml" 2>/dev/null)" = root ]; then
	# An upgrade that put the packaged config back (dpkg replaces an
	# unmodified conffile) left it root's: the service reads it as chatsync.
	chown root:chatsync "$root/etc/chatsync/config.toml"
	chmod 0640 "$root/etc/chatsync/config.toml"
fi

if [ -d "$root/run/systemd/system" ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# On upgrade, restart a service that was running so it runs the new binary.
	if systemctl is-active --quiet chatsync.service; then
		systemctl try-restart chatsync.service >/dev/null 2>&1 || true
	fi
fi
exit 0

#!/bin/sh
# Prints the version of this checkout, as the packages and `chatsync version`
# show it. It comes from the newest release tag (vX.Y.Z) that `git describe`
# finds:
#
#   v1.2.3                    1.2.3
#   v1.2.3-4-gabc1234         1.2.3+git4.abc1234    4 commits after v1.2.3: above it, below 1.2.4
#   v1.3.0-rc.1               1.3.0-rc.1            the .deb and .rpm say 1.3.0~rc.1: below 1.3.0
#   abc1234 (no tag yet)      0.0.0+gitabc1234      below every release
#   ...-dirty                 ...+dirty, ....dirty  uncommitted changes
#   (not a git checkout)      0.0.0+unknown
#
# The result is a semantic version: nfpm (version_schema: semver) turns a
# pre-release into ~pre and keeps +build, so dpkg and rpm sort it as above.
set -eu
cd "$(dirname "$0")/.."

d=$(git describe --tags --match 'v[0-9]*' --always --dirty 2>/dev/null || true)
dirty=false
case $d in
*-dirty) dirty=true d=${d%-dirty} ;;
esac
# Only the characters a version may hold.
d=$(printf '%s' "$d" | tr -c '0-9A-Za-z.+-' '.')

case $d in
'') v=0.0.0+unknown ;;
v[0-9]*)
	if printf '%s\n' "$d" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
		hash=${d##*-g}
		rest=${d%-g*}
		n=${rest##*-}
		tag=${rest%-*}
		v="${tag#v}+git$n.$hash"
	else
		v=${d#v}
	fi
	;;
*) v="0.0.0+git$d" ;;
esac
if [ "$dirty" = true ]; then
	case $v in
	*+*) v="$v.dirty" ;;
	*) v="$v+dirty" ;;
	esac
fi
printf '%s\n' "$v"

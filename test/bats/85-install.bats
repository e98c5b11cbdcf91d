#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# `meson install` with the README's commands: a fresh build dir with --prefix=/usr, built
# and installed once for the file (into a DESTDIR), then checked file by file; the unit
# points at the installed daemon, and `ninja uninstall` takes everything away again.

load helper

# The README's install commands (README.md, "Operating it"); the tests run them with the
# build dir in BATS_FILE_TMPDIR, a DESTDIR, and without sudo.
README_SETUP='meson setup build-usr --prefix=/usr && ninja -C build-usr'
README_INSTALL='sudo meson install -C build-usr'
README_UNINSTALL='sudo ninja -C build-usr uninstall'

setup_file() {
	export B="$BATS_FILE_TMPDIR/build-usr" D="$BATS_FILE_TMPDIR/dest"
	cd "$REPO_ROOT" || return 1
	# README_SETUP, in a build dir of this file's own.
	if ! { meson setup "$B" --prefix=/usr && ninja -C "$B"; } >"$BATS_FILE_TMPDIR/build.log" 2>&1; then
		cat "$BATS_FILE_TMPDIR/build.log" >&2
		return 1
	fi
	# README_INSTALL.
	if ! DESTDIR="$D" meson install -C "$B" >"$BATS_FILE_TMPDIR/install.log" 2>&1; then
		cat "$BATS_FILE_TMPDIR/install.log" >&2
		return 1
	fi
}

setup() {
	load_libs
	cd "$REPO_ROOT" || return 1
}

# readme_shows CMD: README.md shows CMD as an indented command line (a comment may follow).
readme_shows() {
	sed -n 's/^    //p' "$REPO_ROOT/README.md" | sed 's/[[:space:]][[:space:]]*#.*$//' |
		grep -qxF -- "$1" || fail "README.md does not show the command: $1"
}

# unitdir PREFIX: where the build puts the unit for PREFIX: systemd's own unit dir when
# PREFIX is systemd's prefix, else PREFIX/lib/systemd/system (contrib/systemd/meson.build).
unitdir() {
	if pkg-config --exists systemd && [ "$(pkg-config --variable=prefix systemd)" = "$1" ]; then
		pkg-config --variable=systemdsystemunitdir systemd
	else
		echo "$1/lib/systemd/system"
	fi
}

# completionsdir: where bash-completion wants completions below /usr.
completionsdir() {
	if pkg-config --exists bash-completion; then
		pkg-config --define-variable=prefix=/usr --variable=completionsdir bash-completion
	else
		echo /usr/share/bash-completion/completions
	fi
}

# installed DIR: every file and link below DIR, as absolute paths below it, sorted.
installed() {
	(cd "$1" && find . ! -type d | sed 's|^\.||' | LC_ALL=C sort)
}

@test "the README shows the install and uninstall commands this file runs" {
	readme_shows "$README_SETUP"
	readme_shows "$README_INSTALL"
	readme_shows "$README_UNINSTALL"
}

@test "meson install puts exactly the daemon, its two links, statehousectl, three man pages, the completion and the unit there" {
	run installed "$D"
	assert_output "$(printf '%s\n' \
		/usr/bin/statehousectl \
		/usr/sbin/mount.statehouse \
		/usr/sbin/statehouse \
		/usr/sbin/statehoused \
		/usr/share/man/man1/statehousectl.1 \
		/usr/share/man/man5/statehouse.5 \
		/usr/share/man/man8/statehoused.8 \
		"$(completionsdir)/statehousectl" \
		"$(unitdir /usr)/statehoused@.service" | LC_ALL=C sort)"
	# so no cmocka test, static library or header went along
	refute_output --partial test_
}

@test "the installed binaries run, and statehouse and mount.statehouse are links to statehoused beside them" {
	version=$(meson introspect --projectinfo "$B" | jq -r .version)
	run "$D/usr/sbin/statehoused" --version
	assert_success
	assert_output --regexp "^statehoused $version \\(git ([0-9a-f]{12}|unknown), libfuse 3\\.[0-9.]+, sqlite 3\\.[0-9.]+\\)$"
	run "$D/usr/bin/statehousectl" help
	assert_success
	for l in statehouse mount.statehouse; do
		[ -L "$D/usr/sbin/$l" ]
		[ "$(readlink "$D/usr/sbin/$l")" = statehoused ]
	done
	[ -x "$D/usr/sbin/statehoused" ] && [ ! -L "$D/usr/sbin/statehoused" ]
}

@test "the installed unit's ExecStart runs the installed /usr/sbin/statehoused; the rest is contrib/systemd's unit" {
	unit="$D$(unitdir /usr)/statehoused@.service"
	run grep '^ExecStart=' "$unit"
	assert_output 'ExecStart=/usr/sbin/statehoused ${STATEHOUSE_DATA} %f $STATEHOUSE_OPTS'
	exe=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$unit")
	cmp "$D$exe" "$B/statehoused"
	run diff <(grep -v '^ExecStart=' "$REPO_ROOT/contrib/systemd/statehoused@.service") <(grep -v '^ExecStart=' "$unit")
	assert_success
}

@test "the man pages are installed uncompressed and render, and the completion is contrib's" {
	for page in man1/statehousectl.1 man5/statehouse.5 man8/statehoused.8; do
		name=${page#*/}
		run env MANWIDTH=80 man -l "$D/usr/share/man/$page"
		assert_success
		assert_line --index 0 --regexp "^${name%.*}\\(${name##*.}\\) "
		assert_line NAME
	done
	cmp "$REPO_ROOT/contrib/bash-completion/statehousectl" "$D$(completionsdir)/statehousectl"
}

@test "--prefix=/usr/local puts the unit below the prefix, naming /usr/local/sbin, and -Dsystemdunitdir puts it where it says" {
	local d1="$BATS_FILE_TMPDIR/dest-local" d2="$BATS_FILE_TMPDIR/dest-unitdir"
	# Left so: the build dir is reconfigured, not rebuilt, by the tests after this one.
	meson configure "$B" -Dprefix=/usr/local >/dev/null
	DESTDIR="$d1" meson install -C "$B" >/dev/null
	meson configure "$B" -Dsystemdunitdir=/etc/systemd/system >/dev/null
	DESTDIR="$d2" meson install -C "$B" >/dev/null

	run installed "$d1"
	assert_line "$(unitdir /usr/local)/statehoused@.service"
	assert_line /usr/local/sbin/statehoused
	assert_line /usr/local/sbin/statehouse
	assert_line /usr/local/sbin/mount.statehouse
	run grep '^ExecStart=' "$d1$(unitdir /usr/local)/statehoused@.service"
	assert_output --regexp '^ExecStart=/usr/local/sbin/statehoused '
	[ -x "$d1/usr/local/sbin/statehoused" ]

	run installed "$d2"
	assert_line /etc/systemd/system/statehoused@.service
	refute_output --partial /lib/systemd/
	run grep '^ExecStart=' "$d2/etc/systemd/system/statehoused@.service"
	assert_output --regexp '^ExecStart=/usr/local/sbin/statehoused '
}

@test "ninja uninstall removes every file and directory the install made" {
	local d="$BATS_FILE_TMPDIR/dest-uninstall"
	DESTDIR="$d" meson install -C "$B" >/dev/null
	[ -n "$(find "$d" -name statehoused -type f)" ]
	# README_UNINSTALL: the install log names the DESTDIR paths, so no DESTDIR is needed.
	run ninja -C "$B" uninstall
	assert_success
	assert_output --partial 'Failed: 0'
	run bash -c "find '$d' ! -type d 2>/dev/null"
	assert_output ""
	# and so did the directories it made
	[ -z "$(find "$d" -name man8 2>/dev/null)" ]
}

#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The Debian packages with the README's commands: dpkg-buildpackage on a copy of the tree
# (once for the file), lintian, the packages' file lists, then a real install, a mount
# through an fstab line, the Python module from dist-packages, and apt remove leaving
# nothing behind.

load helper
bats_require_minimum_version 1.5.0

# The README's commands (README.md, "Build the Debian package"), run as written less sudo;
# the build runs in a copy of the tree, so ../ is BATS_FILE_TMPDIR.
README_TOOLS='sudo apt-get install debhelper dh-python lintian'
README_BUILD='dpkg-buildpackage -us -uc -b'
README_LINTIAN='lintian ../statehouse_*.changes'
README_INSTALL='sudo apt install ../statehouse_*.deb ../python3-statehouse_*.deb'
README_REMOVE='sudo apt remove statehouse python3-statehouse'

# The build tools the test needs (scripts/debian-packages lists them for CI).
TOOLS=(dpkg-buildpackage dh dh_python3 lintian)

tools_missing() {
	local t
	for t in "${TOOLS[@]}"; do
		command -v "$t" >/dev/null || { echo "$t"; return 0; }
	done
	return 1
}

setup_file() {
	export S="$BATS_FILE_TMPDIR/statehouse" BUILD_OK=0
	tools_missing >/dev/null && return 0
	# A copy of the tree as git sees it (tracked and untracked files, nothing ignored: no
	# build dir); the build finds the revision through GIT_DIR for .version's git_sha.
	mkdir -p "$S"
	(cd "$REPO_ROOT" && git ls-files -z -co --exclude-standard | rsync -a --from0 --files-from=- . "$S/")
	export GIT_DIR_ABS
	GIT_DIR_ABS=$(git -C "$REPO_ROOT" rev-parse --absolute-git-dir)
	if ! (cd "$S" && GIT_DIR=$GIT_DIR_ABS $README_BUILD) >"$BATS_FILE_TMPDIR/build.log" 2>&1; then
		tail -n 40 "$BATS_FILE_TMPDIR/build.log" >&2
		return 1
	fi
	BUILD_OK=1
}

# Installed by this file: removed again whatever happened.
teardown_file() {
	if [ "${INSTALLED_BY_US:-0}" = 1 ] || [ -f "$BATS_FILE_TMPDIR/installed" ]; then
		dpkg --purge statehouse python3-statehouse >/dev/null 2>&1 || true
	fi
}

setup() {
	load_libs
	if t=$(tools_missing); then
		sh_skip "no $t here (apt-get install debhelper dh-python lintian)"
	fi
	[ "$BUILD_OK" = 1 ] || fail "dpkg-buildpackage failed: $BATS_FILE_TMPDIR/build.log"
	cd "$S" || return 1
}

teardown() {
	local rc=0
	[ -n "${SH_TMP:-}" ] || return 0
	sh_umount_below "$SH_TMP" || rc=1
	rm -rf "$SH_TMP"
	return $rc
}

readme_shows() {
	sed -n 's/^    //p' "$REPO_ROOT/README.md" | sed 's/[[:space:]][[:space:]]*#.*$//' |
		grep -qxF -- "$1" || fail "README.md does not show the command: $1"
}

# files DEB: the files and links a package holds, as absolute paths, sorted.
files() {
	dpkg-deb -c "$1" | awk '$1 !~ /^d/ { print substr($6, 2) }' | LC_ALL=C sort
}

@test "the README shows the package commands this file runs, and the build tools are installed" {
	readme_shows "$README_TOOLS"
	readme_shows "$README_BUILD"
	readme_shows "$README_LINTIAN"
	readme_shows "$README_INSTALL"
	readme_shows "$README_REMOVE"
	# README_TOOLS would install nothing more here.
	run apt-get install -s debhelper dh-python lintian
	assert_success
	assert_line --regexp '^0 upgraded, 0 newly installed'
}

@test "dpkg-buildpackage makes statehouse and python3-statehouse, and lintian reports no error or warning" {
	ls ../statehouse_*_"$(dpkg --print-architecture)".deb ../python3-statehouse_*_all.deb
	# README_LINTIAN (lintian only warns that it runs as root, on stderr).
	run --separate-stderr $README_LINTIAN
	assert_success
	assert_output ""
}

@test "statehouse holds the daemon, its mount helpers, statehousectl, the man pages, the completion and the unit" {
	run files ../statehouse_*.deb
	assert_output "$(printf '%s\n' \
		/lib/systemd/system/statehoused@.service \
		/usr/bin/statehousectl \
		/usr/sbin/mount.statehouse \
		/usr/sbin/statehouse \
		/usr/sbin/statehoused \
		/usr/share/bash-completion/completions/statehousectl \
		/usr/share/doc/statehouse/changelog.gz \
		/usr/share/doc/statehouse/copyright \
		/usr/share/man/man1/statehousectl.1.gz \
		/usr/share/man/man5/statehouse.5.gz \
		/usr/share/man/man8/mount.statehouse.8.gz \
		/usr/share/man/man8/statehouse.8.gz \
		/usr/share/man/man8/statehoused.8.gz | LC_ALL=C sort)"
	run dpkg-deb -f ../statehouse_*.deb Depends
	assert_output --regexp '(^|, )fuse3(,|$)'
	assert_output --partial libfuse3-3
	assert_output --partial libsqlite3-0
}

@test "python3-statehouse holds the python/ module in dist-packages, and the packaged binaries name the source's git revision" {
	run files ../python3-statehouse_*.deb
	assert_output "$(
		(cd "$REPO_ROOT/python/statehouse" && ls *.py | sed 's|^|/usr/lib/python3/dist-packages/statehouse/|')
		printf '%s\n' /usr/share/doc/python3-statehouse/changelog.gz /usr/share/doc/python3-statehouse/copyright
	)"
	x="$BATS_TEST_TMPDIR/x"
	dpkg-deb -x ../statehouse_*.deb "$x"
	sha=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD)
	run "$x/usr/sbin/statehoused" --version
	assert_output --regexp "^statehoused [0-9.]+ \\(git $sha, libfuse "
	run "$x/usr/bin/statehousectl" --version
	assert_output --regexp "^statehousectl [0-9.]+ \\(git $sha\\)$"
}

@test "installed, the packages mount through an fstab line, the module imports, and apt remove leaves nothing behind" {
	local p
	for p in statehouse python3-statehouse; do
		if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ]; then
			sh_skip "$p is installed on this machine already; this test would replace it"
		fi
	done
	[ ! -e /usr/sbin/statehoused ] || sh_skip "/usr/sbin/statehoused exists (an install not from the package)"
	files ../statehouse_*.deb >"$BATS_TEST_TMPDIR/files"
	files ../python3-statehouse_*.deb >>"$BATS_TEST_TMPDIR/files"

	touch "$BATS_FILE_TMPDIR/installed"
	# README_INSTALL.
	run env DEBIAN_FRONTEND=noninteractive apt-get install -y ../statehouse_*.deb ../python3-statehouse_*.deb
	assert_success
	while read -r f; do
		[ -e "$f" ] || [ -L "$f" ] || fail "$f is not installed"
	done <"$BATS_TEST_TMPDIR/files"
	run man -w statehoused
	assert_output /usr/share/man/man8/statehoused.8.gz

	# An fstab line of type statehouse: mount(8) runs /sbin/mount.statehouse, the package's.
	sh_setup_dirs
	echo "$DATA $MNT statehouse defaults,nofail,noatime 0 0" >"$SH_TMP/fstab"
	run mount -T "$SH_TMP/fstab" "$MNT"
	assert_success
	pid=$(sh_daemon_pid "$MNT") || fail "no statehoused serves $MNT"
	[ "$(readlink "/proc/$pid/exe")" = /usr/sbin/statehoused ]
	mkdir -p "$MNT/default/agent-1"
	echo 42 >"$MNT/default/agent-1/k"
	run statehousectl -m "$MNT" get agent-1 k
	assert_output 42
	# The module from dist-packages, not from the tree.
	run env -u PYTHONPATH -C / "$SH_PYTHON" -c '
import sys, statehouse
print(statehouse.__file__)
sh = statehouse.Statehouse(url=sys.argv[1])
print(sh.get_state(agent_id="agent-1", key="k").value)' "$MNT"
	assert_success
	assert_line --index 0 /usr/lib/python3/dist-packages/statehouse/__init__.py
	assert_line --index 1 42
	# and the SDK's command line, python3 -m statehouse.cli
	run -0 env -u PYTHONPATH -C / "$SH_PYTHON" -m statehouse.cli --address "$MNT" health
	assert_output "ok: statehouse mount '$MNT' is healthy"
	umount "$MNT"
	sh_wait_exit "$pid"

	# Type fuse.statehouse: mount.fuse3 runs `statehouse` from its PATH, which is the
	# package's /usr/sbin/statehouse unless a meson install put one in /usr/local/sbin.
	echo "$DATA $MNT fuse.statehouse defaults,nofail 0 0" >"$SH_TMP/fstab"
	run mount -T "$SH_TMP/fstab" "$MNT"
	assert_success
	pid=$(sh_daemon_pid "$MNT") || fail "no statehoused serves $MNT"
	if [ ! -e /usr/local/sbin/statehouse ]; then
		[ "$(readlink "/proc/$pid/exe")" = /usr/sbin/statehoused ]
	fi
	run cat "$MNT/default/agent-1/k"
	assert_output 42
	umount "$MNT"
	sh_wait_exit "$pid"

	# README_REMOVE: every file of both packages goes (the byte-compiled module too).
	run env DEBIAN_FRONTEND=noninteractive apt-get remove -y statehouse python3-statehouse
	assert_success
	rm -f "$BATS_FILE_TMPDIR/installed"
	while read -r f; do
		[ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f is still there after apt remove"
	done <"$BATS_TEST_TMPDIR/files"
	[ ! -e /usr/lib/python3/dist-packages/statehouse ]
	# dpkg forgets both: no conffiles, so nothing is left for a purge either.
	for p in statehouse python3-statehouse; do
		run --separate-stderr dpkg-query -W -f='${db:Status-Status}' "$p"
		[ -z "$output" ] || [ "$output" = not-installed ] || fail "$p is $output after apt remove"
	done
}

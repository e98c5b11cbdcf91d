#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The Python module as a pip package, with the README's commands: a fresh venv, pip
# install ./python with no network (setuptools and wheel from Debian's wheel packages),
# the installed module and python -m statehouse.cli through a real mount, pip uninstall.

load helper
bats_require_minimum_version 1.5.0

# The commands README.md and python/README.md show, run as written from the top of a copy
# of the tree, with HOME in the test's scratch directory (so ~/venv is there).
README_VENV='python3 -m venv ~/venv'
README_PIP='~/venv/bin/pip install --no-index --find-links /usr/share/python-wheels ./python'
README_HEALTH='~/venv/bin/python3 -m statehouse.cli health'

# What a fresh Debian 12 needs (scripts/debian-packages lists them for CI).
WHEELS=(/usr/share/python-wheels/setuptools-*.whl /usr/share/python-wheels/wheel-*.whl)

setup_file() {
	# A copy of python/ as git sees it (tracked and untracked files, nothing ignored): pip
	# builds in the source tree and leaves build/ and *.egg-info there.
	export TOP="$BATS_FILE_TMPDIR/top" INSTALL_LOG="$BATS_FILE_TMPDIR/install.log"
	mkdir -p "$TOP"
	(cd "$REPO_ROOT" && git ls-files -z -co --exclude-standard python | rsync -a --from0 --files-from=- . "$TOP/")
}

setup() {
	load_libs
	"$SH_PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
		sh_skip "no python3-venv here (apt-get install python3-venv python3-wheel-whl)"
	local w
	for w in "${WHEELS[@]}"; do
		[ -e "$w" ] || sh_skip "no $w here (apt-get install python3-venv python3-wheel-whl)"
	done
	unshare -n true 2>/dev/null || sh_skip "unshare -n fails here (it needs root)"
	export HOME="$BATS_FILE_TMPDIR/home"
	mkdir -p "$HOME"
	SH_TMP=
}

teardown() {
	[ -n "${SH_TMP:-}" ] || return 0
	sh_default_teardown
}

readme_shows() {
	local f
	for f in README.md python/README.md; do
		sed -n 's/^    //p' "$REPO_ROOT/$f" | sed 's/[[:space:]][[:space:]]*#.*$//' |
			grep -qxF -- "$1" || fail "$f does not show the command: $1"
	done
}

# offline CMD: run the shell command CMD from the top of the copy, with no network at all
# (a network namespace of its own) and Debian's python3 first in PATH.
offline() {
	(cd "$TOP" && PATH="/usr/bin:$PATH" unshare -n bash -c "$1")
}

@test "README.md and python/README.md show the venv, pip and health commands this file runs" {
	readme_shows "$README_VENV"
	readme_shows "$README_PIP"
	readme_shows "$README_HEALTH"
}

@test "pip installs ./python into a fresh venv with no network: the module's files only, no dependencies" {
	run offline "$README_VENV && $README_PIP"
	assert_success
	assert_line --regexp '^Successfully installed statehouse-[0-9.]+$'
	V="$HOME/venv"
	version=$(cd "$REPO_ROOT/python" && "$SH_PYTHON" -c 'import statehouse; print(statehouse.__version__)')
	run -0 "$V/bin/pip" show -f statehouse
	assert_line "Version: $version"
	assert_line "Requires: "
	assert_line "License: MIT"
	# exactly python/statehouse/*.py: neither tests nor examples
	diff <(sed -n 's|^  \(statehouse/[^/]*\.py\)$|\1|p' <<<"$output" | LC_ALL=C sort) \
		<(cd "$REPO_ROOT/python" && ls statehouse/*.py | LC_ALL=C sort)
	# imported from the venv, not from a tree on the path
	site=$("$V/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	[[ "$site" == "$V/"* ]]
	run -0 env -u PYTHONPATH -C / "$V/bin/python3" -c 'import statehouse, statehouse.cli; print(statehouse.__file__)'
	assert_output "$site/statehouse/__init__.py"
}

@test "the installed module and python -m statehouse.cli work through a real mount with nothing on PYTHONPATH" {
	[ -x "$HOME/venv/bin/python3" ] || fail "the venv of the previous test is missing"
	sh_setup_dirs
	sh_mount
	echo '{"n":1}' >"$MNT/default/agent-1/k"
	# README_HEALTH finds the only mount, or $STATEHOUSE_MOUNT
	run -0 env -u PYTHONPATH STATEHOUSE_MOUNT="$MNT" bash -c "cd / && $README_HEALTH"
	assert_output "ok: statehouse mount '$MNT' is healthy"
	run -0 env -u PYTHONPATH -C / "$HOME/venv/bin/python3" -m statehouse.cli --address "$MNT" get agent-1 k --json
	assert_output "$(printf '{\n  "key": "k",\n  "version": 1,\n  "commit_ts": 1,\n  "value": {\n    "n": 1\n  }\n}')"
	run -0 env -u PYTHONPATH -C / "$HOME/venv/bin/python3" "$REPO_ROOT/python/examples/getting_started.py" "$MNT"
	assert_line --index 0 "greeting: {'message': 'Hello, Statehouse!'} version 1 exists True"
	assert_line "temp-data: None exists False"
	run -1 env -u PYTHONPATH -C / "$HOME/venv/bin/python3" -m statehouse.cli --address localhost:50051 health
	assert_output --partial "is a network address"
}

@test "plain pip install ./python is the same given pip's local wheels, and pip uninstall removes every file" {
	rm -rf "$HOME/venv2" "$TOP/python/build" "$TOP/python/statehouse.egg-info"
	run offline "python3 -m venv ~/venv2 && PIP_NO_INDEX=1 PIP_FIND_LINKS=/usr/share/python-wheels ~/venv2/bin/pip install ./python"
	assert_success
	assert_line --regexp '^Successfully installed statehouse-'
	# the build leaves what .gitignore ignores, and nothing else
	[ -d "$TOP/python/build" ] && [ -d "$TOP/python/statehouse.egg-info" ]
	run -0 git -C "$REPO_ROOT" check-ignore python/build python/statehouse.egg-info
	[ "${#lines[@]}" -eq 2 ]
	site=$("$HOME/venv2/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	run -0 "$HOME/venv2/bin/pip" uninstall -y statehouse
	[ ! -e "$site/statehouse" ]
	run -0 bash -c "ls -d '$site'/statehouse* 2>/dev/null | wc -l"
	assert_output 0
	run -1 "$HOME/venv2/bin/python3" -c 'import statehouse'
}

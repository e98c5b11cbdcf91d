#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Power cuts, not only SIGKILLs (which keep the page cache): the daemon runs with the
# power-cut recorder (test/powercut/powercut.so, LD_PRELOAD), which notes what each fsync
# made durable; after the kill test/powercut/rewind drops every write, new name, rename
# and unlink no fsync covered, and the crash harness checks every acknowledged commit.
# test/soak/power-cut runs the same for hundreds of cycles.

load helper

# The recorder of the daemon's build, or of build/ (a sanitized build made with
# -Dtests=false has none; the recorder needs no sanitizer).
RECORDER="$(dirname "$STATEHOUSED")/test/powercut/powercut.so"
[ -f "$RECORDER" ] || RECORDER="$REPO_ROOT/build/test/powercut/powercut.so"
REWIND="$REPO_ROOT/test/powercut/rewind"

setup() {
	load_libs
	sh_setup_dirs
	[ -f "$RECORDER" ] || fail "no power-cut recorder at $RECORDER (ninja -C build)"
}

teardown() {
	local rc=0
	sh_umount_below "$SH_TMP" || rc=1
	sh_check_sanitizer_dir || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# harness ARGS...: the crash harness with power cuts, in this run's mode, work dir in $SH_TMP.
harness() {
	local mode=()
	[ "${STATEHOUSE_TEST_SINGLE:-0}" = 1 ] && mode=(--daemon-arg=-s)
	"$SH_PYTHON" "$REPO_ROOT/test/crash/harness" --daemon "$STATEHOUSED" --power-cut \
		--recorder "$RECORDER" --workdir "$SH_TMP/work" "${mode[@]}" "$@" 3>&-
}

@test "the power-cut recorder keeps what fsync made durable and a cut drops the rest" {
	mkdir "$DATA"
	echo before >"$DATA/renamed-unsynced"
	echo before >"$DATA/unlinked-unsynced"
	echo before >"$DATA/rewritten-unsynced"
	LD_PRELOAD="$RECORDER" POWERCUT_DATA="$DATA" POWERCUT_SHADOW="$SH_TMP/durable" \
		"$SH_PYTHON" - "$DATA" <<'EOF'
import os, sys
d = sys.argv[1]
def put(name, data, sync):
    fd = os.open(f"{d}/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    if sync:
        os.fsync(fd)
    return fd
fd = put("synced", b"synced", True)
os.write(fd, b" and not")                      # after the fsync: dropped
os.close(fd)
os.close(put("rewritten-unsynced", b"after", False))
os.mkdir(f"{d}/sub")
os.close(put("sub/in-a-new-dir", b"x", True))
os.rename(f"{d}/renamed-unsynced", f"{d}/renamed-after")
dfd = os.open(d, os.O_RDONLY)
os.fsync(dfd)                                  # names so far are durable
os.close(dfd)
os.close(put("named-after-the-dir-sync", b"y", True))
os.unlink(f"{d}/unlinked-unsynced")
EOF
	run "$SH_PYTHON" "$REWIND" "$DATA" "$SH_TMP/durable"
	assert_success
	assert_output --partial "bytes dropped"
	run bash -c 'cd "$1" && find . -type f | LC_ALL=C sort | while read -r f; do echo "$f: $(cat "$f")"; done' _ "$DATA"
	# The new directory's entry is durable (its parent was synced) but its own entries are
	# not (it never was); the name made after the directory's sync is gone, the unlinked
	# file is back.
	assert_output - <<'EOF'
./renamed-after: before
./rewritten-unsynced: before
./synced: synced
./unlinked-unsynced: before
EOF
	[ -d "$DATA/sub" ]
	[ ! -e "$SH_TMP/durable" ]
}

@test "power cuts at random moments, mid-commit, during a snapshot and during recovery lose no acknowledged commit" {
	run harness --cycles 8 --writers 3 --seconds 0.8 --snapshot-interval 7 --recovery-kill-every 2
	echo "$output"
	assert_success
	assert_line --partial "crash harness: 8 kill cycles"
	assert_line --partial "all checks passed"
	[ "$(grep -c '^cycle [0-9]*/8: .*full check ok; power cut: ' <<<"$output")" -eq 8 ]
	# The cuts dropped something: unsynced writes or names existed at the kill.
	[[ "$output" =~ ([0-9]+)\ of\ them\ dropped\ unsynced ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
		fail "no power cut dropped anything"
	# Snapshots survive the cuts and recoveries start from them.
	[[ "$output" =~ \ ([0-9]+)\ recoveries\ started\ from\ a\ snapshot ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
		fail "no recovery started from a snapshot"
	[ "$(sh_mount_count "$SH_TMP/work/mnt")" -eq 0 ]
}

@test "the same power cuts find the commits that -o fsync=0 loses (it promises nothing against them)" {
	# A check that the cut is real: with SQLite's synchronous=NORMAL the acknowledged
	# commits since the last checkpoint were never synced, so a cut must take them.
	# No snapshots (each syncs the log first), and windows shorter than the once a
	# second the marks sync it.
	run harness --cycles 3 --writers 3 --seconds 0.8 --snapshot-interval 1000000 \
		--daemon-arg=-o --daemon-arg=fsync=0
	echo "$output"
	assert_failure
	assert_line --regexp "^crash harness: FAILED .*(acknowledged commit [0-9]+ .* is lost|transaction .* rename\(\) returned, but it is not in the log|the log ends at commit [0-9]+, but commits up to [0-9]+ were verified|the daemon exited with [0-9]+ before the mount was live)"
	sh_umount_below "$SH_TMP/work" || true
}

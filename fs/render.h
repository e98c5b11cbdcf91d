/* SPDX-License-Identifier: MIT */
/*
 * render.h - the JSON documents the mount serves, built from what txn/ offers as data:
 * a transaction's .status and .commit, a key's .history index.jsonl and the .events
 * streams (fs layer; no FUSE here, so it is unit-tested without a mount).
 *
 * Names are bytes: wherever a namespace, agent, key or transaction name goes into a
 * document, one that is not UTF-8 goes in as "<field>_base64" (ns_base64, agent_base64,
 * key_base64, txn_base64) instead of "<field>", its bytes in padded base64.
 */
#ifndef STATEHOUSE_RENDER_H
#define STATEHOUSE_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "grow.h"
#include "txn.h"

/*
 * {"state","txn","ops","begin_ts","expires_in_ms","timeout_ms","isolation","commit_ts",
 * "error","message","key","conflict"} (fields that do not apply are left out), one line,
 * newline-terminated, malloc'ed; NULL on out of memory.  An open transaction past its
 * deadline reads "expired" before the reaper has run.  conflict ("write", "read" or
 * "precondition") says which check of an ESTALE commit failed at key.
 */
char *render_status_json(struct txn_engine *eng, struct txn *tx);
/* {"commit_ts","txn","ops","time"}, one line as above; NULL unless tx committed (or on
 * out of memory). */
char *render_commit_json(struct txn *tx);

/*
 * Append one JSON line per committed transaction with from_ts <= commit_ts <= to_ts:
 * {"commit_ts","txn","time","note","ops":[{"ns","agent","key","op","version","value"}]};
 * a change of owner or mode is {"ns","agent","op":"attr","value":{"uid","gid","mode"}}
 * (no agent for a namespace, value null when cleared), of a key's mode
 * {"ns","agent","key","op":"attr","value":{"mode"}}.
 * A value (and the note) is embedded as JSON when the bytes are valid JSON, as a JSON
 * string when they are other UTF-8 text, else as "value_base64" ("note_base64"); deletes
 * carry no value; an empty note is omitted.  With filter "ns/agent" only transactions
 * that touched that agent, with only its ops; "ns/agent/prefix" keeps only the ops at or
 * below the prefix (txn_events()).  Lines are whole: on an error out is as it
 * was; *last_ts gets the last commit_ts rendered (unchanged when none).  Errors are
 * txn_events()'s and -ENOMEM.
 */
int render_events(struct txn_engine *eng, const char *filter, size_t filter_len,
		  int64_t from_ts, int64_t to_ts, struct strbuf *out, int64_t *last_ts);

/* render_events(), stopping after the first line that brings out to max_bytes more than
 * it held (a page of a stream): *full then tells that commits up to to_ts may be left,
 * after *last_ts; otherwise every commit up to to_ts was rendered. */
/* Which ops a reader is shown (NULL: all): an event none of whose ops is shown is left
 * out whole. */
struct render_filter {
	bool (*visible)(void *arg, const struct txn_op *op, int64_t commit_ts);
	void *arg;
};
int render_events_page(struct txn_engine *eng, const char *filter, size_t filter_len,
		       int64_t from_ts, int64_t to_ts, size_t max_bytes,
		       const struct render_filter *rf, struct strbuf *out, int64_t *last_ts,
		       bool *full);

/* index.jsonl of a key: one line {"version","commit_ts","txn","time","op","size"} per
 * version, oldest first, in a new blob *out (blob_unref()); -ENOENT if the key never
 * existed. */
int render_history_index(struct txn_engine *eng, const char *path, size_t len,
			 struct blob **out);

#endif

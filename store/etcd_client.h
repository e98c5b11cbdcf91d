/* SPDX-License-Identifier: MIT */
/*
 * etcd_client.h - a client of etcd's v3 API through its JSON gateway over HTTP(S), with
 * libcurl and jansson (store layer; only the etcd backend uses it): range, transaction,
 * put, status, and a watch stream on a thread of its own.
 *
 * Keys and values are bytes (base64 on the wire; common/base64.h).  Endpoints are tried
 * in turn: a request that cannot reach one goes to the next, and the client remembers
 * the one that answered.  A member that refuses a request for want of a leader (so
 * without applying it) passes it to the next one too; -ECANCELED comes when every one
 * refused.  Every request asks etcd to answer only while it has a leader (but status),
 * so a member cut off in a minority refuses at once instead of holding a change until
 * its own timeout.  Every call is synchronous, bounded by the configured timeout (all
 * its attempts together), and may be made from any thread (each call takes a connection
 * of its own from a small pool, so calls of different threads do not wait for each
 * other).  A change is never sent twice.
 *
 * Errors tell a caller whether a request that changes something may have been applied:
 *   -ENOTCONN    no endpoint could be reached: nothing was sent, nothing applied
 *   -ECANCELED   etcd answered that it did not apply the request (no leader, not
 *                enough started members, too many requests, ...): nothing applied;
 *                the log line quotes etcd's message
 *   -ETIMEDOUT   the request was sent and no answer came in time, or etcd answered
 *                that its own proposal timed out: in doubt, it may have been applied
 *   -E2BIG       etcd refused the request as too large (--max-request-bytes) or as
 *                holding too many operations (--max-txn-ops): nothing applied
 *   -EACCES      authentication failed or the user may not do this
 *   -EIO         any other answer (malformed, an unexpected status): logged
 *   -ENOMEM
 */
#ifndef STATEHOUSE_ETCD_CLIENT_H
#define STATEHOUSE_ETCD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct etcd_client;

struct etcd_config {
	/* "host:port" each; http, or https when cacert is set.  At least one. */
	const char *const *endpoints;
	size_t n_endpoints;
	/* TLS (all NULL: plain http): the CA that signed the servers' certificates, and
	 * this client's certificate and key (both or neither). */
	const char *cacert, *cert, *key;
	/* etcd's authentication (both NULL: none): the client takes a token with
	 * /v3/auth/authenticate and takes a new one when etcd says it expired. */
	const char *user, *password;
	long timeout_ms; /* of every request but the watch stream; 0: 5000 */
};

/* Copies what it needs of cfg; makes no request.  -EINVAL (bad endpoint, no endpoint,
 * cert without key, user without password), -ENOMEM.  A user is kept even when etcd has
 * authentication off: requests then go without a token until etcd asks for one. */
int etcd_open(const struct etcd_config *cfg, struct etcd_client **out);
/* After every watch of c is stopped (a running one is a BUG); NULL is a no-op. */
void etcd_close(struct etcd_client *c);

/* One key-value of an answer (key and value malloc'ed, NUL-terminated beyond their
 * lengths). */
struct etcd_kv {
	char *key;
	size_t key_len;
	char *value;
	size_t value_len;
	int64_t create_revision, mod_revision, version;
};

struct etcd_range_result {
	int64_t revision; /* of the store when etcd answered (the header's) */
	struct etcd_kv *kvs;
	size_t n;
	bool more;        /* more keys were in the range than limit let through */
};
void etcd_range_free(struct etcd_range_result *r);

/*
 * Keys in [key, end) (end NULL: the one key key), in key order, at most limit of them
 * (0: all), linearizable.  out is filled on success and must be freed with
 * etcd_range_free().
 */
int etcd_range(struct etcd_client *c, const void *key, size_t key_len, const void *end,
	       size_t end_len, int64_t limit, struct etcd_range_result *out);

/* A put outside a transaction. */
int etcd_put(struct etcd_client *c, const void *key, size_t key_len, const void *value,
	     size_t value_len);

/* ---- transactions ----------------------------------------------------------------- */

enum etcd_cmp_target {
	ETCD_CMP_VALUE,    /* the key's value equals value/value_len */
	ETCD_CMP_MOD,      /* the key's mod_revision equals num */
	ETCD_CMP_VERSION,  /* the key's version equals num (0: the key does not exist) */
	ETCD_CMP_CREATE,   /* the key's create_revision equals num */
};

/* One comparison (always "equal"). */
struct etcd_compare {
	const void *key;
	size_t key_len;
	enum etcd_cmp_target target;
	int64_t num;
	const void *value;
	size_t value_len;
};

enum etcd_op_kind { ETCD_OP_PUT, ETCD_OP_RANGE };

/* One operation of a branch: a put of value at key, or a range [key, end) with limit
 * (as etcd_range()). */
struct etcd_op {
	enum etcd_op_kind kind;
	const void *key;
	size_t key_len;
	const void *value; /* put */
	size_t value_len;
	const void *end;   /* range: NULL for the one key */
	size_t end_len;
	int64_t limit;
};

struct etcd_txn_result {
	bool succeeded;                   /* every comparison held: the success branch ran */
	int64_t revision;                 /* the header's */
	struct etcd_range_result *ranges; /* one per range op of the branch that ran, in order */
	size_t n_ranges;
};
void etcd_txn_free(struct etcd_txn_result *r);

/* If every comparison holds, the success operations, else the failure ones, atomically. */
int etcd_txn(struct etcd_client *c, const struct etcd_compare *cmp, size_t n_cmp,
	     const struct etcd_op *success, size_t n_success, const struct etcd_op *failure,
	     size_t n_failure, struct etcd_txn_result *out);

/* ---- the cluster ------------------------------------------------------------------ */

struct etcd_status {
	char version[32];     /* the answering member's etcd version */
	uint64_t member_id;
	uint64_t leader;      /* 0: it knows no leader */
	int64_t raft_index, raft_term;
	int64_t db_size;
	char endpoint[128];   /* the endpoint that answered */
};
/* /v3/maintenance/status of the first endpoint that answers, with a leader or not. */
int etcd_status(struct etcd_client *c, struct etcd_status *out);

/* ---- watch ------------------------------------------------------------------------ */

struct etcd_watch;

/*
 * What a watch reports, on its own thread: kvs of the puts in [key, end) at revision
 * (the events of one etcd revision come in one call, in order; deletes are not
 * reported; kvs and their bytes are the watch's, valid during the call), or, with
 * n == 0 and revision 0, that the stream is (again) established (up) or broken (!up:
 * the client reconnects by itself, from the revision after the last one it reported,
 * with backoff from 50 ms to 1 s, trying the endpoints in turn).  Ups and downs
 * alternate, starting with up; puts come only while up.  The callback must not call
 * etcd_watch_stop().
 *
 * A stream breaks when its member closes it, says an error, or goes silent: after a
 * second without a byte the watch asks the member for its status on a second
 * connection, and no answer within the timeout breaks the stream.  If etcd compacted
 * the revision the watch must resume from, it resumes from the oldest one kept and logs
 * the revisions lost to it (the stream reports down, then up); a caller whose keys are
 * never overwritten reads what it missed with a range.
 */
typedef void (*etcd_watch_fn)(void *arg, bool up, int64_t revision, const struct etcd_kv *kvs,
			      size_t n);

/*
 * Start watching [key, end) (end NULL: the one key) from start_revision (0: from now),
 * asking etcd to answer only while it has a leader (so a member cut off in a minority
 * breaks the stream instead of going silent: etcd 3.4 ends it with "no leader" after
 * about three election timeouts, 4 s with its defaults).  Returns at once, before the
 * stream is up.  -ENOMEM, or the error of the thread.
 */
int etcd_watch_start(struct etcd_client *c, const void *key, size_t key_len, const void *end,
		     size_t end_len, int64_t start_revision, etcd_watch_fn fn, void *arg,
		     struct etcd_watch **out);
/* Stop the stream and join its thread; NULL is a no-op. */
void etcd_watch_stop(struct etcd_watch *w);

/* libcurl's version string (static storage). */
const char *etcd_client_lib_version(void);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * etcd_i.h - what the files of the etcd backend share (store layer): the handle, the
 * parsed URI and options, and the functions etcd.c and etcd_log.c offer each other.
 */
#ifndef STATEHOUSE_ETCD_I_H
#define STATEHOUSE_ETCD_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "etcd_client.h"
#include "etcd_record.h"
#include "store_i.h"

#define ETCD_VOLUME_MAX 64
#define ETCD_UUID_LEN 36
#define ETCD_COMMIT_TIMEOUT_MS 15000
#define ETCD_REQUEST_TIMEOUT_MS 3000
/* etcd's defaults (--max-txn-ops 128, --max-request-bytes 1.5 MiB): a batch is cut
 * below them (one op is the head), with room for the request's own fields. */
#define ETCD_MAX_TXN_OPS 128
#define ETCD_MAX_REQUEST_BYTES (1536 * 1024 - 16 * 1024)

/* The URI's location and the options (store_options.params), parsed. */
struct etcd_params {
	char volume[ETCD_VOLUME_MAX + 1];
	char **endpoints;
	size_t n_endpoints;
	char *cacert, *cert, *key, *user, *password;
	long commit_timeout_ms;
};
int etcd_params_parse(const char *location, const char *params, struct etcd_params *p);
void etcd_params_free(struct etcd_params *p);
int etcd_connect(const struct etcd_params *p, struct etcd_client **out);

struct etcd_store {
	struct store base;
	struct store *local;       /* the replica (the SQLite backend) */
	struct etcd_client *c;
	char volume[ETCD_VOLUME_MAX + 1];
	char uuid[ETCD_UUID_LEN + 1];
	char prefix[ETCD_VOLUME_MAX + 16];
	char key_meta[ETCD_VOLUME_MAX + 32], key_head[ETCD_VOLUME_MAX + 32];
	char key_e_end[ETCD_VOLUME_MAX + 32];
	long commit_timeout_ms;
	size_t max_request;        /* a batch is cut below it: etcd's limit, probed at open */
	uint64_t mount_id;         /* random, per open: the first half of batch ids */
	uint64_t batch_seq;        /* the second half (appending thread) */
	uint64_t instance;         /* the applied-request records' instance of this mount */
	/* The appending thread's: the newest commit known in etcd (ours, or pulled), and
	 * the replica's newest (behind it only after a replica write failed). */
	_Atomic int64_t committed_head;
	_Atomic int64_t local_head;
	_Atomic int64_t remote_head; /* the newest head seen (the watch, any answer) */
	struct etcd_watch *watch;
	store_wake_fn wake;
	void *wake_arg;
	/* Protects what .status shows. */
	pthread_mutex_t lock;
	bool reachable, watch_up, in_doubt;
	char endpoint[128];
	char health[128];
	_Atomic uint64_t behind, pulled;
	atomic_bool stale; /* store_stale(): !reachable, or the watch down */
};

int etcd_key_event(const struct etcd_store *e, int64_t ts, char *buf, size_t cap);
int etcd_parse_head(const char *v, size_t len, int64_t *out);
void etcd_store_free(struct etcd_store *e);

/* etcd_log.c */
int etcd_read_head(struct etcd_store *e, _Atomic int64_t *out);
/* The value of e/<ts> in *val (malloc'ed): 0, -ENOENT, or the client's error. */
int etcd_get_event(struct etcd_store *e, int64_t ts, void **val, size_t *len);
/* Copy every commit after the replica's head from etcd into the replica; fn (if any)
 * gets those after deliver_after, in order. */
int etcd_catch_up(struct etcd_store *e, int64_t deliver_after, store_event_fn fn, void *arg);
int etcd_append(struct store *st, const struct store_event *events, size_t n);
int etcd_check(struct store *st, int64_t *head_ts);
void etcd_set_wake(struct store *st, store_wake_fn fn, void *arg);
int etcd_pull(struct store *st, int64_t head_ts, store_event_fn fn, void *arg);
void etcd_shared_state(struct store *st, struct store_shared *out);
bool etcd_stale(struct store *st);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * etcd_record.h - one commit as the etcd backend keeps it in etcd (store layer): the
 * value of the key e/<commit_ts>, a compact binary record sealed with a CRC-32.
 *
 * Layout (integers little-endian):
 *   "SHE1"  u64 commit_ts  i64 time_ns  u64 req.instance  u64 req.unique
 *   u8[16] batch id  u32 len + txn name  u32 len + note  u32 n_ops
 *   per op: u8 kind  i64 version  u32 len + path  u32 len + value
 *   u32 CRC-32 of everything before it
 * Binary, not JSON: etcd's JSON gateway already carries the value as base64, and a
 * value of max_value_bytes must fit etcd's request limit once, not inflated twice.
 */
#ifndef STATEHOUSE_ETCD_RECORD_H
#define STATEHOUSE_ETCD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define ETCD_BATCH_ID_LEN 16

/* The encoding of ev with the batch id, malloc'ed in *out (*out_len bytes).  -ENOMEM. */
int etcd_record_encode(const struct store_event *ev, const uint8_t batch[ETCD_BATCH_ID_LEN],
		       void **out, size_t *out_len);
/* The bytes it would take (to cut batches at etcd's request limit). */
size_t etcd_record_size(const struct store_event *ev);

/* A decoded record: ev and its ops point into the record's bytes (and ops), which must
 * outlive it; etcd_record_release() frees what decode allocated. */
struct etcd_record {
	struct store_event ev;
	struct store_op *ops;
	uint8_t batch[ETCD_BATCH_ID_LEN];
	char *txn; /* NUL-terminated copy of the name */
};
/* 0, or -EIO (not a record: bad magic, short, a length past the end, bad CRC, an
 * unknown op kind), -ENOMEM. */
int etcd_record_decode(const void *data, size_t len, struct etcd_record *out);
void etcd_record_release(struct etcd_record *r);

#endif

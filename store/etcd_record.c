/* SPDX-License-Identifier: MIT */
/*
 * etcd_record.c - the binary record of one commit in etcd (store layer): encode,
 * decode and the size, as etcd_record.h lays it out.
 */
#include "etcd_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAGIC "SHE1"

static size_t op_size(const struct store_op *op)
{
	return 1 + 8 + 4 + op->path_len + 4 + (op->kind == STORE_PUT || op->kind == STORE_ATTR
						   ? op->value_len : 0);
}

size_t etcd_record_size(const struct store_event *ev)
{
	size_t n = 4 + 8 * 4 + ETCD_BATCH_ID_LEN + 4 + (ev->txn ? strlen(ev->txn) : 0) + 4 +
		   ev->note_len + 4 + 4;

	for (size_t i = 0; i < ev->n_ops; i++)
		n += op_size(&ev->ops[i]);
	return n;
}

static unsigned char *put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*p++ = (unsigned char)(v >> (8 * i));
	return p;
}

static unsigned char *put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*p++ = (unsigned char)(v >> (8 * i));
	return p;
}

static unsigned char *put_bytes(unsigned char *p, const void *b, size_t n)
{
	p = put_u32(p, (uint32_t)n);
	if (n)
		memcpy(p, b, n);
	return p + n;
}

int etcd_record_encode(const struct store_event *ev, const uint8_t batch[ETCD_BATCH_ID_LEN],
		       void **out, size_t *out_len)
{
	size_t len = etcd_record_size(ev);
	unsigned char *buf = malloc(len), *p = buf;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	memcpy(p, MAGIC, 4);
	p += 4;
	p = put_u64(p, (uint64_t)ev->commit_ts);
	p = put_u64(p, (uint64_t)ev->time_ns);
	p = put_u64(p, ev->req.instance);
	p = put_u64(p, ev->req.unique);
	memcpy(p, batch, ETCD_BATCH_ID_LEN);
	p += ETCD_BATCH_ID_LEN;
	p = put_bytes(p, ev->txn, ev->txn ? strlen(ev->txn) : 0);
	p = put_bytes(p, ev->note, ev->note_len);
	p = put_u32(p, (uint32_t)ev->n_ops);
	for (size_t i = 0; i < ev->n_ops; i++) {
		const struct store_op *op = &ev->ops[i];
		bool with_value = op->kind == STORE_PUT || op->kind == STORE_ATTR;

		*p++ = (unsigned char)op->kind;
		p = put_u64(p, (uint64_t)op->version);
		p = put_bytes(p, op->path, op->path_len);
		p = put_bytes(p, with_value ? op->value : NULL, with_value ? op->value_len : 0);
	}
	p = put_u32(p, (uint32_t)crc32(0, buf, (uInt)(p - buf)));
	*out = buf;
	*out_len = len;
	return 0;
}

/* A reader over the record's bytes; any read past the end sets bad. */
struct rd {
	const unsigned char *p, *end;
	bool bad;
};

static uint64_t get_u64(struct rd *r)
{
	uint64_t v = 0;

	if (r->end - r->p < 8) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += 8;
	return v;
}

static uint32_t get_u32(struct rd *r)
{
	uint32_t v = 0;

	if (r->end - r->p < 4) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)r->p[i] << (8 * i);
	r->p += 4;
	return v;
}

static const void *get_bytes(struct rd *r, size_t *len)
{
	uint32_t n = get_u32(r);
	const void *b = r->p;

	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		*len = 0;
		return NULL;
	}
	r->p += n;
	*len = n;
	return b;
}

int etcd_record_decode(const void *data, size_t len, struct etcd_record *out)
{
	const unsigned char *b = data;
	struct rd r = { b + 4, b + len, false };
	const void *txn;
	size_t txn_len;
	uint32_t n_ops;

	memset(out, 0, sizeof(*out));
	if (len < 8 || memcmp(b, MAGIC, 4))
		return -EIO;
	{
		struct rd c = { b + len - 4, b + len, false };

		if (get_u32(&c) != (uint32_t)crc32(0, b, (uInt)(len - 4)))
			return -EIO;
	}
	r.end = b + len - 4;
	out->ev.commit_ts = (int64_t)get_u64(&r);
	out->ev.time_ns = (int64_t)get_u64(&r);
	out->ev.req.instance = get_u64(&r);
	out->ev.req.unique = get_u64(&r);
	if (r.end - r.p < ETCD_BATCH_ID_LEN)
		return -EIO;
	memcpy(out->batch, r.p, ETCD_BATCH_ID_LEN);
	r.p += ETCD_BATCH_ID_LEN;
	txn = get_bytes(&r, &txn_len);
	out->ev.note = get_bytes(&r, &out->ev.note_len);
	n_ops = get_u32(&r);
	/* Each op takes at least 17 bytes: a count beyond that is no record. */
	if (r.bad || n_ops > (size_t)(r.end - r.p) / 17 + 1)
		return -EIO;
	out->txn = strndup(txn ? txn : "", txn_len);
	out->ops = calloc(n_ops ? n_ops : 1, sizeof(*out->ops));
	if (!out->txn || !out->ops) {
		etcd_record_release(out);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n_ops && !r.bad; i++) {
		struct store_op *op = &out->ops[i];

		if (r.p >= r.end) {
			r.bad = true;
			break;
		}
		op->kind = (enum store_op_kind)*r.p++;
		op->version = (int64_t)get_u64(&r);
		op->path = get_bytes(&r, &op->path_len);
		op->value = get_bytes(&r, &op->value_len);
		if (op->kind < STORE_PUT || op->kind > STORE_RMDIR || !op->path_len)
			r.bad = true;
	}
	if (r.bad || r.p != r.end) {
		etcd_record_release(out);
		return -EIO;
	}
	out->ev.txn = out->txn;
	out->ev.ops = out->ops;
	out->ev.n_ops = n_ops;
	return 0;
}

void etcd_record_release(struct etcd_record *r)
{
	free(r->ops);
	free(r->txn);
	memset(r, 0, sizeof(*r));
}

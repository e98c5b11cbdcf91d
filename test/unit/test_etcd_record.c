/* SPDX-License-Identifier: MIT */
/*
 * test_etcd_record.c - cmocka unit tests of store/etcd_record.c: a commit encoded for
 * etcd decodes to the same event, byte for byte, and anything else is refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "etcd_record.h"

static const uint8_t batch[ETCD_BATCH_ID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8,
						  9, 10, 11, 12, 13, 14, 15, 16 };

/* An event with every kind of operation, bytes that are not text, and a note. */
static void sample(struct store_event *ev, struct store_op ops[5])
{
	static const char bin[] = { 'a', 0, (char)0xff, '\n' };

	ops[0] = (struct store_op){ "ns/ag/k", 7, STORE_PUT, 3, bin, sizeof(bin) };
	ops[1] = (struct store_op){ "ns/ag/gone", 10, STORE_DELETE, 2, NULL, 0 };
	ops[2] = (struct store_op){ "ns/ag", 5, STORE_ATTR, 0, "{\"mode\":\"0700\"}", 15 };
	ops[3] = (struct store_op){ "ns/ag/d", 7, STORE_MKDIR, 0, NULL, 0 };
	ops[4] = (struct store_op){ "ns/ag/e", 7, STORE_RMDIR, 0, NULL, 0 };
	*ev = (struct store_event){ .commit_ts = 42, .time_ns = 1700000000123456789LL,
				    .txn = "tx-1", .note = "why", .note_len = 3, .ops = ops,
				    .n_ops = 5, .req = { 77, 88 } };
}

static void round_trip_keeps_every_field(void **state)
{
	struct store_op ops[5];
	struct store_event ev;
	struct etcd_record r;
	void *buf;
	size_t len;

	(void)state;
	sample(&ev, ops);
	assert_errno(etcd_record_encode(&ev, batch, &buf, &len), 0);
	assert_int_equal(len, etcd_record_size(&ev));
	assert_errno(etcd_record_decode(buf, len, &r), 0);
	assert_int_equal(r.ev.commit_ts, 42);
	assert_int_equal(r.ev.time_ns, 1700000000123456789LL);
	assert_string_equal(r.ev.txn, "tx-1");
	assert_int_equal(r.ev.note_len, 3);
	assert_memory_equal(r.ev.note, "why", 3);
	assert_int_equal(r.ev.req.instance, 77);
	assert_int_equal(r.ev.req.unique, 88);
	assert_memory_equal(r.batch, batch, sizeof(batch));
	assert_int_equal(r.ev.n_ops, 5);
	for (size_t i = 0; i < 5; i++) {
		const struct store_op *a = &ops[i], *b = &r.ev.ops[i];

		assert_int_equal(b->kind, a->kind);
		assert_int_equal(b->version, a->version);
		assert_int_equal(b->path_len, a->path_len);
		assert_memory_equal(b->path, a->path, a->path_len);
		if (a->kind == STORE_PUT || a->kind == STORE_ATTR) {
			assert_int_equal(b->value_len, a->value_len);
			assert_memory_equal(b->value, a->value, a->value_len);
		} else {
			assert_int_equal(b->value_len, 0);
		}
	}
	etcd_record_release(&r);
	free(buf);
}

static void empty_event_round_trips(void **state)
{
	struct store_event ev = { .commit_ts = 1, .time_ns = 5 };
	struct etcd_record r;
	void *buf;
	size_t len;

	(void)state;
	assert_errno(etcd_record_encode(&ev, batch, &buf, &len), 0);
	assert_errno(etcd_record_decode(buf, len, &r), 0);
	assert_int_equal(r.ev.n_ops, 0);
	assert_string_equal(r.ev.txn, "");
	assert_int_equal(r.ev.note_len, 0);
	etcd_record_release(&r);
	free(buf);
}

/* Every single flipped byte, and every cut, is refused with EIO, never crashes. */
static void damage_is_refused(void **state)
{
	struct store_op ops[5];
	struct store_event ev;
	struct etcd_record r;
	unsigned char *buf;
	size_t len;

	(void)state;
	sample(&ev, ops);
	assert_errno(etcd_record_encode(&ev, batch, (void **)&buf, &len), 0);
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x5a;
		assert_errno(etcd_record_decode(buf, len, &r), -EIO);
		buf[i] ^= 0x5a;
	}
	for (size_t cut = 0; cut < len; cut++)
		assert_errno(etcd_record_decode(buf, cut, &r), -EIO);
	assert_errno(etcd_record_decode("SHE1", 4, &r), -EIO);
	assert_errno(etcd_record_decode("not a record at all", 19, &r), -EIO);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_keeps_every_field),
		cmocka_unit_test(empty_event_round_trips),
		cmocka_unit_test(damage_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

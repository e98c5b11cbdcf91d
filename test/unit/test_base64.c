/* SPDX-License-Identifier: MIT */
/*
 * test_base64.c - cmocka unit tests of common/base64.c: what the daemon encodes (values
 * and names that are not UTF-8) statehousectl decodes back to the same bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "base64.h"

static void decode_ok(const char *s, const void *bytes, size_t n)
{
	unsigned char *out = (unsigned char *)"x";
	size_t len = 99;

	assert_errno(base64_decode(s, strlen(s), &out, &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(out, bytes, n);
	assert_int_equal(out[n], '\0');
	free(out);
}

static void decode_bad(const char *s)
{
	unsigned char *out = (unsigned char *)"x";
	size_t len = 99;

	assert_errno(base64_decode(s, strlen(s), &out, &len), -EINVAL);
	assert_null(out);
	assert_int_equal(len, 0);
}

static void every_length_and_byte_round_trips(void **state)
{
	unsigned char bytes[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= sizeof(bytes); n++) {
		char *s = base64_encode(bytes, n);

		assert_non_null(s);
		decode_ok(s, bytes, n);
		free(s);
	}
	/* RFC 4648's own vectors. */
	decode_ok("", "", 0);
	decode_ok("Zg==", "f", 1);
	decode_ok("Zm8=", "fo", 2);
	decode_ok("Zm9vYmFy", "foobar", 6);
	decode_ok("/w==", "\xff", 1);
}

static void what_is_not_padded_base64_is_refused(void **state)
{
	(void)state;
	decode_bad("Zg");       /* no padding */
	decode_bad("Zg=");      /* not a multiple of 4 */
	decode_bad("Z===");     /* three pads */
	decode_bad("Zg==Zg=="); /* padding before the end */
	decode_bad("Zm=v");     /* a pad inside */
	decode_bad("Zm9v\n");   /* a newline */
	decode_bad("Zm-v");     /* the URL alphabet */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_length_and_byte_round_trips),
		cmocka_unit_test(what_is_not_padded_base64_is_refused),
	};

	return cmocka_run_group_tests_name("base64", tests, NULL, NULL);
}

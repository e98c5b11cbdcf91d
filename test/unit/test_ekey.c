/* SPDX-License-Identifier: MIT */
/*
 * test_ekey.c - cmocka unit tests of the names .history gives keys (fs/ekey.c, fs layer,
 * no mount): the encoding, its one spelling, and the segments of a name too long for
 * one path component.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "ekey.h"

/* The segment path of key, as ekey_segments gives it (a static buffer). */
static const char *segments_of(const char *key)
{
	static char out[4096];
	size_t elen, plen = 0;
	char *e = ekey_encode(key, strlen(key), &elen);
	char *p = e ? ekey_segments(e, elen, &plen) : NULL;

	assert_non_null(p);
	assert_int_equal(strlen(p), plen);
	assert_true(plen < sizeof(out));
	memcpy(out, p, plen + 1);
	free(p);
	free(e);
	return out;
}

static char *repeat(const char *s, int n)
{
	size_t l = strlen(s);
	char *out = malloc(l * (size_t)n + 1);

	assert_non_null(out);
	for (int i = 0; i < n; i++)
		memcpy(out + l * (size_t)i, s, l);
	out[l * (size_t)n] = '\0';
	return out;
}

static void the_encoding_has_one_spelling_and_decodes_back(void **state)
{
	char out[64];
	size_t elen, len;
	char *e = ekey_encode("a/50%/b", 7, &elen);

	(void)state;
	assert_string_equal(e, "a%2F50%25%2Fb");
	assert_int_equal(elen, 13);
	assert_errno(ekey_decode(e, elen, out, &len), 0);
	assert_int_equal(len, 7);
	assert_string_equal(out, "a/50%/b");
	free(e);
	for (const char *bad = "%2f\0%\0%2\0%41\0x%+\0%%\0"; *bad; bad += strlen(bad) + 1)
		assert_errno(ekey_decode(bad, strlen(bad), out, &len), -EINVAL);
}

static void a_name_that_fits_one_component_is_its_own_only_segment(void **state)
{
	char *k = repeat("k", 255);

	(void)state;
	assert_string_equal(segments_of("plain"), "plain");
	assert_string_equal(segments_of(k), k);
	assert_int_equal(ekey_segment(k, 255), 255);
	free(k);
}

static void a_long_name_is_cut_every_253_bytes_outside_escapes(void **state)
{
	char *k = repeat("k", 256), *want;

	(void)state;
	/* 256 bytes: 253, then 3. */
	assert_int_equal(asprintf(&want, "%.253s/kkk", k), 257);
	assert_string_equal(segments_of(k), want);
	free(want);
	free(k);
	/* An escape across byte 253 goes whole to the next segment: "%2F" at 251..253 cuts
	 * at 251, at 252..254 cuts at 252. */
	for (int at = 251; at <= 252; at++) {
		char key[300];
		size_t elen;
		char *e;

		memset(key, 'k', sizeof(key));
		key[at] = '/';
		key[299] = '\0';
		e = ekey_encode(key, 299, &elen);
		assert_int_equal(ekey_segment(e, elen), (size_t)at);
		free(e);
	}
}

static void a_cut_never_splits_a_utf8_character(void **state)
{
	/* "é" is two bytes: 250 'k', then é at 250..251, é at 252..253: the cut at 253
	 * would split the second one, so it comes back to 252. */
	char *k = repeat("k", 250), *key;
	size_t elen;
	char *e;

	(void)state;
	assert_int_equal(asprintf(&key, "%s\xc3\xa9\xc3\xa9%s", k, "tail"), 258);
	e = ekey_encode(key, strlen(key), &elen);
	assert_int_equal(ekey_segment(e, elen), 252);
	free(e);
	free(key);
	/* Bytes that are no text: given up after 3 steps back. */
	{
		char raw[300];

		memset(raw, '\x80', sizeof(raw));
		raw[299] = '\0';
		e = ekey_encode(raw, 299, &elen);
		assert_int_equal(ekey_segment(e, elen), 250);
		free(e);
	}
	free(k);
}

static void the_segments_of_a_1024_byte_key_join_back_to_its_encoded_name(void **state)
{
	char *a = repeat("a", 200), *p = repeat("%", 100), *x = repeat("x", 240), *key;
	const char *segs;
	size_t n = 0, elen;
	char *e;

	(void)state;
	assert_int_equal(asprintf(&key, "%s/%s/%s/%s/%s", a, p, x, x, x), 1024);
	e = ekey_encode(key, strlen(key), &elen);
	assert_int_equal(elen, 1232);
	segs = segments_of(key);
	/* every segment fits a component with its mark, and together they are e */
	for (const char *s = segs, *sl; *s; s = sl ? sl + 1 : s + strlen(s)) {
		size_t l;

		sl = strchr(s, '/');
		l = sl ? (size_t)(sl - s) : strlen(s);
		assert_true(sl ? l <= EKEY_SEG_MAX : l <= EKEY_NAME_MAX);
		assert_memory_equal(s, e + n, l);
		n += l;
	}
	assert_int_equal(n, elen);
	free(e);
	free(key);
	free(a);
	free(p);
	free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_encoding_has_one_spelling_and_decodes_back),
		cmocka_unit_test(a_name_that_fits_one_component_is_its_own_only_segment),
		cmocka_unit_test(a_long_name_is_cut_every_253_bytes_outside_escapes),
		cmocka_unit_test(a_cut_never_splits_a_utf8_character),
		cmocka_unit_test(the_segments_of_a_1024_byte_key_join_back_to_its_encoded_name),
	};

	return cmocka_run_group_tests_name("ekey", tests, NULL, NULL);
}

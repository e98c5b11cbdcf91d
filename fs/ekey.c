/* SPDX-License-Identifier: MIT */
/*
 * ekey.c - the encoded names of keys below .history, and their segments when one is
 * longer than a path component (fs layer, FUSE-free; ekey.h has the rule).
 */
#include "ekey.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

char *ekey_encode(const char *key, size_t len, size_t *elen)
{
	char *out = malloc(len * 3 + 1), *w = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (key[i] == '%' || key[i] == '/') {
			*w++ = '%';
			*w++ = '2';
			*w++ = key[i] == '%' ? '5' : 'F';
		} else {
			*w++ = key[i];
		}
	}
	*w = '\0';
	*elen = (size_t)(w - out);
	return out;
}

int ekey_decode(const char *e, size_t elen, char *out, size_t *len)
{
	size_t n = 0;

	for (size_t i = 0; i < elen; i++) {
		if (e[i] != '%') {
			out[n++] = e[i];
			continue;
		}
		if (i + 2 < elen && e[i + 1] == '2' && e[i + 2] == '5')
			out[n++] = '%';
		else if (i + 2 < elen && e[i + 1] == '2' && e[i + 2] == 'F') /* not %2f */
			out[n++] = '/';
		else
			return -EINVAL;
		i += 2;
	}
	out[n] = '\0';
	*len = n;
	return 0;
}

static bool utf8_continuation(char c)
{
	return ((unsigned char)c & 0xc0) == 0x80;
}

size_t ekey_segment(const char *e, size_t elen)
{
	size_t cut = EKEY_SEG_MAX;

	if (elen <= EKEY_NAME_MAX)
		return elen;
	/* Not inside a character (of a key that is UTF-8 text: for other bytes, give up
	 * after 3), then not inside an escape: e[cut] exists, elen > EKEY_SEG_MAX. */
	for (int i = 0; i < 3 && utf8_continuation(e[cut]); i++)
		cut--;
	if (e[cut - 1] == '%')
		cut -= 1;
	else if (e[cut - 2] == '%')
		cut -= 2;
	return cut;
}

char *ekey_segments(const char *e, size_t elen, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;
	size_t at = 0;
	int err = 0;

	while (!err) {
		size_t n = ekey_segment(e + at, elen - at);

		err = strbuf_add(&sb, e + at, n);
		at += n;
		if (at == elen)
			break;
		if (!err)
			err = strbuf_addch(&sb, '/');
	}
	if (err) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, len);
}

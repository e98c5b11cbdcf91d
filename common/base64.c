/* SPDX-License-Identifier: MIT */
/*
 * base64.c - RFC 4648 base64 encoding and decoding, with padding (common layer).
 */
#include "base64.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out, *w;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 2)
		return NULL;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	w = out;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*w++ = tab[(v >> 18) & 63];
		*w++ = tab[(v >> 12) & 63];
		*w++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*w++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*w = '\0';
	return out;
}

/* The 6 bits of c, or -1 when c is no base64 digit. */
static int digit(char c)
{
	const char *at = c ? strchr(tab, c) : NULL;

	return at ? (int)(at - tab) : -1;
}

int base64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
	unsigned char *buf, *w;

	*out = NULL;
	*out_len = 0;
	if (len % 4)
		return -EINVAL;
	buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	w = buf;
	for (size_t i = 0; i < len; i += 4) {
		int d[4];
		size_t pad = 0;
		uint32_t v;

		for (int j = 0; j < 4; j++) {
			d[j] = digit(s[i + j]);
			/* '=' only in the last one or two places of the last quantum */
			if (d[j] < 0 && s[i + j] == '=' && i + 4 == len && j >= 2 &&
			    (j == 3 || s[i + 3] == '=')) {
				d[j] = 0;
				pad++;
			} else if (d[j] < 0) {
				free(buf);
				return -EINVAL;
			}
		}
		v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 | (uint32_t)d[3];

		*w++ = (unsigned char)(v >> 16);
		if (pad < 2)
			*w++ = (unsigned char)(v >> 8);
		if (pad < 1)
			*w++ = (unsigned char)v;
	}
	*w = '\0';
	*out = buf;
	*out_len = (size_t)(w - buf);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * base64.c - RFC 4648 base64 encoding (common layer).
 */
#include "base64.h"

#include <stdint.h>
#include <stdlib.h>

char *base64_encode(const void *data, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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

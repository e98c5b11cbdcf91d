/* SPDX-License-Identifier: MIT */
/*
 * testutil.c - scratch directories, errno names and strict skips for the unit tests
 * (tests; no dependency on the modules under test).
 */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

char *tu_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *path = NULL;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/statehouse-unit.XXXXXX", base) < 0)
		return NULL;
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void tu_rmtree(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_errname(long long err)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {
		{ EPERM, "EPERM" },	{ ENOENT, "ENOENT" },	  { EIO, "EIO" },
		{ E2BIG, "E2BIG" },	{ ENOMEM, "ENOMEM" },	  { EACCES, "EACCES" },
		{ EBUSY, "EBUSY" },	{ EEXIST, "EEXIST" },	  { EXDEV, "EXDEV" },
		{ ENOTDIR, "ENOTDIR" }, { EISDIR, "EISDIR" },	  { EINVAL, "EINVAL" },
		{ EFBIG, "EFBIG" },	{ ENOSPC, "ENOSPC" },	  { EROFS, "EROFS" },
		{ EAGAIN, "EAGAIN" },	{ ENAMETOOLONG, "ENAMETOOLONG" },
		{ ENOTEMPTY, "ENOTEMPTY" }, { ETIMEDOUT, "ETIMEDOUT" },
		{ ESTALE, "ESTALE" },	{ ENOTSUP, "ENOTSUP" },
		{ ENOTCONN, "ENOTCONN" }, { ECANCELED, "ECANCELED" },
	};
	static char buf[32];
	long long e = err < 0 ? -err : err;

	if (err == 0)
		return "0";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (names[i].e == e)
			return names[i].name;
	}
	snprintf(buf, sizeof(buf), "%lld", err);
	return buf;
}

void tu_skip(const char *file, int line, const char *why)
{
	const char *strict = getenv("STATEHOUSE_TEST_STRICT");

	if (strict && strcmp(strict, "1") == 0) {
		print_error("strict mode: would skip: %s\n", why);
		_fail(file, line);
	}
	print_message("skipped: %s\n", why);
	_skip(file, line);
}

char *tu_run(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	char *out = NULL;
	size_t len = 0, cap = 0;
	int c, st;

	if (!p)
		return NULL;
	while ((c = fgetc(p)) != EOF) {
		if (len + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 256;
			char *n = realloc(out, ncap);

			if (!n) {
				free(out);
				pclose(p);
				return NULL;
			}
			out = n;
			cap = ncap;
		}
		out[len++] = (char)c;
	}
	st = pclose(p);
	if (!out) {
		out = malloc(1);
		if (!out)
			return NULL;
	}
	out[len] = '\0';
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return out;
}

/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - helpers shared by the cmocka unit tests of store/ and txn/ (tests).
 *
 * Scratch directories that are removed after each test, an errno assertion that prints
 * names instead of unsigned hex, and the strict-mode skip (a skip fails when
 * STATEHOUSE_TEST_STRICT=1, as in CI).
 */
#ifndef STATEHOUSE_TESTUTIL_H
#define STATEHOUSE_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

/* A new empty directory under $TMPDIR (or /tmp); free with tu_rmtree() then free(). */
char *tu_mkdtemp(void);
/* Remove path and everything below it; a missing path is fine. */
void tu_rmtree(const char *path);
/* "ENOENT" for -ENOENT (or ENOENT), "0" for 0, a number otherwise (static buffer). */
const char *tu_errname(long long err);
/* Skip the current test for a reason this machine cannot help; fail in strict mode. */
void tu_skip(const char *file, int line, const char *why);
#define skip_because(why) tu_skip(__FILE__, __LINE__, (why))

/* Run a shell command and capture its stdout (malloc'ed, NUL-terminated); NULL on
 * failure to run it.  *status gets the exit status. */
char *tu_run(const char *cmd, int *status);

/* assert_int_equal for negative errnos, with names in the message. */
#define assert_errno(actual, expected)                                                 \
	do {                                                                           \
		long long a_ = (long long)(actual), e_ = (long long)(expected);        \
		if (a_ != e_) {                                                        \
			print_error("%s is %lld (%s), expected %lld (%s)\n", #actual,  \
				    a_, tu_errname(a_), e_, tu_errname(e_));           \
			_fail(__FILE__, __LINE__);                                     \
		}                                                                      \
	} while (0)

/* assert_int_equal for signed 64-bit values, printed in decimal. */
#define assert_i64_equal(actual, expected)                                             \
	do {                                                                           \
		long long a_ = (long long)(actual), e_ = (long long)(expected);        \
		if (a_ != e_) {                                                        \
			print_error("%s is %lld, expected %lld\n", #actual, a_, e_);   \
			_fail(__FILE__, __LINE__);                                     \
		}                                                                      \
	} while (0)

#endif

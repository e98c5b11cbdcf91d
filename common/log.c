/* SPDX-License-Identifier: MIT */
/*
 * log.c - stderr/syslog sink for every layer (common layer).
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

static enum log_level threshold = LOG_LVL_INFO;
static int use_syslog;

void log_set_level(enum log_level level)
{
	threshold = level;
}

int log_parse_level(const char *name, enum log_level *out)
{
	static const char *const names[] = { "err", "warn", "info", "debug" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	use_syslog = 1;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "error: ", "warning: ", "", "debug: " };
	char buf[2048];

	if (level > threshold)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (use_syslog)
		syslog(prio[level], "%s", buf);
	else
		fprintf(stderr, "statehoused: %s%s\n", tag[level], buf);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_bug(const char *file, int line, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_err("BUG at %s:%d: %s", file, line, buf);
	fprintf(stderr, "BUG at %s:%d: %s\n", file, line, buf);
	abort();
}

/* SPDX-License-Identifier: MIT */
/*
 * log.c - stderr/syslog sink for every layer (common layer).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_level threshold = LOG_LVL_INFO;
static enum { SINK_STDERR, SINK_SYSLOG, SINK_FILE } sink;
/* The log file (or -1) and its path.  Set once before any thread starts; a reopen only
 * dup2()s a new file onto the same descriptor number, which is atomic for writers. */
static int file_fd = -1;
static char file_path[PATH_MAX];

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
	sink = SINK_SYSLOG;
}

/* Open the log file, creating it 0640 whatever the umask (the daemon's is 077, for its
 * store); an existing file keeps the mode an operator gave it.  Async-signal-safe: the
 * SIGHUP handler calls it. */
static int open_log_path(void)
{
	int fd = open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
		      0640);

	if (fd >= 0) {
		(void)fchmod(fd, 0640);
		return fd;
	}
	return open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_open_file(const char *path)
{
	size_t n = strlen(path);

	if (n >= sizeof(file_path))
		return -ENAMETOOLONG;
	if (file_fd >= 0)
		BUG("log file opened twice");
	memcpy(file_path, path, n + 1);
	file_fd = open_log_path();
	return file_fd < 0 ? -errno : 0;
}

void log_use_file(void)
{
	if (file_fd < 0)
		BUG("no log file to use");
	sink = SINK_FILE;
}

void log_reopen(void)
{
	int saved = errno, fd;

	if (file_fd < 0)
		return;
	fd = open_log_path();
	if (fd >= 0) {
		dup2(fd, file_fd);
		close(fd);
	}
	errno = saved;
}

/* One line of the log file, written at once (O_APPEND keeps lines of threads whole). */
static void file_line(const char *tag, const char *msg)
{
	char line[2200], stamp[32];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ statehoused[%ld]: %s%s\n", stamp,
		     ts.tv_nsec / 1000000, (long)getpid(), tag, msg);
	if (n >= (int)sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (n > 0 && write(file_fd, line, (size_t)n) < 0) {
		/* nowhere left to say so */
	}
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "error: ", "warning: ", "", "debug: " };
	char buf[2048];

	if (level > threshold)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (file_fd >= 0)
		file_line(tag[level], buf);
	if (sink == SINK_SYSLOG)
		syslog(prio[level], "%s", buf);
	else if (sink == SINK_STDERR)
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

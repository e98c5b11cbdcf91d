/* SPDX-License-Identifier: MIT */
/*
 * log.h - the one logging sink of statehouse (common layer, no dependencies).
 *
 * Messages go to stderr until the daemon picks its sink (syslog or a file) once the mount
 * is live.  Style (git's guidelines): lower case, no final period, the failing
 * action first, the object quoted.
 */
#ifndef STATEHOUSE_LOG_H
#define STATEHOUSE_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Set the threshold; messages above it are dropped.  Default: LOG_LVL_INFO. */
void log_set_level(enum log_level level);
/* Parse "err", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *name, enum log_level *out);
/* From now on write to syslog with this identity instead of stderr. */
void log_use_syslog(const char *ident);
/*
 * Open the log file at path (absolute; created 0640, appended to): from now on every
 * message goes there too, one line each with a UTC timestamp and the pid.  0 or -errno.
 * log_use_file() then makes it the only sink; log_reopen() opens the path again (after
 * logrotate moved the file) and is async-signal-safe, for a SIGHUP handler: the file
 * descriptor in use is replaced at once, so no message is lost or split.
 */
int log_open_file(const char *path);
void log_use_file(void);
void log_reopen(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* Programmer mistakes: abort loudly with file:line (git's BUG()). */
noreturn void log_bug(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define BUG(...) log_bug(__FILE__, __LINE__, __VA_ARGS__)

#endif

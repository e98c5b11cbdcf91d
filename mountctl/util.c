/* SPDX-License-Identifier: MIT */
/*
 * util.c - statehousectl's small helpers: messages, buffers, whole-file reads and atomic
 * writes, argument checks that mirror the daemon's limits, and the JSON shape of values
 * (mountctl/, the command-line layer).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "ctl.h"

void ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("statehousectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *ctl_strerror(int err)
{
	static char s[256];

	switch (err) {
	case ESTALE:
		snprintf(s, sizeof(s), "conflict: another transaction committed one of its keys "
				       "first (%s)", strerror(err));
		return s;
	case ETIMEDOUT:
		snprintf(s, sizeof(s), "expired: the transaction outlived its timeout (%s)",
			 strerror(err));
		return s;
	case EFBIG:
		snprintf(s, sizeof(s), "%s (the value is over the daemon's max_value_bytes)",
			 strerror(err));
		return s;
	case ENOTCONN:
		snprintf(s, sizeof(s), "%s (the daemon is gone: see statehousectl status)",
			 strerror(err));
		return s;
	case ECONNABORTED:
		snprintf(s, sizeof(s), "%s (the daemon died during the request: see statehousectl "
				       "status)", strerror(err));
		return s;
	default:
		return strerror(err);
	}
}

int ctl_exit_of(int err)
{
	return err == ENOTCONN || err == ECONNABORTED ? CTL_EXIT_MOUNT : CTL_EXIT_FAIL;
}

int ctl_fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("statehousectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", ctl_strerror(err));
	return ctl_exit_of(err);
}

const char *ctl_col(const struct ctl *c, enum ctl_color col)
{
	static const char *const esc[] = {
		[CTL_RESET] = "\033[0m", [CTL_BOLD] = "\033[1m", [CTL_DIM] = "\033[2m",
		[CTL_RED] = "\033[31m", [CTL_GREEN] = "\033[32m", [CTL_YELLOW] = "\033[33m",
		[CTL_CYAN] = "\033[36m",
	};

	return c->color ? esc[col] : "";
}

int ctl_finish_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("cannot write to standard output: %s", strerror(errno));
		return CTL_EXIT_FAIL;
	}
	return rc;
}

void ctl_echo_line(const char *line, ssize_t len)
{
	fputs(line, stdout);
	if (line[len - 1] != '\n')
		putchar('\n');
}

static bool progress_shown;

void ctl_progress(const struct ctl *c, const char *fmt, ...)
{
	static struct timespec last;
	struct timespec now;
	va_list ap;

	if (!c->progress)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* at most ten updates a second: a terminal is slower than the mount */
	if (progress_shown && (now.tv_sec - last.tv_sec) * 1000 +
					      (now.tv_nsec - last.tv_nsec) / 1000000 < 100)
		return;
	last = now;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	progress_shown = true;
}

void ctl_progress_end(const struct ctl *c)
{
	if (c->progress && progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = false;
}

_Noreturn void ctl_out_of_memory(void)
{
	fputs("statehousectl: out of memory\n", stderr);
	abort();
}

void *ctl_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		ctl_out_of_memory();
	return p;
}

void *ctl_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		ctl_out_of_memory();
	return p;
}

char *ctl_xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		ctl_out_of_memory();
	return d;
}

char *ctl_xvasprintf(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		ctl_out_of_memory();
	return s;
}

char *ctl_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = ctl_xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

void ctl_buf_add(struct strbuf *b, const void *p, size_t n)
{
	if (strbuf_add(b, p, n))
		ctl_out_of_memory();
}

void ctl_buf_addstr(struct strbuf *b, const char *s)
{
	ctl_buf_add(b, s, strlen(s));
}

const char *ctl_shell_quote(const char *s)
{
	static struct strbuf q;

	q.len = 0;
	if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			   "/._-+=:,@%") == strlen(s)) {
		ctl_buf_addstr(&q, s);
		return q.buf;
	}
	ctl_buf_addstr(&q, "'");
	for (; *s; s++) {
		if (*s == '\'')
			ctl_buf_addstr(&q, "'\\''");
		else
			ctl_buf_add(&q, s, 1);
	}
	ctl_buf_addstr(&q, "'");
	return q.buf;
}

int ctl_read_fd(int fd, struct strbuf *buf)
{
	char chunk[65536];
	ssize_t n;

	buf->len = 0;
	ctl_buf_add(buf, "", 0);
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		ctl_buf_add(buf, chunk, (size_t)n);
	}
}

int ctl_read_path(const char *path, struct strbuf *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	err = ctl_read_fd(fd, buf);
	close(fd);
	return err;
}

int ctl_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int ctl_commit_file(int fd, const char *tmp, const char *path, const void *content, size_t n)
{
	char *dir = ctl_xstrdup(path), *slash;
	int err, dfd;

	err = ctl_write_all(fd, content, n);
	if (!err && fsync(fd) != 0)
		err = -errno;
	if (close(fd) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) != 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		goto out;
	}
	/* the rename is durable only once the directory is */
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		err = -errno;
	if (dfd >= 0)
		close(dfd);
out:
	free(dir);
	return err;
}

int ctl_write_atomic(const char *path, const void *content, size_t n, mode_t mode)
{
	struct stat st;
	char *tmp;
	mode_t mask;
	int fd, err;

	if (stat(path, &st) == 0) {
		mode = st.st_mode & 07777;
	} else {
		mask = umask(0);
		umask(mask);
		mode &= ~mask;
	}
	tmp = ctl_xasprintf("%s.tmpXXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		err = -errno;
		free(tmp);
		return err;
	}
	if (fchmod(fd, mode) != 0) {
		err = -errno;
		close(fd);
		unlink(tmp);
		free(tmp);
		return err;
	}
	err = ctl_commit_file(fd, tmp, path, content, n);
	free(tmp);
	return err;
}

/* Resolve ".", ".." and repeated slashes of an absolute path, in place. */
static void normalise(char *p)
{
	char *out = p, *in = p;

	while (*in) {
		size_t len;

		while (*in == '/')
			in++;
		len = strcspn(in, "/");
		if (len == 0)
			break;
		if (len == 1 && in[0] == '.') {
			in += len;
			continue;
		}
		if (len == 2 && in[0] == '.' && in[1] == '.') {
			while (out > p && *--out != '/')
				;
			in += len;
			continue;
		}
		*out++ = '/';
		memmove(out, in, len);
		out += len;
		in += len;
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

char *ctl_abspath(const char *path)
{
	char *r = realpath(path, NULL), *abs, *slash, *dir;
	char cwd[PATH_MAX];

	if (r)
		return r;
	if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		abs = ctl_xasprintf("%s", path);
	else
		abs = ctl_xasprintf("%s/%s", cwd, path);
	normalise(abs);
	if (!strcmp(abs, "/"))
		return abs;
	slash = strrchr(abs, '/');
	*slash = '\0';
	dir = realpath(slash == abs ? "/" : abs, NULL);
	*slash = '/';
	if (!dir)
		return abs;
	r = ctl_xasprintf("%s%s", strcmp(dir, "/") ? dir : "", slash);
	free(dir);
	free(abs);
	return r;
}

static bool parse_i64(const char *s, int64_t min, int64_t *out)
{
	int64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (INT64_MAX - (*s - '0')) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	if (v < min)
		return false;
	*out = v;
	return true;
}

bool ctl_parse_ts(const char *s, int64_t *out)
{
	return parse_i64(s, 1, out);
}

bool ctl_parse_count(const char *s, int64_t *out)
{
	return parse_i64(s, 0, out);
}

const char *ctl_check_name(const char *name)
{
	if (!*name)
		return "it is empty";
	if (strlen(name) > CTL_NAME_MAX)
		return "it is longer than 255 bytes";
	if (strchr(name, '/'))
		return "it contains '/'";
	if (name[0] == '.')
		return "it begins with '.'";
	return NULL;
}

const char *ctl_check_key(const char *key)
{
	const char *p = key;

	if (!*key)
		return "it is empty";
	if (strlen(key) > CTL_KEY_MAX)
		return "it is longer than 1024 bytes";
	for (;;) {
		size_t len = strcspn(p, "/");

		if (len == 0)
			return "it has an empty path component (a leading, trailing or double '/')";
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return "it has a '.' or '..' path component";
		if (len > CTL_NAME_MAX)
			return "a path component is longer than 255 bytes";
		if (!p[len])
			return NULL;
		p += len + 1;
	}
}

char *ctl_encode_key(const char *key)
{
	struct strbuf e = { 0 }, b = { 0 };
	size_t at = 0;

	ctl_buf_add(&e, "", 0);
	for (; *key; key++) {
		if (*key == '%')
			ctl_buf_addstr(&e, "%25");
		else if (*key == '/')
			ctl_buf_addstr(&e, "%2F");
		else
			ctl_buf_add(&e, key, 1);
	}
	/* Over a path component: segment directories (statehouse(5), .history). */
	ctl_buf_add(&b, "", 0);
	while (e.len - at > CTL_NAME_MAX) {
		const char *r = e.buf + at;
		size_t cut = CTL_SEGMENT_MAX;

		for (int i = 0; i < 3 && ((unsigned char)r[cut] & 0xc0) == 0x80; i++)
			cut--;
		if (r[cut - 1] == '%')
			cut -= 1;
		else if (r[cut - 2] == '%')
			cut -= 2;
		ctl_buf_add(&b, r, cut);
		ctl_buf_addstr(&b, "%+/");
		at += cut;
	}
	ctl_buf_add(&b, e.buf + at, e.len - at);
	strbuf_release(&e);
	return b.buf;
}

json_t *ctl_value_json(const char *p, size_t n)
{
	json_error_t e;
	json_t *j = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

	if (j)
		return j;
	return json_stringn(p, n); /* NULL when the bytes are not UTF-8 */
}

/* Cut s to at most width bytes on a UTF-8 character boundary, marking the cut. */
static char *cut(char *s, int width)
{
	size_t n = strlen(s), w = width > 3 ? (size_t)width - 3 : 1;

	if (n <= (size_t)width)
		return s;
	while (w > 0 && ((unsigned char)s[w] & 0xC0) == 0x80)
		w--;
	s = ctl_xrealloc(s, w + 4);
	memcpy(s + w, "...", 4);
	return s;
}

char *ctl_summary_of(json_t *value, size_t raw_len, int width)
{
	char *s;

	if (!value)
		return ctl_xasprintf("(%zu bytes, not UTF-8)", raw_len);
	s = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
	if (!s)
		return ctl_xstrdup("?");
	return cut(s, width);
}

char *ctl_value_summary(json_t *op, int width)
{
	json_t *v = json_object_get(op, "value");
	const char *b64;

	if (!strcmp(ctl_json_str(op, "op", ""), "delete"))
		return ctl_xstrdup("(deleted)");
	if (v)
		return ctl_summary_of(v, 0, width);
	b64 = ctl_json_str(op, "value_base64", NULL);
	if (b64) {
		size_t n = strlen(b64), bytes = n / 4 * 3;

		if (n >= 1 && b64[n - 1] == '=')
			bytes--;
		if (n >= 2 && b64[n - 2] == '=')
			bytes--;
		return ctl_summary_of(NULL, bytes, width);
	}
	return ctl_xstrdup("");
}

int64_t ctl_json_int(json_t *obj, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

const char *ctl_json_str(json_t *obj, const char *key, const char *dflt)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

/* The base64 of n bytes as a JSON string (new reference). */
json_t *ctl_base64_json(const void *p, size_t n)
{
	char *b64 = base64_encode(p, n);
	json_t *j;

	if (!b64)
		ctl_out_of_memory();
	j = json_string(b64);
	free(b64);
	if (!j)
		ctl_out_of_memory();
	return j;
}

char *ctl_json_name(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	unsigned char *out;
	const char *b64;
	char *bkey;
	size_t n;
	int err;

	if (json_is_string(v))
		return ctl_xstrdup(json_string_value(v));
	bkey = ctl_xasprintf("%s_base64", key);
	b64 = ctl_json_str(obj, bkey, NULL);
	free(bkey);
	if (!b64)
		return NULL;
	err = base64_decode(b64, strlen(b64), &out, &n);
	if (err == -ENOMEM)
		ctl_out_of_memory();
	/* A name holds no NUL: one that decodes to one is no name. */
	if (!err && memchr(out, '\0', n)) {
		free(out);
		return NULL;
	}
	return err ? NULL : (char *)out;
}

void ctl_json_set_name(json_t *obj, const char *key, const char *name)
{
	json_t *v = json_string(name);
	char *bkey;

	if (v) {
		json_object_set_new(obj, key, v);
		return;
	}
	bkey = ctl_xasprintf("%s_base64", key);
	json_object_set_new(obj, bkey, ctl_base64_json(name, strlen(name)));
	free(bkey);
}

json_t *ctl_name_json(const char *name)
{
	json_t *v = json_string(name);

	return v ? v : json_pack("{s:o}", "base64", ctl_base64_json(name, strlen(name)));
}

void ctl_print_json(json_t *j, bool indent)
{
	json_dumpf(j, stdout, JSON_ENCODE_ANY | (indent ? JSON_INDENT(2) : JSON_COMPACT));
	fputc('\n', stdout);
}

const char *ctl_short_time(const char *t)
{
	static char s[64];
	const char *dot = strchr(t, '.');

	if (!dot || strlen(dot) < 5 || strlen(t) >= sizeof(s))
		return t;
	snprintf(s, sizeof(s), "%.*sZ", (int)(dot - t) + 4, t);
	return s;
}

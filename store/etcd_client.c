/* SPDX-License-Identifier: MIT */
/*
 * etcd_client.c - etcd's v3 JSON gateway over libcurl (store layer): the client's
 * endpoints, token and pool of handles, one request with failover, and range, put,
 * transaction and status.  The watch stream is etcd_watch.c.
 *
 * What etcd 3.4's gateway does, checked against the real server:
 *   - int64 fields come as strings, zero values and false are left out, bytes are
 *     base64; the status answer's own fields are camelCase (dbSize, raftIndex).
 *   - An error is an HTTP status with {"error","message","code"} (code: gRPC's).
 *   - The header Grpc-Metadata-hasleader: true reaches the server as gRPC metadata: a
 *     member that knows no leader then answers 503 "etcdserver: no leader" at once
 *     (nothing applied) instead of holding a write for its own 7 s request timeout and
 *     answering "context deadline exceeded" (in doubt).  So every request sends it.
 *   - A request over --max-request-bytes gets 400 "request is too large"; one over the
 *     gRPC limit (that + 512 KiB) 429 "grpc: received message larger than max".
 */
#include "etcd_client_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "log.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *etcd_client_lib_version(void)
{
	return curl_version();
}

int64_t etcd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration -------------------------------------------------------------- */

/* "host:port", "[v6]:port": a host without '/', '@' or blanks, a port 1..65535. */
static bool endpoint_valid(const char *ep)
{
	const char *colon = strrchr(ep, ':');
	const char *host_end = colon;
	char *end;
	long port;

	if (!colon || colon == ep || !colon[1])
		return false;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535 || colon[1] == '+' || colon[1] == '-')
		return false;
	if (ep[0] == '[') {
		if (colon[-1] != ']' || colon - ep < 3)
			return false;
		host_end = colon - 1;
		ep++;
	}
	for (const char *p = ep; p < host_end; p++) {
		if (*p == '/' || *p == '@' || *p == ' ' || *p == '\t' || *p == '[' ||
		    *p == ']' || *p == '?' || *p == '#' || (*p == ':' && host_end == colon))
			return false;
	}
	return true;
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

void etcd_close(struct etcd_client *c)
{
	if (!c)
		return;
	if (atomic_load(&c->n_watches))
		BUG("etcd_close() with %d watch(es) running", atomic_load(&c->n_watches));
	for (size_t i = 0; i < c->n_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	for (size_t i = 0; i < c->n_endpoints; i++) {
		free(c->endpoints[i]);
		free(c->bases[i]);
	}
	free(c->endpoints);
	free(c->bases);
	free(c->cacert);
	free(c->cert);
	free(c->key);
	free(c->user);
	free(c->password);
	free(c->token);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int etcd_open(const struct etcd_config *cfg, struct etcd_client **out)
{
	struct etcd_client *c;
	int r = -ENOMEM;

	*out = NULL;
	if (!cfg->endpoints || cfg->n_endpoints == 0 || !cfg->cert != !cfg->key ||
	    !cfg->user != !cfg->password || cfg->timeout_ms < 0)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		if (!cfg->endpoints[i] || !endpoint_valid(cfg->endpoints[i])) {
			log_err("cannot use etcd endpoint '%s': not host:port",
				cfg->endpoints[i] ? cfg->endpoints[i] : "(null)");
			return -EINVAL;
		}
	}
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		log_err("cannot initialise libcurl: %s", curl_easy_strerror(global_rc));
		return global_rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	atomic_init(&c->n_watches, 0);
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 5000;
	c->endpoints = calloc(cfg->n_endpoints, sizeof(*c->endpoints));
	c->bases = calloc(cfg->n_endpoints, sizeof(*c->bases));
	if (!c->endpoints || !c->bases)
		goto fail;
	c->n_endpoints = cfg->n_endpoints;
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		c->endpoints[i] = strdup(cfg->endpoints[i]);
		if (!c->endpoints[i] || asprintf(&c->bases[i], "%s://%s",
						 cfg->cacert ? "https" : "http",
						 cfg->endpoints[i]) < 0) {
			c->bases[i] = NULL;
			goto fail;
		}
	}
	if (dup_opt(cfg->cacert, &c->cacert) || dup_opt(cfg->cert, &c->cert) ||
	    dup_opt(cfg->key, &c->key) || dup_opt(cfg->user, &c->user) ||
	    dup_opt(cfg->password, &c->password))
		goto fail;
	*out = c;
	return 0;
fail:
	etcd_close(c);
	return r;
}

/* ---- shared state ----------------------------------------------------------------- */

size_t etcd_endpoint_current(struct etcd_client *c)
{
	size_t ep;

	pthread_mutex_lock(&c->mu);
	ep = c->cur;
	pthread_mutex_unlock(&c->mu);
	return ep;
}

void etcd_endpoint_answered(struct etcd_client *c, size_t ep)
{
	pthread_mutex_lock(&c->mu);
	c->cur = ep;
	pthread_mutex_unlock(&c->mu);
}

int etcd_token_get(struct etcd_client *c, char **token, unsigned *gen)
{
	int r = 0;

	pthread_mutex_lock(&c->mu);
	*gen = c->token_gen;
	*token = NULL;
	if (c->token && !(*token = strdup(c->token)))
		r = -ENOMEM;
	pthread_mutex_unlock(&c->mu);
	return r;
}

bool etcd_token_needed(struct etcd_client *c)
{
	bool need;

	if (!c->user)
		return false;
	pthread_mutex_lock(&c->mu);
	need = !c->token && !c->auth_off;
	pthread_mutex_unlock(&c->mu);
	return need;
}

void etcd_token_drop(struct etcd_client *c, unsigned gen)
{
	pthread_mutex_lock(&c->mu);
	if (c->token_gen == gen) {
		free(c->token);
		c->token = NULL;
		c->auth_off = false; /* etcd asked for a user: authentication is on now */
		c->token_gen++;
	}
	pthread_mutex_unlock(&c->mu);
}

char *etcd_auth_body(const struct etcd_client *c, size_t *len)
{
	json_t *req = json_pack("{s:s, s:s}", "name", c->user, "password", c->password);
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;

	json_decref(req);
	*len = body ? strlen(body) : 0;
	return body;
}

int etcd_auth_answer(struct etcd_client *c, int r, json_t *out)
{
	const char *token;
	char *copy;

	if (r == ETCD_AUTH_OFF) {
		pthread_mutex_lock(&c->mu);
		if (!c->auth_off)
			log_info("etcd has authentication off: requests go without a token");
		c->auth_off = true;
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	if (r == ETCD_REAUTH)
		r = -EACCES;
	if (r != 0)
		return r;
	token = json_string_value(json_object_get(out, "token"));
	if (!token || !*token) {
		log_err("cannot authenticate to etcd as '%s': the answer holds no token",
			c->user);
		return -EIO;
	}
	copy = strdup(token);
	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&c->mu);
	free(c->token);
	c->token = copy;
	c->auth_off = false;
	c->token_gen++;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* ---- one exchange ------------------------------------------------------------------ */

CURL *etcd_handle_new(const struct etcd_client *c)
{
	CURL *h = curl_easy_init();

	if (!h)
		return NULL;
	/* any thread may run a request: no signals (the resolver's alarm would need one) */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	if (c->cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
	}
	return h;
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	struct etcd_xfer *x = arg;

	return strbuf_add(&x->answer, data, size * n) ? 0 : size * n;
}

static size_t give(char *buf, size_t size, size_t n, void *arg)
{
	struct etcd_xfer *x = arg;
	size_t k = x->len - x->off < size * n ? x->len - x->off : size * n;

	memcpy(buf, x->body + x->off, k);
	x->off += k;
	x->taken = true;
	return k;
}

/* curl rewinds the body to send it again on a new connection when a reused one died
 * before an answer (and the request may have been applied): only a read may go again. */
static int rewind_body(void *arg, curl_off_t offset, int origin)
{
	struct etcd_xfer *x = arg;

	if (!x->resend || offset != 0 || origin != SEEK_SET)
		return CURL_SEEKFUNC_FAIL;
	x->off = 0;
	return CURL_SEEKFUNC_OK;
}

int etcd_xfer_prepare(const struct etcd_client *c, struct etcd_xfer *x, CURL *h, size_t ep,
		      const char *path, const char *body, size_t len, const char *token,
		      long timeout_ms, long connect_ms)
{
	struct curl_slist *l;
	char url[512];

	memset(x, 0, sizeof(*x));
	strbuf_init(&x->answer);
	x->h = h;
	x->ep = ep;
	x->path = path;
	if (snprintf(url, sizeof(url), "%s%s", c->bases[ep], path) >= (int)sizeof(url))
		return -ENOMEM;
	/* "Expect:" drops curl's 100-continue round trip for bodies over 1 KiB.  A status
	 * must answer without a leader too (it says whether there is one); everything
	 * else is refused at once by a member that knows no leader. */
	static const char *const fixed[] = { "Content-Type: application/json", "Expect:",
					     "Grpc-Metadata-hasleader: true" };
	size_t n_fixed = strcmp(path, "/v3/maintenance/status") == 0 ? 2 : 3;

	for (size_t i = 0; i < n_fixed; i++) {
		if (!(l = curl_slist_append(x->headers, fixed[i])))
			return -ENOMEM;
		x->headers = l;
	}
	if (token) {
		char *line;

		if (asprintf(&line, "Authorization: %s", token) < 0)
			return -ENOMEM;
		l = curl_slist_append(x->headers, line);
		free(line);
		if (!l)
			return -ENOMEM;
		x->headers = l;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	x->body = body;
	x->len = len;
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, give);
	curl_easy_setopt(h, CURLOPT_READDATA, x);
	curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, rewind_body);
	curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	return 0;
}

void etcd_xfer_release(struct etcd_xfer *x)
{
	if (x->h) {
		/* the handle outlives the headers and the error buffer */
		curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(x->h, CURLOPT_READDATA, NULL);
		curl_easy_setopt(x->h, CURLOPT_SEEKDATA, NULL);
		curl_easy_setopt(x->h, CURLOPT_WRITEDATA, NULL);
	}
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	strbuf_release(&x->answer);
}

/* Messages of etcd's own that mean it did not apply a request (besides every other
 * "etcdserver: " answer with gRPC code 14 Unavailable or 8 ResourceExhausted). */
static const char *const refusals[] = {
	"no leader", "not leader", "leader changed", "not capable", "unhealthy cluster",
	"not enough started members", "too many requests", "database space exceeded",
	"proposal dropped", "not supported for learner",
};

int etcd_error_errno(int code, const char *msg)
{
	if (strstr(msg, "invalid auth token") || strstr(msg, "user name is empty"))
		return ETCD_REAUTH;
	if (strstr(msg, "authentication is not enabled"))
		return ETCD_AUTH_OFF;
	if (strstr(msg, "request is too large") || strstr(msg, "too many operations in txn") ||
	    strstr(msg, "larger than max"))
		return -E2BIG;
	/* its own proposal timed out or the server stopped while holding it: in doubt */
	if (strstr(msg, "timed out") || strstr(msg, "deadline exceeded") ||
	    strstr(msg, "server stopped") || strstr(msg, "request canceled"))
		return -ETIMEDOUT;
	if (code == 16 || code == 7 || strstr(msg, "authentication failed") ||
	    strstr(msg, "permission denied") || strstr(msg, "is not granted"))
		return -EACCES;
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		if (strstr(msg, refusals[i]))
			return ETCD_REFUSED;
	}
	if (code == 8 || (code == 14 && strncmp(msg, "etcdserver: ", 12) == 0))
		return ETCD_REFUSED;
	/* Unavailable from the gateway's own gRPC connection ("transport is closing"):
	 * the request may have reached the server */
	if (code == 14)
		return -ETIMEDOUT;
	return -EIO;
}

/* Describe a failure in x->why and log it (at level) unless the caller logs itself. */
static void __attribute__((format(printf, 3, 4)))
say(struct etcd_xfer *x, enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->why, sizeof(x->why), fmt, ap);
	va_end(ap);
	if (!x->quiet)
		log_msg(level, "%s", x->why);
}

/* A TLS alert about this client's certificate comes from the server's end of the
 * handshake: the server never read a request, whatever curl had sent meanwhile (TLS 1.3
 * lets a client send before the server has checked its certificate). */
static bool handshake_refused(const char *why)
{
	return strstr(why, " alert ") &&
	       (strstr(why, "certificate") || strstr(why, "unknown ca") ||
		strstr(why, "handshake failure"));
}

int etcd_xfer_result(struct etcd_client *c, struct etcd_xfer *x, CURLcode rc, json_t **out)
{
	const char *ep = c->endpoints[x->ep];
	json_t *j, *jm, *jc;
	const char *msg;
	long http = 0;
	int r;

	*out = NULL;
	if (rc != CURLE_OK) {
		const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);

		if (rc == CURLE_OUT_OF_MEMORY || rc == CURLE_WRITE_ERROR)
			return -ENOMEM;
		/* not the error code: curl's own second attempt on a new connection (after
		 * a reused one died) may fail to connect when the first one sent it all */
		if (!x->taken || handshake_refused(why)) {
			say(x, LOG_LVL_WARN, "cannot reach etcd at '%s': %s", ep, why);
			return ETCD_UNREACHED;
		}
		/* sent, and the answer did not come (in time): in doubt */
		say(x, LOG_LVL_ERR, "etcd request '%s' to '%s' got no answer: %s", x->path, ep,
		    why);
		return -ETIMEDOUT;
	}
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &http);
	j = json_loadb(x->answer.buf ? x->answer.buf : "", x->answer.len, 0, NULL);
	if (http == 200 && json_is_object(j)) {
		*out = j;
		return 0;
	}
	jm = json_object_get(j, "message");
	if (!json_is_string(jm))
		jm = json_object_get(j, "error");
	msg = json_string_value(jm);
	if (!msg) {
		say(x, LOG_LVL_ERR, "etcd request '%s' to '%s' failed: HTTP status %ld%s", x->path,
		    ep, http, http == 200 ? " with an answer that is no JSON object" : "");
		json_decref(j);
		return -EIO;
	}
	jc = json_object_get(j, "code");
	r = etcd_error_errno(json_is_integer(jc) ? (int)json_integer_value(jc) : -1, msg);
	if (r == ETCD_REFUSED)
		say(x, LOG_LVL_WARN, "etcd at '%s' refused request '%s': %s", ep, x->path, msg);
	else if (r != ETCD_REAUTH && r != ETCD_AUTH_OFF)
		say(x, LOG_LVL_ERR, "etcd request '%s' to '%s' failed: %s", x->path, ep, msg);
	json_decref(j);
	return r;
}

/* ---- the pool and the request loop --------------------------------------------------- */

static CURL *pool_get(struct etcd_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->mu);
	if (c->n_pool)
		h = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->mu);
	return h ? h : etcd_handle_new(c);
}

static void pool_put(struct etcd_client *c, CURL *h)
{
	pthread_mutex_lock(&c->mu);
	if (c->n_pool < ETCD_POOL_MAX) {
		c->pool[c->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	if (h)
		curl_easy_cleanup(h);
}

/* Time for the connection of one attempt: a dead endpoint that drops packets must leave
 * time for the next one. */
static long connect_budget(const struct etcd_client *c, long left)
{
	long budget = c->timeout_ms / 2 > 1000 ? c->timeout_ms / 2 : c->timeout_ms;

	return budget < left ? budget : left;
}

/* One POST to endpoint ep: 0 with *out, or etcd_xfer_result()'s other results. */
static int exchange(struct etcd_client *c, CURL *h, size_t ep, const char *path,
		    const char *body, size_t len, const char *token, bool idempotent, long left,
		    json_t **out)
{
	struct etcd_xfer x;
	int r;

	r = etcd_xfer_prepare(c, &x, h, ep, path, body, len, token, left,
			      connect_budget(c, left));
	x.resend = idempotent;
	if (r == 0)
		r = etcd_xfer_result(c, &x, curl_easy_perform(h), out);
	etcd_xfer_release(&x);
	return r;
}

static int authenticate(struct etcd_client *c, CURL *h, size_t ep, long left)
{
	size_t len;
	char *body = etcd_auth_body(c, &len);
	json_t *out = NULL;
	int r;

	if (!body)
		return -ENOMEM;
	r = exchange(c, h, ep, "/v3/auth/authenticate", body, len, NULL, true, left, &out);
	r = etcd_auth_answer(c, r, out);
	json_decref(out);
	free(body);
	return r;
}

/*
 * POST req to path, from the endpoint that answered last on, within the timeout: 0 with
 * *out (and *answered, when not NULL, the endpoint), or a negative errno.  An endpoint
 * that cannot be reached, or that refuses for want of a leader (nothing applied), passes
 * the request to the next; so does one that let a read (idempotent) go unanswered.
 */
static int call(struct etcd_client *c, const char *path, json_t *req, bool idempotent,
		json_t **out, size_t *answered)
{
	int64_t deadline = etcd_now_ms() + c->timeout_ms;
	char *body = json_dumps(req, JSON_COMPACT);
	size_t start, tried = 0, len;
	bool reauthed = false;
	int r = -ENOTCONN;
	CURL *h;

	*out = NULL;
	if (!body)
		return -ENOMEM;
	len = strlen(body);
	if (!(h = pool_get(c))) {
		free(body);
		return -ENOMEM;
	}
	start = etcd_endpoint_current(c);
	while (tried < c->n_endpoints) {
		size_t ep = (start + tried) % c->n_endpoints;
		long left = (long)(deadline - etcd_now_ms());
		unsigned gen;
		char *token;
		int t;

		if (left <= 0)
			break;
		if (etcd_token_needed(c)) {
			t = authenticate(c, h, ep, left);
			/* the request itself was not sent: the next endpoint may have it */
			if (t == ETCD_UNREACHED || t == ETCD_REFUSED || t == -ETIMEDOUT) {
				if (t == ETCD_REFUSED)
					r = -ECANCELED;
				tried++;
				continue;
			}
			if (t < 0) {
				r = t;
				break;
			}
			left = (long)(deadline - etcd_now_ms());
			if (left <= 0)
				break;
		}
		if ((t = etcd_token_get(c, &token, &gen)) < 0) {
			r = t;
			break;
		}
		t = exchange(c, h, ep, path, body, len, token, idempotent, left, out);
		free(token);
		if (t == 0) {
			etcd_endpoint_answered(c, ep);
			if (answered)
				*answered = ep;
			r = 0;
			break;
		}
		if (t == ETCD_REAUTH && c->user && !reauthed) {
			reauthed = true;
			etcd_token_drop(c, gen);
			continue;
		}
		if (t == ETCD_REAUTH) {
			log_err("etcd at '%s' refused request '%s': %s", c->endpoints[ep], path,
				c->user ? "a new token was refused as well"
					: "it needs a user and password");
			r = -EACCES;
			break;
		}
		if (t == ETCD_UNREACHED || t == ETCD_REFUSED || (t == -ETIMEDOUT && idempotent)) {
			if (t != ETCD_UNREACHED)
				r = t == ETCD_REFUSED ? -ECANCELED : t;
			tried++;
			continue;
		}
		r = t > 0 ? -EIO : t;
		break;
	}
	if (r == -ENOTCONN)
		log_err("cannot send etcd request '%s': no endpoint of %zu could be reached", path,
			c->n_endpoints);
	pool_put(c, h);
	free(body);
	return r;
}

/* ---- JSON ---------------------------------------------------------------------------- */

int64_t etcd_json_i64(const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v))
		return (int64_t)strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static uint64_t json_u64(const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);

	if (json_is_integer(v))
		return (uint64_t)json_integer_value(v);
	if (json_is_string(v))
		return (uint64_t)strtoull(json_string_value(v), NULL, 10);
	return 0;
}

/* base64 bytes of obj[name] (absent: empty) into *out, NUL-terminated. */
static int json_bytes(const json_t *obj, const char *name, char **out, size_t *len)
{
	const json_t *v = json_object_get(obj, name);
	unsigned char *buf;
	int r;

	*out = NULL;
	*len = 0;
	if (v && !json_is_string(v))
		return -EIO;
	r = base64_decode(v ? json_string_value(v) : "", v ? json_string_length(v) : 0, &buf,
			  len);
	if (r == -EINVAL)
		return -EIO;
	*out = (char *)buf;
	return r;
}

void etcd_kv_release(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

int etcd_kv_parse(const json_t *obj, struct etcd_kv *kv)
{
	int r;

	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(obj))
		return -EIO;
	r = json_bytes(obj, "key", &kv->key, &kv->key_len);
	if (r == 0)
		r = json_bytes(obj, "value", &kv->value, &kv->value_len);
	if (r) {
		etcd_kv_release(kv);
		return r;
	}
	kv->create_revision = etcd_json_i64(obj, "create_revision");
	kv->mod_revision = etcd_json_i64(obj, "mod_revision");
	kv->version = etcd_json_i64(obj, "version");
	return 0;
}

static int64_t header_revision(const json_t *answer)
{
	return etcd_json_i64(json_object_get(answer, "header"), "revision");
}

void etcd_range_free(struct etcd_range_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		etcd_kv_release(&r->kvs[i]);
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

static int range_parse(const json_t *answer, struct etcd_range_result *out)
{
	const json_t *kvs = json_object_get(answer, "kvs");
	size_t n = json_array_size(kvs);
	int r;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(answer) || (kvs && !json_is_array(kvs)))
		return -EIO;
	out->revision = header_revision(answer);
	out->more = json_is_true(json_object_get(answer, "more"));
	if (n == 0)
		return 0;
	if (!(out->kvs = calloc(n, sizeof(*out->kvs))))
		return -ENOMEM;
	for (; out->n < n; out->n++) {
		if ((r = etcd_kv_parse(json_array_get(kvs, out->n), &out->kvs[out->n])) < 0) {
			etcd_range_free(out);
			return r;
		}
	}
	return 0;
}

/* ---- requests ------------------------------------------------------------------------ */

/* obj[name] = the base64 of len bytes at data. */
static int set_bytes(json_t *obj, const char *name, const void *data, size_t len)
{
	char *enc = base64_encode(data ? data : "", data ? len : 0);
	json_t *s = enc ? json_string_nocheck(enc) : NULL;

	free(enc);
	return s && json_object_set_new(obj, name, s) == 0 ? 0 : -ENOMEM;
}

static int set_i64(json_t *obj, const char *name, int64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRId64, v);
	return json_object_set_new(obj, name, json_string_nocheck(num)) ? -ENOMEM : 0;
}

/* A RangeRequest (also a transaction's request_range). */
static json_t *range_request(const void *key, size_t key_len, const void *end, size_t end_len,
			     int64_t limit)
{
	json_t *req = json_object();

	if (!req || set_bytes(req, "key", key, key_len) ||
	    (end && set_bytes(req, "range_end", end, end_len)) ||
	    (limit > 0 && set_i64(req, "limit", limit))) {
		json_decref(req);
		return NULL;
	}
	return req;
}

static json_t *put_request(const void *key, size_t key_len, const void *value, size_t value_len)
{
	json_t *req = json_object();

	if (!req || set_bytes(req, "key", key, key_len) ||
	    set_bytes(req, "value", value, value_len)) {
		json_decref(req);
		return NULL;
	}
	return req;
}

int etcd_range(struct etcd_client *c, const void *key, size_t key_len, const void *end,
	       size_t end_len, int64_t limit, struct etcd_range_result *out)
{
	json_t *req = range_request(key, key_len, end, end_len, limit), *answer;
	int r;

	memset(out, 0, sizeof(*out));
	if (!req)
		return -ENOMEM;
	r = call(c, "/v3/kv/range", req, true, &answer, NULL);
	json_decref(req);
	if (r == 0) {
		r = range_parse(answer, out);
		json_decref(answer);
	}
	return r;
}

int etcd_put(struct etcd_client *c, const void *key, size_t key_len, const void *value,
	     size_t value_len)
{
	json_t *req = put_request(key, key_len, value, value_len), *answer;
	int r;

	if (!req)
		return -ENOMEM;
	r = call(c, "/v3/kv/put", req, false, &answer, NULL);
	json_decref(req);
	json_decref(answer);
	return r;
}

void etcd_txn_free(struct etcd_txn_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_ranges; i++)
		etcd_range_free(&r->ranges[i]);
	free(r->ranges);
	memset(r, 0, sizeof(*r));
}

static json_t *compare_json(const struct etcd_compare *cmp)
{
	static const char *const targets[] = {
		[ETCD_CMP_VALUE] = "VALUE", [ETCD_CMP_MOD] = "MOD",
		[ETCD_CMP_VERSION] = "VERSION", [ETCD_CMP_CREATE] = "CREATE",
	};
	static const char *const fields[] = {
		[ETCD_CMP_MOD] = "mod_revision", [ETCD_CMP_VERSION] = "version",
		[ETCD_CMP_CREATE] = "create_revision",
	};
	json_t *j;

	if ((unsigned)cmp->target > ETCD_CMP_CREATE)
		BUG("etcd compare target %d", (int)cmp->target);
	j = json_pack("{s:s, s:s}", "result", "EQUAL", "target", targets[cmp->target]);
	if (!j || set_bytes(j, "key", cmp->key, cmp->key_len) ||
	    (cmp->target == ETCD_CMP_VALUE ? set_bytes(j, "value", cmp->value, cmp->value_len)
					   : set_i64(j, fields[cmp->target], cmp->num))) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static json_t *ops_json(const struct etcd_op *ops, size_t n, bool *writes)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		const struct etcd_op *op = &ops[i];
		json_t *req, *wrap;

		if (op->kind == ETCD_OP_PUT) {
			req = put_request(op->key, op->key_len, op->value, op->value_len);
			*writes = true;
		} else if (op->kind == ETCD_OP_RANGE) {
			req = range_request(op->key, op->key_len, op->end, op->end_len, op->limit);
		} else {
			BUG("etcd op kind %d", (int)op->kind);
		}
		wrap = req ? json_pack("{s:o}", op->kind == ETCD_OP_PUT ? "request_put"
									: "request_range",
				       req)
			   : NULL;
		if (!wrap || json_array_append_new(arr, wrap)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static int txn_parse(const json_t *answer, const struct etcd_op *ops, size_t n_ops,
		     struct etcd_txn_result *out)
{
	const json_t *resps = json_object_get(answer, "responses");
	size_t want = 0;
	int r;

	out->succeeded = json_is_true(json_object_get(answer, "succeeded"));
	out->revision = header_revision(answer);
	for (size_t i = 0; i < n_ops; i++)
		want += ops[i].kind == ETCD_OP_RANGE;
	if (json_array_size(resps) != n_ops) {
		log_err("etcd transaction answered %zu responses for %zu operations",
			json_array_size(resps), n_ops);
		return -EIO;
	}
	if (want == 0)
		return 0;
	if (!(out->ranges = calloc(want, sizeof(*out->ranges))))
		return -ENOMEM;
	for (size_t i = 0; i < n_ops; i++) {
		const json_t *rr;

		if (ops[i].kind != ETCD_OP_RANGE)
			continue;
		rr = json_object_get(json_array_get(resps, i), "response_range");
		if (!rr) {
			log_err("etcd transaction answered no range for operation %zu", i);
			return -EIO;
		}
		if ((r = range_parse(rr, &out->ranges[out->n_ranges])) < 0)
			return r;
		out->n_ranges++;
	}
	return 0;
}

int etcd_txn(struct etcd_client *c, const struct etcd_compare *cmp, size_t n_cmp,
	     const struct etcd_op *success, size_t n_success, const struct etcd_op *failure,
	     size_t n_failure, struct etcd_txn_result *out)
{
	json_t *req = json_object(), *cmps = json_array(), *answer = NULL, *succ, *fail;
	bool writes = false;
	int r = -ENOMEM;

	memset(out, 0, sizeof(*out));
	if (!req || !cmps || json_object_set(req, "compare", cmps))
		goto out;
	for (size_t i = 0; i < n_cmp; i++) {
		if (json_array_append_new(cmps, compare_json(&cmp[i])))
			goto out;
	}
	succ = ops_json(success, n_success, &writes);
	fail = ops_json(failure, n_failure, &writes);
	/* set_new takes its value even when it fails */
	if (json_object_set_new(req, "success", succ) | json_object_set_new(req, "failure", fail))
		goto out;
	r = call(c, "/v3/kv/txn", req, !writes, &answer, NULL);
	if (r == 0) {
		bool ok = json_is_true(json_object_get(answer, "succeeded"));

		r = txn_parse(answer, ok ? success : failure, ok ? n_success : n_failure, out);
		if (r < 0)
			etcd_txn_free(out);
	}
out:
	json_decref(answer);
	json_decref(cmps);
	json_decref(req);
	return r;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

int etcd_status(struct etcd_client *c, struct etcd_status *out)
{
	json_t *req = json_object(), *answer;
	size_t ep = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (!req)
		return -ENOMEM;
	r = call(c, "/v3/maintenance/status", req, true, &answer, &ep);
	json_decref(req);
	if (r)
		return r;
	copy_str(out->version, sizeof(out->version),
		 json_string_value(json_object_get(answer, "version")));
	out->member_id = json_u64(json_object_get(answer, "header"), "member_id");
	out->leader = json_u64(answer, "leader");
	out->raft_index = etcd_json_i64(answer, "raftIndex");
	out->raft_term = etcd_json_i64(answer, "raftTerm");
	out->db_size = etcd_json_i64(answer, "dbSize");
	copy_str(out->endpoint, sizeof(out->endpoint), c->endpoints[ep]);
	json_decref(answer);
	return 0;
}

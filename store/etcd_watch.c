/* SPDX-License-Identifier: MIT */
/*
 * etcd_watch.c - the watch of etcd_client.h (store layer): one thread per watch that
 * holds a /v3/watch stream open, hands each revision's puts to the caller, and
 * reconnects by itself from the revision after the last one it reported.
 *
 * What etcd 3.4's gateway does with a watch, checked against the real server:
 *   - The answer is newline-delimited JSON, {"result":{...}} per WatchResponse: first
 *     {"created":true} with the header's revision, then events (several revisions may
 *     come in one response; one revision never spans two).  A progress notification is
 *     a result with no events: everything up to its header's revision was sent.
 *   - Errors come in the stream as {"error":{"grpc_code","http_code","message"}}; a
 *     refused creation (bad token, permission) as a result with created and canceled
 *     and a cancel_reason; a start revision etcd compacted as canceled with
 *     compact_revision.
 *   - With Grpc-Metadata-hasleader: true, a member that knows no leader refuses the
 *     stream at once (503, "etcdserver: no leader"), and a member that loses its leader
 *     ends the stream with that error after about three election timeouts (measured:
 *     4.2 s with the default 1 s).  Without the header the stream just goes silent.
 *   - The request body cannot carry more requests once the answer has started (the Go
 *     1.19 HTTP/1 server of 3.4 does not read a request while it answers), so the
 *     stream cannot be pinged.  A member that stops answering altogether (SIGSTOP, a
 *     dead host) is found instead by asking it for its status on a second connection
 *     after ETCD_WATCH_QUIET_MS of silence: no answer within the client's timeout
 *     breaks the stream.
 */
#include "etcd_client_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "log.h"

/* Silence on the stream after which the member is asked whether it still answers. */
#define ETCD_WATCH_QUIET_MS 1000
/* Waits between attempts to (re)connect: doubling from the first to the last. */
#define ETCD_WATCH_BACKOFF_MIN_MS 50
#define ETCD_WATCH_BACKOFF_MAX_MS 1000

/* Why the stream was ended by this side (its own reason; 0 while it runs). */
enum { BRK_STOP = 100 };

struct etcd_watch {
	struct etcd_client *c;
	char *key_b64, *end_b64; /* end_b64 NULL: the one key */
	etcd_watch_fn fn;
	void *arg;
	pthread_t thread;
	atomic_bool stop;
	CURLM *multi;
	CURL *stream, *aux; /* the watch; the status probe and authentication */

	/* Only the watch thread touches these. */
	int64_t next_rev;   /* where a new stream starts; 0: from now */
	bool up;            /* the caller was told the stream is established */
	size_t ep;          /* the endpoint of the current stream */
	struct strbuf line; /* the stream's bytes after its last complete line */
	int brk;            /* why the line reader ended the stream (0: it did not) */
	int64_t heard_ms;   /* when the member last said something */
	long backoff_ms;
	char last_why[320]; /* the last failure logged, so that an outage logs once */
};

/* Log a failure of the stream unless it is the one logged last. */
static void watch_log(struct etcd_watch *w, enum log_level level, const char *why)
{
	if (strcmp(w->last_why, why) == 0)
		return;
	snprintf(w->last_why, sizeof(w->last_why), "%s", why);
	log_msg(level, "%s", why);
}

static void __attribute__((format(printf, 3, 4)))
watch_logf(struct etcd_watch *w, enum log_level level, const char *fmt, ...)
{
	char why[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	watch_log(w, level, why);
}

/* Hand a response's events to the caller, one call per revision. */
static int deliver(struct etcd_watch *w, const json_t *events)
{
	size_t n = json_array_size(events), k = 0;
	struct etcd_kv *kvs = calloc(n, sizeof(*kvs));
	int r = 0;

	if (!kvs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const json_t *ev = json_array_get(events, i);
		const char *type = json_string_value(json_object_get(ev, "type"));

		if (type && strcmp(type, "PUT") != 0)
			continue; /* a delete: never reported (and filtered out by etcd) */
		if ((r = etcd_kv_parse(json_object_get(ev, "kv"), &kvs[k])) < 0)
			goto out;
		k++;
	}
	for (size_t i = 0; i < k;) {
		int64_t rev = kvs[i].mod_revision;
		size_t j = i;

		while (j < k && kvs[j].mod_revision == rev)
			j++;
		if (rev < w->next_rev) {
			log_err("etcd watch at '%s' sent revision %" PRId64 " again (expected %" PRId64
				" or later)",
				w->c->endpoints[w->ep], rev, w->next_rev);
			r = -EIO;
			goto out;
		}
		w->fn(w->arg, true, rev, &kvs[i], j - i);
		w->next_rev = rev + 1;
		i = j;
	}
out:
	for (size_t i = 0; i < n; i++)
		etcd_kv_release(&kvs[i]);
	free(kvs);
	return r;
}

/* An error the stream reported (either form): the mapped errno, logged. */
static int stream_error(struct etcd_watch *w, const json_t *j)
{
	const json_t *err = json_object_get(j, "error");
	const char *msg;
	json_int_t code;
	int r;

	if (json_is_object(err)) {
		msg = json_string_value(json_object_get(err, "message"));
		code = json_integer_value(json_object_get(err, "grpc_code"));
	} else {
		msg = json_string_value(json_object_get(j, "message"));
		if (!msg)
			msg = json_string_value(err);
		code = json_integer_value(json_object_get(j, "code"));
	}
	if (!msg)
		msg = "an error without a message";
	r = etcd_error_errno((int)code, msg);
	if (r != ETCD_REAUTH)
		watch_logf(w, LOG_LVL_WARN, "etcd watch at '%s' broke: %s", w->c->endpoints[w->ep],
			   msg);
	return r < 0 || r == ETCD_REAUTH ? r : -ECANCELED;
}

/* One line of the stream: 0 to go on, else why to end it. */
static int stream_line(struct etcd_watch *w, const char *s, size_t len)
{
	json_t *j = json_loadb(s, len, 0, NULL), *res = json_object_get(j, "result");
	const json_t *events;
	int64_t rev;
	int r = 0;

	if (!json_is_object(res)) {
		if (json_is_object(j) && json_object_get(j, "error"))
			r = stream_error(w, j);
		else {
			watch_logf(w, LOG_LVL_ERR, "etcd watch at '%s' sent what is no answer: %.*s",
				   w->c->endpoints[w->ep], (int)(len > 120 ? 120 : len), s);
			r = -EIO;
		}
		goto out;
	}
	rev = etcd_json_i64(json_object_get(res, "header"), "revision");
	if (json_is_true(json_object_get(res, "canceled"))) {
		const char *why = json_string_value(json_object_get(res, "cancel_reason"));
		int64_t compact = etcd_json_i64(res, "compact_revision");

		if (compact > 0) {
			/* the revisions it needs are gone: go on from the oldest one left */
			log_err("etcd watch at '%s' cannot resume from revision %" PRId64
				": etcd compacted its history up to %" PRId64
				", so the puts of revisions %" PRId64 "..%" PRId64 " are not reported",
				w->c->endpoints[w->ep], w->next_rev, compact, w->next_rev,
				compact - 1);
			w->next_rev = compact;
			r = -ECANCELED;
		} else {
			r = etcd_error_errno(-1, why ? why : "");
			if (r != ETCD_REAUTH)
				watch_logf(w, LOG_LVL_ERR, "etcd watch at '%s' was cancelled: %s",
					   w->c->endpoints[w->ep], why ? why : "(no reason given)");
			if (r != ETCD_REAUTH && r >= 0)
				r = -ECANCELED;
		}
		goto out;
	}
	if (json_is_true(json_object_get(res, "created"))) {
		if (w->next_rev == 0)
			w->next_rev = rev + 1;
		w->backoff_ms = 0;
		w->last_why[0] = '\0';
		etcd_endpoint_answered(w->c, w->ep);
		if (!w->up) {
			w->up = true;
			w->fn(w->arg, true, 0, NULL, 0);
		}
	}
	events = json_object_get(res, "events");
	if (json_array_size(events))
		r = deliver(w, events);
	else if (!json_is_true(json_object_get(res, "created")) && rev + 1 > w->next_rev)
		w->next_rev = rev + 1; /* a progress notification */
out:
	json_decref(j);
	return r;
}

/* Complete lines of the stream go to stream_line(); a break ends the transfer. */
static size_t stream_data(char *data, size_t size, size_t n, void *arg)
{
	struct etcd_watch *w = arg;
	size_t done = 0;
	char *nl;

	w->heard_ms = etcd_now_ms();
	if (strbuf_add(&w->line, data, size * n)) {
		w->brk = -ENOMEM;
		return 0;
	}
	while ((nl = memchr(w->line.buf + done, '\n', w->line.len - done))) {
		size_t len = (size_t)(nl - (w->line.buf + done));

		if (len && (w->brk = stream_line(w, w->line.buf + done, len)))
			return 0;
		done += len + 1;
	}
	memmove(w->line.buf, w->line.buf + done, w->line.len - done);
	strbuf_setlen(&w->line, w->line.len - done);
	return size * n;
}

/* The body of the stream's request: create a watch from next_rev. */
static char *create_body(const struct etcd_watch *w, size_t *len)
{
	/* progress notifications (every 10 minutes by default) move next_rev on while no
	 * put comes, so an idle watch does not resume from a revision etcd compacted */
	json_t *cr = json_pack("{s:s, s:[s], s:b}", "key", w->key_b64, "filters", "NODELETE",
			       "progress_notify", 1);
	json_t *req = cr ? json_pack("{s:o}", "create_request", cr) : NULL;
	char num[24], *body = NULL;

	if (!req)
		return NULL;
	snprintf(num, sizeof(num), "%" PRId64, w->next_rev);
	if ((!w->end_b64 || json_object_set_new(cr, "range_end", json_string(w->end_b64)) == 0) &&
	    (w->next_rev == 0 ||
	     json_object_set_new(cr, "start_revision", json_string(num)) == 0))
		body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	*len = body ? strlen(body) : 0;
	return body;
}

/* Run x (prepared on w->aux) to its end through the multi: etcd_xfer_result()'s result,
 * or BRK_STOP when the watch is stopped meanwhile. */
static int aux_run(struct etcd_watch *w, struct etcd_xfer *x, json_t **out)
{
	CURLcode rc = CURLE_OK;
	bool done = false;
	int running;

	*out = NULL;
	if (curl_multi_add_handle(w->multi, w->aux) != CURLM_OK)
		return -ENOMEM;
	while (!done && !atomic_load(&w->stop)) {
		CURLMsg *m;
		int q;

		curl_multi_perform(w->multi, &running);
		while ((m = curl_multi_info_read(w->multi, &q))) {
			if (m->msg == CURLMSG_DONE && m->easy_handle == w->aux) {
				rc = m->data.result;
				done = true;
			}
		}
		if (!done)
			curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
	}
	curl_multi_remove_handle(w->multi, w->aux);
	return done ? etcd_xfer_result(w->c, x, rc, out) : BRK_STOP;
}

static int watch_authenticate(struct etcd_watch *w)
{
	struct etcd_xfer x;
	json_t *out = NULL;
	size_t len;
	char *body = etcd_auth_body(w->c, &len);
	int r = -ENOMEM;

	memset(&x, 0, sizeof(x));
	if (body && (r = etcd_xfer_prepare(w->c, &x, w->aux, w->ep, "/v3/auth/authenticate",
					   body, len, NULL, w->c->timeout_ms,
					   w->c->timeout_ms)) == 0) {
		x.quiet = true;
		x.resend = true;
		r = aux_run(w, &x, &out);
		if (r != 0 && r != BRK_STOP && x.why[0])
			watch_log(w, LOG_LVL_WARN, x.why);
		if (r != BRK_STOP)
			r = etcd_auth_answer(w->c, r, out);
	}
	etcd_xfer_release(&x);
	json_decref(out);
	free(body);
	return r;
}

/* Start asking the stream's member for its status (the probe) on w->aux. */
static int probe_start(struct etcd_watch *w, struct etcd_xfer *x, const char *token)
{
	int r = etcd_xfer_prepare(w->c, x, w->aux, w->ep, "/v3/maintenance/status", "{}", 2,
				  token, w->c->timeout_ms, w->c->timeout_ms);

	x->quiet = true;
	x->resend = true;
	if (r == 0 && curl_multi_add_handle(w->multi, w->aux) != CURLM_OK)
		r = -ENOMEM;
	return r;
}

/*
 * One stream from w->next_rev at endpoint w->ep, until it breaks or the watch stops:
 * why it ended (a negative errno, ETCD_REAUTH, ETCD_UNREACHED or BRK_STOP).
 */
static int watch_stream(struct etcd_watch *w)
{
	struct etcd_xfer sx, px;
	bool probing = false, ended = false;
	CURLcode src = CURLE_OK, prc; /* how the stream and the probe ended */
	char *token = NULL, *body = NULL;
	unsigned gen;
	size_t len;
	int r, running;

	memset(&px, 0, sizeof(px));
	memset(&sx, 0, sizeof(sx));
	if (etcd_token_needed(w->c) && (r = watch_authenticate(w)) != 0)
		return r == -ETIMEDOUT ? ETCD_UNREACHED : r;
	if ((r = etcd_token_get(w->c, &token, &gen)) < 0)
		return r;
	if (!(body = create_body(w, &len))) {
		r = -ENOMEM;
		goto out;
	}
	/* no timeout for the stream itself: its member's silence is judged by the probe */
	if ((r = etcd_xfer_prepare(w->c, &sx, w->stream, w->ep, "/v3/watch", body, len, token,
				   0, w->c->timeout_ms)) < 0)
		goto out;
	sx.quiet = true;
	sx.resend = true; /* a new watch is no change */
	curl_easy_setopt(w->stream, CURLOPT_WRITEFUNCTION, stream_data);
	curl_easy_setopt(w->stream, CURLOPT_WRITEDATA, w);
	strbuf_setlen(&w->line, 0);
	w->brk = 0;
	w->heard_ms = etcd_now_ms();
	if (curl_multi_add_handle(w->multi, w->stream) != CURLM_OK) {
		r = -ENOMEM;
		goto out;
	}
	while (!ended && !atomic_load(&w->stop)) {
		int64_t now, wait;
		CURLMsg *m;
		int q;

		curl_multi_perform(w->multi, &running);
		while ((m = curl_multi_info_read(w->multi, &q))) {
			json_t *ans = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			if (m->easy_handle == w->stream) {
				src = m->data.result;
				ended = true;
				continue;
			}
			probing = false;
			prc = m->data.result; /* m does not survive the removal */
			curl_multi_remove_handle(w->multi, w->aux);
			r = etcd_xfer_result(w->c, &px, prc, &ans);
			json_decref(ans);
			etcd_xfer_release(&px);
			if (r == 0) {
				w->heard_ms = etcd_now_ms();
				continue;
			}
			watch_logf(w, LOG_LVL_WARN, "etcd watch at '%s' stops: %s",
				   w->c->endpoints[w->ep],
				   px.why[0] ? px.why : "its member does not answer");
			w->brk = r == ETCD_REAUTH ? r : -ETIMEDOUT;
			ended = true;
			break; /* m is invalid once a handle is removed */
		}
		if (ended)
			break;
		now = etcd_now_ms();
		if (!probing && now - w->heard_ms >= ETCD_WATCH_QUIET_MS) {
			if ((r = probe_start(w, &px, token)) < 0) {
				etcd_xfer_release(&px);
				w->brk = r;
				break;
			}
			probing = true;
			continue;
		}
		wait = probing ? 1000 : w->heard_ms + ETCD_WATCH_QUIET_MS - now;
		curl_multi_poll(w->multi, NULL, 0, (int)(wait < 0 ? 0 : wait > 1000 ? 1000 : wait),
				NULL);
	}
	if (probing) {
		curl_multi_remove_handle(w->multi, w->aux);
		etcd_xfer_release(&px);
	}
	curl_multi_remove_handle(w->multi, w->stream);
	if (atomic_load(&w->stop)) {
		r = BRK_STOP;
	} else if (w->brk) {
		r = w->brk;
	} else if (w->line.len && (r = stream_line(w, w->line.buf, w->line.len))) {
		/* an answer without a final newline: an error before the stream began */
	} else if (src == CURLE_OK) {
		watch_logf(w, LOG_LVL_WARN, "etcd watch at '%s' ended", w->c->endpoints[w->ep]);
		r = -ECANCELED;
	} else {
		json_t *ans = NULL;

		r = etcd_xfer_result(w->c, &sx, src, &ans);
		json_decref(ans);
		if (r == ETCD_UNREACHED)
			watch_log(w, LOG_LVL_WARN, sx.why);
		else
			watch_logf(w, LOG_LVL_WARN, "etcd watch at '%s' broke: %s",
				   w->c->endpoints[w->ep],
				   sx.errbuf[0] ? sx.errbuf : curl_easy_strerror(src));
		if (r == 0 || r == -ENOMEM)
			r = -EIO;
	}
	if (r == ETCD_REAUTH)
		etcd_token_drop(w->c, gen);
out:
	etcd_xfer_release(&sx);
	free(body);
	free(token);
	return r;
}

static void *watch_main(void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd_client *c = w->c;
	int reauths = 0;

	w->ep = etcd_endpoint_current(c);
	while (!atomic_load(&w->stop)) {
		int r = watch_stream(w);

		if (r == BRK_STOP || atomic_load(&w->stop))
			break;
		if (w->up) {
			w->up = false;
			w->fn(w->arg, false, 0, NULL, 0);
		}
		/* a refused token is taken again once at once; else the next member */
		if (r == ETCD_REAUTH && c->user && reauths++ == 0)
			continue;
		if (r == ETCD_REAUTH)
			watch_logf(w, LOG_LVL_ERR, "etcd at '%s' refused the watch: %s",
				   c->endpoints[w->ep],
				   c->user ? "a new token was refused as well" : "it needs a user and password");
		reauths = 0;
		w->ep = (w->ep + 1) % c->n_endpoints;
		w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : ETCD_WATCH_BACKOFF_MIN_MS;
		if (w->backoff_ms > ETCD_WATCH_BACKOFF_MAX_MS)
			w->backoff_ms = ETCD_WATCH_BACKOFF_MAX_MS;
		/* curl_multi_wakeup() from etcd_watch_stop() ends the wait */
		for (int64_t until = etcd_now_ms() + w->backoff_ms, now;
		     !atomic_load(&w->stop) && (now = etcd_now_ms()) < until;)
			curl_multi_poll(w->multi, NULL, 0, (int)(until - now), NULL);
	}
	return NULL;
}

static void watch_free(struct etcd_watch *w)
{
	if (w->multi)
		curl_multi_cleanup(w->multi);
	if (w->stream)
		curl_easy_cleanup(w->stream);
	if (w->aux)
		curl_easy_cleanup(w->aux);
	strbuf_release(&w->line);
	free(w->key_b64);
	free(w->end_b64);
	free(w);
}

int etcd_watch_start(struct etcd_client *c, const void *key, size_t key_len, const void *end,
		     size_t end_len, int64_t start_revision, etcd_watch_fn fn, void *arg,
		     struct etcd_watch **out)
{
	struct etcd_watch *w = calloc(1, sizeof(*w));
	int r;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->c = c;
	w->fn = fn;
	w->arg = arg;
	w->next_rev = start_revision > 0 ? start_revision : 0;
	atomic_init(&w->stop, false);
	strbuf_init(&w->line);
	w->key_b64 = base64_encode(key, key_len);
	w->end_b64 = end ? base64_encode(end, end_len) : NULL;
	w->multi = curl_multi_init();
	w->stream = etcd_handle_new(c);
	w->aux = etcd_handle_new(c);
	if (!w->key_b64 || (end && !w->end_b64) || !w->multi || !w->stream || !w->aux) {
		watch_free(w);
		return -ENOMEM;
	}
	atomic_fetch_add(&c->n_watches, 1);
	if ((r = pthread_create(&w->thread, NULL, watch_main, w)) != 0) {
		atomic_fetch_sub(&c->n_watches, 1);
		watch_free(w);
		return -r;
	}
	*out = w;
	return 0;
}

void etcd_watch_stop(struct etcd_watch *w)
{
	if (!w)
		return;
	atomic_store(&w->stop, true);
	curl_multi_wakeup(w->multi);
	pthread_join(w->thread, NULL);
	atomic_fetch_sub(&w->c->n_watches, 1);
	watch_free(w);
}

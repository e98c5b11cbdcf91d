/* SPDX-License-Identifier: MIT */
/*
 * etcd_client_i.h - what etcd_client.c (the requests) and etcd_watch.c (the stream)
 * share inside the store layer: the client's state, one HTTP exchange with a member, and
 * the reading of etcd's answers.
 */
#ifndef STATEHOUSE_ETCD_CLIENT_I_H
#define STATEHOUSE_ETCD_CLIENT_I_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "etcd_client.h"
#include "grow.h"

/* Idle curl handles kept for reuse (each keeps its connections alive). */
#define ETCD_POOL_MAX 8

struct etcd_client {
	char **endpoints;  /* "host:port", as configured */
	char **bases;      /* "http://host:port" or "https://host:port" */
	size_t n_endpoints;
	char *cacert, *cert, *key;
	char *user, *password;
	long timeout_ms;
	atomic_int n_watches; /* running watches: etcd_close() must come after their stop */

	pthread_mutex_t mu;   /* protects the fields below (a leaf lock: nothing is taken
			       * while holding it, and no request runs under it) */
	size_t cur;           /* the endpoint that answered last */
	char *token;          /* NULL: none taken yet (or none needed) */
	unsigned token_gen;   /* bumped whenever token changes */
	bool auth_off;        /* etcd said authentication is not enabled: no token */
	CURL *pool[ETCD_POOL_MAX];
	size_t n_pool;
};

/* One request to one member: the handle, the headers it sends, the answer it gets. */
struct etcd_xfer {
	CURL *h;
	struct curl_slist *headers;
	struct strbuf answer;
	char errbuf[CURL_ERROR_SIZE];
	size_t ep;
	const char *path;
	const char *body;  /* what is sent, given to curl by a read callback that knows */
	size_t len, off;   /* how much of it curl took: */
	bool taken;        /* curl took some of the body: it may have reached etcd */
	bool resend;       /* curl may send the body again (a read: idempotent) */
	bool quiet;     /* etcd_xfer_result() leaves the logging to the caller (in why) */
	char why[320];  /* the failure etcd_xfer_result() saw, as its log line says it */
};

/* What etcd_xfer_result() makes of an exchange, beyond 0 and negative errnos. */
enum {
	ETCD_UNREACHED = 1, /* nothing was sent: the next endpoint may be asked */
	ETCD_REAUTH,        /* etcd refused the token: take a new one and ask again */
	ETCD_REFUSED,       /* -ECANCELED from this member: another one may do it */
	ETCD_AUTH_OFF,      /* etcd_auth_answer(): authentication is not enabled */
};

/* A new handle with the options every request of c shares; NULL on out of memory. */
CURL *etcd_handle_new(const struct etcd_client *c);

/*
 * Set h up to POST body (len bytes, kept by pointer) to path at endpoint ep with the
 * token (NULL: none), bounded by timeout_ms (0: no bound but the connection's) and
 * connect_ms; the answer collects in x->answer.  0 or -ENOMEM; release with
 * etcd_xfer_release() either way.  x->resend (false) says whether curl may send the
 * body a second time: it does when a reused connection dies before an answer, which
 * for a change could apply it twice.
 */
int etcd_xfer_prepare(const struct etcd_client *c, struct etcd_xfer *x, CURL *h, size_t ep,
		      const char *path, const char *body, size_t len, const char *token,
		      long timeout_ms, long connect_ms);
void etcd_xfer_release(struct etcd_xfer *x);

/*
 * Judge a finished exchange (rc: curl's result): 0 with *out (the answer's JSON object,
 * the caller drops it), ETCD_UNREACHED, ETCD_REAUTH, ETCD_REFUSED, or a negative errno
 * as etcd_client.h's table says.  Every failure but ETCD_REAUTH and ETCD_AUTH_OFF is
 * described in x->why, naming the endpoint and etcd's message, and logged unless
 * x->quiet.
 */
int etcd_xfer_result(struct etcd_client *c, struct etcd_xfer *x, CURLcode rc, json_t **out);

/* etcd's error (gRPC code, -1 if unknown; message msg) as etcd_xfer_result() maps it. */
int etcd_error_errno(int code, const char *msg);

/* The token to send (a copy, or NULL) and its generation; -ENOMEM. */
int etcd_token_get(struct etcd_client *c, char **token, unsigned *gen);
/* Whether a token must be taken before a request (user set, none held, auth on). */
bool etcd_token_needed(struct etcd_client *c);
/* Forget the token of generation gen (a newer one stays). */
void etcd_token_drop(struct etcd_client *c, unsigned gen);
/* The body of /v3/auth/authenticate (malloc'ed), NULL on out of memory. */
char *etcd_auth_body(const struct etcd_client *c, size_t *len);
/* Keep what /v3/auth/authenticate answered (r, out: as etcd_xfer_result() gave them):
 * 0 when a token is held (or none is needed), else r or -EACCES. */
int etcd_auth_answer(struct etcd_client *c, int r, json_t *out);

size_t etcd_endpoint_current(struct etcd_client *c);
void etcd_endpoint_answered(struct etcd_client *c, size_t ep);

/* A signed 64-bit field (a string on the wire; absent: 0). */
int64_t etcd_json_i64(const json_t *obj, const char *name);
/* Fill kv from a KeyValue object; 0, -EIO (malformed), -ENOMEM.  kv is zeroed first. */
int etcd_kv_parse(const json_t *obj, struct etcd_kv *kv);
void etcd_kv_release(struct etcd_kv *kv);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t etcd_now_ms(void);

#endif

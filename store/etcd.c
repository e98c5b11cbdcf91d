/* SPDX-License-Identifier: MIT */
/*
 * etcd.c - the etcd backend (store layer): the log of one volume lives in etcd, shared
 * by every mount of it on any host; DATADIR holds this mount's replica of it, a SQLite
 * log of the same schema, which every read of the past reads.  This file holds the
 * URI and options, opening (checks of the volume and the replica, catch-up), creating
 * a volume, and the table of operations; etcd_log.c appends, pulls and watches.
 *
 * Layout in etcd, below /statehouse/<volume>/:
 *   meta             "statehouse-volume 1\nuuid <uuid>\n" (made by store_create())
 *   head             the newest commit_ts, in decimal ("0" for a new volume)
 *   e/<20 digits>    the record of that commit (etcd_record.h), written once, never
 *                    changed: a batch of k commits is one etcd transaction that puts
 *                    e/H+1 .. e/H+k and head = H+k if head is still H.
 * DATADIR/etcd.volume names the volume and its uuid: a data dir is the replica of one
 * volume and never serves another.
 */
#include "etcd_i.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"

#define VOLUME_FILE "etcd.volume"
#define META_MAGIC "statehouse-volume 1\n"

/* ---- the URI and the options -------------------------------------------------------- */

static bool volume_name_ok(const char *v, size_t n)
{
	if (n == 0 || n > ETCD_VOLUME_MAX || (n <= 2 && !strncmp(v, "..", n)))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)v[i]) && !strchr("._-", v[i]))
			return false;
	}
	return true;
}

void etcd_params_free(struct etcd_params *p)
{
	for (size_t i = 0; i < p->n_endpoints; i++)
		free(p->endpoints[i]);
	free(p->endpoints);
	free(p->cacert);
	free(p->cert);
	free(p->key);
	free(p->user);
	free(p->password);
	memset(p, 0, sizeof(*p));
}

/* "user:password" (or the two on two lines) from the first line(s) of path. */
static int read_auth_file(const char *path, struct etcd_params *p)
{
	char buf[1024];
	FILE *f = fopen(path, "re");
	size_t n;
	char *sep;

	if (!f) {
		log_err("cannot read the etcd credentials file '%s': %s", path, strerror(errno));
		return -EINVAL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	sep = strpbrk(buf, ":\n");
	if (!sep || sep == buf) {
		log_err("the etcd credentials file '%s' must hold 'user:password'", path);
		return -EINVAL;
	}
	*sep = '\0';
	p->user = strdup(buf);
	p->password = strdup(sep + 1);
	return p->user && p->password ? 0 : -ENOMEM;
}

static int parse_param(const char *item, size_t len, struct etcd_params *p)
{
	const char *eq = memchr(item, '=', len);
	size_t nl = eq ? (size_t)(eq - item) : len;
	char *val = eq ? strndup(eq + 1, len - nl - 1) : NULL;
	char **dst = NULL;
	int err = 0;

	if (eq && !val)
		return -ENOMEM;
	if (nl == 22 && !strncmp(item, "etcd_commit_timeout_ms", nl)) {
		char *end;
		long v = val ? strtol(val, &end, 10) : -1;

		if (!val || !*val || *end || v < 1 || v > 3600000) {
			log_err("bad etcd_commit_timeout_ms '%s': milliseconds, 1 to 3600000",
				val ? val : "");
			err = -EINVAL;
		} else {
			p->commit_timeout_ms = v;
		}
	} else if (nl == 11 && !strncmp(item, "etcd_cacert", nl)) {
		dst = &p->cacert;
	} else if (nl == 9 && !strncmp(item, "etcd_cert", nl)) {
		dst = &p->cert;
	} else if (nl == 8 && !strncmp(item, "etcd_key", nl)) {
		dst = &p->key;
	} else if (nl == 14 && !strncmp(item, "etcd_auth_file", nl)) {
		err = val && *val ? read_auth_file(val, p) : -EINVAL;
		if (err == -EINVAL && (!val || !*val))
			log_err("etcd_auth_file needs a path");
	} else {
		log_err("unknown option of the etcd store '%.*s' (known: etcd_commit_timeout_ms, "
			"etcd_cacert, etcd_cert, etcd_key, etcd_auth_file)", (int)len, item);
		err = -EINVAL;
	}
	if (dst) {
		if (!val || !*val) {
			log_err("%.*s needs a path", (int)nl, item);
			err = -EINVAL;
		} else {
			free(*dst);
			*dst = val;
			val = NULL;
		}
	}
	free(val);
	return err;
}

int etcd_params_parse(const char *location, const char *params, struct etcd_params *p)
{
	const char *slash = strrchr(location, '/'), *s;
	int err = 0;

	memset(p, 0, sizeof(*p));
	p->commit_timeout_ms = ETCD_COMMIT_TIMEOUT_MS;
	if (!slash || slash == location || !volume_name_ok(slash + 1, strlen(slash + 1))) {
		log_err("bad etcd store 'etcd://%s': it is etcd://HOST:PORT[,HOST:PORT...]/VOLUME, "
			"a volume of 1 to %d letters, digits, '.', '_' or '-'", location,
			ETCD_VOLUME_MAX);
		return -EINVAL;
	}
	snprintf(p->volume, sizeof(p->volume), "%s", slash + 1);
	for (s = location; s < slash && !err;) {
		const char *comma = memchr(s, ',', (size_t)(slash - s));
		const char *end = comma ? comma : slash;
		const char *colon = memrchr(s, ':', (size_t)(end - s));
		char **grown;

		if (!colon || colon == s || colon + 1 == end ||
		    strspn(colon + 1, "0123456789") < (size_t)(end - colon - 1) ||
		    memchr(s, '/', (size_t)(end - s))) {
			log_err("bad etcd endpoint '%.*s' in 'etcd://%s': it is etcd://HOST:PORT"
				"[,HOST:PORT...]/VOLUME", (int)(end - s), s, location);
			err = -EINVAL;
			break;
		}
		grown = realloc(p->endpoints, (p->n_endpoints + 1) * sizeof(*grown));
		if (!grown || !(grown[p->n_endpoints] = strndup(s, (size_t)(end - s)))) {
			if (grown)
				p->endpoints = grown;
			err = -ENOMEM;
			break;
		}
		p->endpoints = grown;
		p->n_endpoints++;
		s = comma ? comma + 1 : slash;
	}
	for (s = params; !err && s && *s;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);

		if (len)
			err = parse_param(s, len, p);
		s = comma ? comma + 1 : NULL;
	}
	if (!err && !p->cert != !p->key) {
		log_err("etcd_cert and etcd_key go together");
		err = -EINVAL;
	}
	if (err)
		etcd_params_free(p);
	return err;
}

int etcd_connect(const struct etcd_params *p, struct etcd_client **out)
{
	struct etcd_config cfg = {
		.endpoints = (const char *const *)p->endpoints,
		.n_endpoints = p->n_endpoints,
		.cacert = p->cacert,
		.cert = p->cert,
		.key = p->key,
		.user = p->user,
		.password = p->password,
		.timeout_ms = ETCD_REQUEST_TIMEOUT_MS,
	};

	return etcd_open(&cfg, out);
}

static int etcd_check_location(const char *location)
{
	struct etcd_params p;
	int err = etcd_params_parse(location, NULL, &p);

	if (!err)
		etcd_params_free(&p);
	return err;
}

/* ---- keys ---------------------------------------------------------------------------- */

int etcd_key_event(const struct etcd_store *e, int64_t ts, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%se/%020" PRId64, e->prefix, ts);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : n;
}

static int set_keys(struct etcd_store *e, const char *volume)
{
	snprintf(e->volume, sizeof(e->volume), "%s", volume);
	snprintf(e->prefix, sizeof(e->prefix), "/statehouse/%s/", volume);
	snprintf(e->key_meta, sizeof(e->key_meta), "%smeta", e->prefix);
	snprintf(e->key_head, sizeof(e->key_head), "%shead", e->prefix);
	/* Every e/ key sorts before the prefix with '/' made '0'. */
	snprintf(e->key_e_end, sizeof(e->key_e_end), "%se0", e->prefix);
	return 0;
}

/* The uuid in a meta value, or -EIO when it is not one. */
static int meta_uuid(const char *v, size_t len, char uuid[ETCD_UUID_LEN + 1])
{
	size_t m = strlen(META_MAGIC);

	if (len < m + 5 + ETCD_UUID_LEN || memcmp(v, META_MAGIC, m) || memcmp(v + m, "uuid ", 5))
		return -EIO;
	memcpy(uuid, v + m + 5, ETCD_UUID_LEN);
	uuid[ETCD_UUID_LEN] = '\0';
	return 0;
}

int etcd_parse_head(const char *v, size_t len, int64_t *out)
{
	int64_t h = 0;

	if (!len || len > 19)
		return -EIO;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EIO;
		h = h * 10 + (v[i] - '0');
	}
	*out = h;
	return 0;
}

/* ---- creating a volume ------------------------------------------------------------- */

static int etcd_create(const char *location, const struct store_options *opt)
{
	struct etcd_params p;
	struct etcd_client *c = NULL;
	struct etcd_store keys;
	unsigned char r[16];
	char meta[128];
	struct etcd_txn_result res;
	int err = etcd_params_parse(location, opt ? opt->params : NULL, &p);

	if (err)
		return err;
	memset(&keys, 0, sizeof(keys));
	set_keys(&keys, p.volume);
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		etcd_params_free(&p);
		return -errno;
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(meta, sizeof(meta),
		 META_MAGIC "uuid %02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x"
			    "%02x%02x\n",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
		 r[13], r[14], r[15]);
	err = etcd_connect(&p, &c);
	if (!err) {
		struct etcd_compare cmp = { keys.key_meta, strlen(keys.key_meta),
					    ETCD_CMP_VERSION, 0, NULL, 0 };
		struct etcd_op puts[2] = {
			{ ETCD_OP_PUT, keys.key_meta, strlen(keys.key_meta), meta, strlen(meta),
			  NULL, 0, 0 },
			{ ETCD_OP_PUT, keys.key_head, strlen(keys.key_head), "0", 1, NULL, 0, 0 },
		};

		err = etcd_txn(c, &cmp, 1, puts, 2, NULL, 0, &res);
		if (!err) {
			if (!res.succeeded) {
				log_err("the volume '%s' exists in etcd already: nothing changed",
					p.volume);
				err = -EEXIST;
			} else {
				log_info("created the volume '%s' in etcd (%.*s)", p.volume,
					 (int)(strlen(meta) - strlen(META_MAGIC) - 1),
					 meta + strlen(META_MAGIC));
			}
			etcd_txn_free(&res);
		} else {
			log_err("cannot create the volume '%s' in etcd: %s", p.volume,
				strerror(-err));
		}
	}
	etcd_close(c);
	etcd_params_free(&p);
	return err;
}

/* ---- the replica's volume file --------------------------------------------------- */

/* Read DATADIR/etcd.volume: 0 (volume and uuid filled), -ENOENT, -EIO. */
static int volume_file_read(const char *datadir, char *volume, size_t vcap,
			    char uuid[ETCD_UUID_LEN + 1])
{
	char path[PATH_MAX], line[256];
	FILE *f;
	int seen = 0;

	snprintf(path, sizeof(path), "%s/" VOLUME_FILE, datadir);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ENOENT : -EIO;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "volume ", 7)) {
			snprintf(volume, vcap, "%.*s", (int)(vcap - 1), line + 7);
			seen |= 1;
		} else if (!strncmp(line, "uuid ", 5) && strlen(line + 5) == ETCD_UUID_LEN) {
			memcpy(uuid, line + 5, ETCD_UUID_LEN + 1);
			seen |= 2;
		}
	}
	fclose(f);
	return seen == 3 ? 0 : -EIO;
}

static int volume_file_write(const char *datadir, const char *volume, const char *uuid)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/" VOLUME_FILE, datadir);
	snprintf(tmp, sizeof(tmp), "%s/" VOLUME_FILE ".tmp", datadir);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	if (fprintf(f, "volume %s\nuuid %s\n", volume, uuid) < 0 || fflush(f) ||
	    fsync(fileno(f)))
		err = -errno;
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (!err)
		err = store_fsync_dir(datadir);
	if (err) {
		unlink(tmp);
		log_err("cannot write '%s': %s", path, strerror(-err));
	}
	return err;
}

/* ---- opening ------------------------------------------------------------------------- */

/* The volume's meta in etcd: its uuid, and the head and its revision. */
static int read_volume(struct etcd_store *e)
{
	struct etcd_range_result r;
	int err = etcd_range(e->c, e->key_meta, strlen(e->key_meta), NULL, 0, 0, &r);

	if (err) {
		log_err("cannot reach etcd for the volume '%s': %s", e->volume, strerror(-err));
		return -EIO;
	}
	if (r.n != 1) {
		etcd_range_free(&r);
		log_err("the volume '%s' does not exist in etcd: create it with 'statehousectl "
			"init etcd://HOST:PORT/%s'", e->volume, e->volume);
		return -ENOENT;
	}
	err = meta_uuid(r.kvs[0].value, r.kvs[0].value_len, e->uuid);
	etcd_range_free(&r);
	if (err) {
		log_err("'%s' in etcd is not the meta of a statehouse volume", e->key_meta);
		return -EIO;
	}
	return etcd_read_head(e, &e->committed_head);
}

static int same_event(const struct store_event *a, const struct store_event *b)
{
	if (a->commit_ts != b->commit_ts || a->time_ns != b->time_ns || a->n_ops != b->n_ops ||
	    strcmp(a->txn ? a->txn : "", b->txn ? b->txn : ""))
		return 0;
	for (size_t i = 0; i < a->n_ops; i++) {
		const struct store_op *x = &a->ops[i], *y = &b->ops[i];
		bool vx = x->kind == STORE_PUT || x->kind == STORE_ATTR;

		if (x->kind != y->kind || x->version != y->version || x->path_len != y->path_len ||
		    memcmp(x->path, y->path, x->path_len) ||
		    (vx && (x->value_len != y->value_len ||
			    (x->value_len && memcmp(x->value, y->value, x->value_len)))))
			return 0;
	}
	return 1;
}

static int compare_local(void *arg, const struct store_event *ev)
{
	const struct store_event *remote = arg;

	return same_event(ev, remote) ? 1 : 2;
}

/* The replica's newest commit must be the volume's commit of that number. */
static int check_replica(struct etcd_store *e)
{
	struct etcd_record rec;
	void *val = NULL;
	size_t len = 0;
	int64_t lh = atomic_load(&e->local_head), ch = atomic_load(&e->committed_head);
	int err, same;

	if (lh > ch) {
		log_err("the replica in the data dir ends at commit %" PRId64 ", after the volume "
			"'%s' in etcd (%" PRId64 "): etcd lost commits (restored from an older "
			"backup?); refusing to serve",
			lh, e->volume, ch);
		return -EIO;
	}
	if (!lh)
		return 0;
	err = etcd_get_event(e, lh, &val, &len);
	if (err && err != -ENOENT) {
		log_err("cannot read commit %" PRId64 " of the volume '%s' from etcd: %s",
			lh, e->volume, strerror(-err));
		return -EIO;
	}
	same = 0;
	if (!err && !etcd_record_decode(val, len, &rec)) {
		same = store_sqlite_ops.events(e->local, lh, lh, NULL, 0, compare_local, &rec.ev);
		etcd_record_release(&rec);
	}
	free(val);
	if (same != 1) {
		log_err("the replica's commit %" PRId64 " is not the volume '%s''s commit of that "
			"number in etcd: the two diverged (etcd restored from an older backup, "
			"or this data dir served another volume); refusing to serve",
			lh, e->volume);
		return -EIO;
	}
	return 0;
}

/*
 * Can etcd take a commit of one value of max bytes in one request?  Asked with a
 * transaction whose comparison never holds (the volume's meta exists), so nothing is
 * written: etcd refuses a request over --max-request-bytes before it looks at it.  A
 * bigger limit than etcd's default then also lets batches grow to it.
 */
static int probe_limit(struct etcd_store *e, size_t max)
{
	size_t len = max + 4096;
	char *big;
	struct etcd_txn_result res;
	struct etcd_compare cmp = { e->key_meta, strlen(e->key_meta), ETCD_CMP_VERSION, 0,
				    NULL, 0 };
	struct etcd_op op = { ETCD_OP_PUT, e->key_head, strlen(e->key_head), NULL, len, NULL,
			      0, 0 };
	int err;

	e->max_request = ETCD_MAX_REQUEST_BYTES;
	if (!max || max > (1u << 30))
		return 0;
	big = calloc(1, len);
	if (!big)
		return -ENOMEM;
	op.value = big;
	err = etcd_txn(e->c, &cmp, 1, &op, 1, NULL, 0, &res);
	free(big);
	if (err == -E2BIG) {
		log_err("etcd refuses a request of %zu bytes: a commit of one value of "
			"max_value_bytes=%zu would not fit; raise etcd's --max-request-bytes (to "
			"at least %zu) or lower max_value_bytes", len, max, len + 65536);
		return -EFBIG;
	}
	if (err) {
		log_err("cannot reach etcd for the volume '%s': %s", e->volume, strerror(-err));
		return -EIO;
	}
	if (res.succeeded) {
		/* the meta went away under us: the volume is being removed */
		etcd_txn_free(&res);
		return -EIO;
	}
	etcd_txn_free(&res);
	if (len > e->max_request)
		e->max_request = len;
	return 0;
}

static int etcd_open_store(const char *location, const char *datadir,
			   const struct store_options *opt, struct store **out)
{
	struct etcd_store *e = calloc(1, sizeof(*e));
	struct etcd_params p;
	struct store_options lopt = *opt;
	char fvol[ETCD_VOLUME_MAX + 2] = "", fuuid[ETCD_UUID_LEN + 1] = "";
	int err, ferr;

	*out = NULL;
	if (!e)
		return -ENOMEM;
	e->base.ops = &store_etcd_ops;
	pthread_mutex_init(&e->lock, NULL);
	err = etcd_params_parse(location, opt->params, &p);
	if (err) {
		free(e);
		return err;
	}
	set_keys(e, p.volume);
	e->commit_timeout_ms = p.commit_timeout_ms;
	if (getrandom(&e->mount_id, sizeof(e->mount_id), 0) != (ssize_t)sizeof(e->mount_id))
		e->mount_id = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	err = etcd_connect(&p, &e->c);
	etcd_params_free(&p);
	if (!err)
		err = read_volume(e);
	if (!err)
		err = probe_limit(e, opt->max_value_bytes);
	ferr = err ? 0 : volume_file_read(datadir, fvol, sizeof(fvol), fuuid);
	if (!err && ferr == -EIO) {
		log_err("'%s/" VOLUME_FILE "' is damaged", datadir);
		err = -EIO;
	} else if (!err && !ferr && (strcmp(fvol, e->volume) || strcmp(fuuid, e->uuid))) {
		log_err("the data dir '%s' is the replica of the volume '%s' (%s), not of '%s' "
			"(%s): use another data dir", datadir, fvol, fuuid, e->volume, e->uuid);
		err = -EIO;
	}
	/* The replica: etcd holds the truth, so a missing or emptied one is rebuilt. */
	lopt.must_exist = false;
	lopt.params = NULL;
	if (!err)
		err = store_sqlite_ops.open("", datadir, &lopt, &e->local);
	if (!err) {
		int64_t h = 0;

		err = store_sqlite_ops.check(e->local, &h);
		atomic_store(&e->local_head, h);
	}
	if (!err && ferr == -ENOENT && atomic_load(&e->local_head)) {
		log_err("the data dir '%s' holds a log of its own: an etcd volume needs a data dir "
			"of its own", datadir);
		err = -EIO;
	}
	if (!err && ferr == -ENOENT)
		err = volume_file_write(datadir, e->volume, e->uuid);
	if (!err)
		err = check_replica(e);
	if (!err)
		err = etcd_catch_up(e, INT64_MAX, NULL, NULL);
	if (err) {
		etcd_store_free(e);
		return err;
	}
	e->watch_up = false; /* until set_wake() starts it: store_stale() then says so */
	log_info("store: etcd volume '%s' (%s), replica in '%s' at commit %" PRId64, e->volume,
		 e->uuid, datadir, atomic_load(&e->local_head));
	*out = &e->base;
	return 0;
}

void etcd_store_free(struct etcd_store *e)
{
	if (!e)
		return;
	etcd_watch_stop(e->watch);
	etcd_close(e->c);
	if (e->local)
		store_sqlite_ops.close(e->local);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static void etcd_close_store(struct store *st)
{
	etcd_store_free((struct etcd_store *)st);
}

/* ---- what the replica answers ------------------------------------------------------ */

#define LOCAL(st) (((struct etcd_store *)(st))->local)

static int e_applied_claim(struct store *st, uint64_t instance)
{
	((struct etcd_store *)st)->instance = instance;
	return store_sqlite_ops.applied_claim(LOCAL(st), instance);
}

static int e_applied_find(struct store *st, const struct store_reqid *id,
			  struct store_applied *out)
{
	return store_sqlite_ops.applied_find(LOCAL(st), id, out);
}

static int e_replay(struct store *st, int64_t after_ts, store_replay_fn fn, void *arg,
		    struct store_replay_stats *stats)
{
	return store_sqlite_ops.replay(LOCAL(st), after_ts, fn, arg, stats);
}

static int e_get_at(struct store *st, const char *path, size_t len, int64_t ts, int with_value,
		    struct store_version *out)
{
	return store_sqlite_ops.get_at(LOCAL(st), path, len, ts, with_value, out);
}

static int e_get_version(struct store *st, const char *path, size_t len, int64_t version,
			 struct store_version *out)
{
	return store_sqlite_ops.get_version(LOCAL(st), path, len, version, out);
}

static int e_list_at(struct store *st, const char *prefix, size_t plen, int64_t ts,
		     store_version_fn fn, void *arg)
{
	return store_sqlite_ops.list_at(LOCAL(st), prefix, plen, ts, fn, arg);
}

static int e_history(struct store *st, const char *path, size_t len, store_version_fn fn,
		     void *arg)
{
	return store_sqlite_ops.history(LOCAL(st), path, len, fn, arg);
}

static int e_owner_records(struct store *st, const char *ns, size_t nslen, const char *agent,
			   size_t alen, store_version_fn fn, void *arg)
{
	return store_sqlite_ops.owner_records(LOCAL(st), ns, nslen, agent, alen, fn, arg);
}

static int e_names(struct store *st, const char *prefix, size_t plen, store_version_fn fn,
		   void *arg)
{
	return store_sqlite_ops.names(LOCAL(st), prefix, plen, fn, arg);
}

static int e_events(struct store *st, int64_t from_ts, int64_t to_ts, const char *filter,
		    size_t filter_len, store_event_fn fn, void *arg)
{
	return store_sqlite_ops.events(LOCAL(st), from_ts, to_ts, filter, filter_len, fn, arg);
}

static int e_record_start(struct store *st, const struct store_start *start, int *clean_prev)
{
	return store_sqlite_ops.record_start(LOCAL(st), start, clean_prev);
}

static int e_record_stop(struct store *st)
{
	return store_sqlite_ops.record_stop(LOCAL(st));
}

static int e_record_recovery(struct store *st, const struct store_recovery *r)
{
	return store_sqlite_ops.record_recovery(LOCAL(st), r);
}

static int e_starts(struct store *st, uint64_t *count, uint64_t *unclean)
{
	return store_sqlite_ops.starts(LOCAL(st), count, unclean);
}

static void e_file_sizes(struct store *st, uint64_t *db, uint64_t *wal)
{
	store_sqlite_ops.file_sizes(LOCAL(st), db, wal);
}

static int e_horizon(struct store *st, int64_t *out)
{
	return store_sqlite_ops.horizon(LOCAL(st), out);
}

static int e_pruner_open(struct store *st, const char *datadir, struct store_pruner **out)
{
	*out = NULL;
	log_err("retention (keep_versions, keep_days) is not available with an etcd store: "
		"every mount of a volume must keep the same log");
	return -EOPNOTSUPP;
}

static const char *e_lib_version(void)
{
	return etcd_client_lib_version();
}

const struct store_ops store_etcd_ops = {
	.scheme = "etcd",
	.takes_location = true,
	.open = etcd_open_store,
	.close = etcd_close_store,
	.append = etcd_append,
	.applied_claim = e_applied_claim,
	.applied_find = e_applied_find,
	.replay = e_replay,
	.check = etcd_check,
	.get_at = e_get_at,
	.get_version = e_get_version,
	.list_at = e_list_at,
	.history = e_history,
	.owner_records = e_owner_records,
	.names = e_names,
	.events = e_events,
	.record_start = e_record_start,
	.record_stop = e_record_stop,
	.record_recovery = e_record_recovery,
	.starts = e_starts,
	.file_sizes = e_file_sizes,
	.file_state = store_sqlite_file_state,
	.sync_files = store_sqlite_sync_files,
	.horizon = e_horizon,
	.pruner_open = e_pruner_open,
	.pruner_close = store_sqlite_pruner_close,
	.prune_step = store_sqlite_prune_step,
	.vacuum_step = store_sqlite_vacuum_step,
	.checkpoint = store_sqlite_checkpoint,
	.vacuum = store_sqlite_vacuum,
	.lib_version = e_lib_version,
	.create = etcd_create,
	.check_location = etcd_check_location,
	.set_wake = etcd_set_wake,
	.pull = etcd_pull,
	.shared_state = etcd_shared_state,
	.stale = etcd_stale,
};

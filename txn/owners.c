/* SPDX-License-Identifier: MIT */
/*
 * owners.c - who may read the past (txn layer): the owner records an agent, its
 * namespace and its keys had over time, read from the log, and the permission check
 * that shows a past value only to a caller who could read it both under the owners
 * and modes recorded when it was written and under today's.
 *
 * Owner records are commits (STORE_ATTR ops), so what held at any commit_ts is a
 * lookup in the log: the store hands over every record of one namespace, agent and
 * its keys (few: a chmod or chown is rare), and the checks walk them in memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grow.h"
#include "txn_i.h"

struct owner_rec {
	int64_t ts;
	int level;     /* 1: the namespace, 2: the agent, 3: a key */
	char *key;     /* level 3: the key below the agent */
	size_t klen;
	struct dattr *a; /* NULL: cleared */
};

struct txn_owner_hist {
	struct owner_rec *r;
	size_t n, cap;
};

void txn_owner_hist_free(struct txn_owner_hist *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->r[i].key);
		free(h->r[i].a);
	}
	free(h->r);
	free(h);
}

/* Split "ns/agent[/key]" (depth >= 2); the key part is empty at depth 2. */
static int split(const char *path, size_t len, size_t *nslen, const char **agent,
		 size_t *alen, const char **key, size_t *klen)
{
	const char *s1 = memchr(path, '/', len), *end = path + len, *s2;

	if (!s1)
		return -EINVAL;
	s2 = memchr(s1 + 1, '/', (size_t)(end - s1 - 1));
	*nslen = (size_t)(s1 - path);
	*agent = s1 + 1;
	*alen = (size_t)((s2 ? s2 : end) - s1 - 1);
	*key = s2 ? s2 + 1 : end;
	*klen = s2 ? (size_t)(end - s2 - 1) : 0;
	return 0;
}

static int add_rec(void *arg, const struct store_version *v)
{
	struct txn_owner_hist *h = arg;
	struct owner_rec *r;
	int depth = txn_path_depth(v->path, v->path_len), err;

	if (ARRAY_GROW(h->r, h->n + 1, h->cap))
		return -ENOMEM;
	r = &h->r[h->n];
	memset(r, 0, sizeof(*r));
	r->ts = v->commit_ts;
	r->level = depth > 2 ? 3 : depth;
	if (depth > 2) {
		size_t nslen, alen;
		const char *agent, *key;

		split(v->path, v->path_len, &nslen, &agent, &alen, &key, &r->klen);
		r->key = strndup(key, r->klen);
		if (!r->key)
			return -ENOMEM;
	}
	err = txn_attr_decode(v->value, v->size, depth > 2, &r->a);
	if (err) {
		free(r->key);
		return err;
	}
	h->n++;
	return 0;
}

int txn_owner_hist_load(struct txn_engine *eng, const char *path, size_t len,
			struct txn_owner_hist **out)
{
	struct txn_owner_hist *h;
	size_t nslen, alen, klen;
	const char *agent, *key;
	int err = split(path, len, &nslen, &agent, &alen, &key, &klen);

	*out = NULL;
	if (err)
		return err;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	err = store_owner_records(eng->store, path, nslen, agent, alen, add_rec, h);
	if (err) {
		txn_owner_hist_free(h);
		return err;
	}
	*out = h;
	return 0;
}

/* The record of level (and key) that held at ts: the newest one at or before it. */
static const struct dattr *rec_at(const struct txn_owner_hist *h, int level, const char *key,
				  size_t klen, int64_t ts)
{
	const struct dattr *a = NULL;

	for (size_t i = 0; i < h->n && h->r[i].ts <= ts; i++) {
		const struct owner_rec *r = &h->r[i];

		if (r->level == level &&
		    (level < 3 || (r->klen == klen && memcmp(r->key, key, klen) == 0)))
			a = r->a;
	}
	return a;
}

bool txn_caller_may(const struct txn_caller *c, uint32_t uid, uint32_t gid, uint32_t mode,
		    unsigned want)
{
	unsigned bits;

	if (c->uid == 0)
		return true;
	if (c->uid == uid) {
		bits = (mode >> 6) & 7;
	} else {
		bool member = c->gid == gid;

		for (size_t i = 0; i < c->ngroups && !member; i++)
			member = c->groups[i] == gid;
		bits = member ? (mode >> 3) & 7 : mode & 7;
	}
	return (bits & want) == want;
}

bool txn_owner_hist_empty(const struct txn_owner_hist *h)
{
	return !h || h->n == 0;
}

static bool may(const struct txn_caller *c, const struct txn_attr *a, unsigned want)
{
	return txn_caller_may(c, a->uid, a->gid, a->mode, want);
}

/* The check at one moment: search on the namespace, then read and search on the
 * agent (a directory at or below it), or search on it and read on the key. */
static bool may_read(const struct txn_caller *c, const struct txn_attr *ns,
		     const struct txn_attr *ag, const struct txn_attr *key)
{
	if (!may(c, ns, 1))
		return false;
	if (!key)
		return may(c, ag, 4 | 1);
	return may(c, ag, 1) && may(c, key, 4);
}

/* A key's attributes: its own mode, else its agent's without execute bits. */
static struct txn_attr key_attr(const struct txn_attr *ag, const struct dattr *own)
{
	struct txn_attr k = *ag;

	k.mode = own ? own->mode & 0777 : ag->mode & 0666;
	return k;
}

int txn_may_read_at(struct txn_engine *eng, const struct txn_owner_hist *h, const char *path,
		    size_t len, bool is_key, int64_t ts, const struct txn_caller *c)
{
	size_t nslen, alen, klen;
	const char *agent, *key;
	struct txn_attr ns, ag, k, now_ns, now_ag, now_k;
	char *agent_path;
	int err = split(path, len, &nslen, &agent, &alen, &key, &klen);

	if (err)
		return err;
	if (c->uid == 0)
		return 0;
	/* Then: the records that held at ts. */
	txn_attr_compose(eng, rec_at(h, 1, NULL, 0, ts), rec_at(h, 2, NULL, 0, ts), &ns, &ag);
	k = key_attr(&ag, is_key ? rec_at(h, 3, key, klen, ts) : NULL);
	if (!may_read(c, &ns, &ag, is_key ? &k : NULL))
		return -EACCES;
	/* Now: the name's owners and modes today. */
	agent_path = strndup(path, nslen + 1 + alen);
	if (!agent_path)
		return -ENOMEM;
	err = txn_dir_attr(eng, path, nslen, &now_ns);
	if (!err)
		err = txn_dir_attr(eng, agent_path, nslen + 1 + alen, &now_ag);
	if (!err && is_key)
		err = txn_dir_attr(eng, path, len, &now_k);
	free(agent_path);
	if (err)
		return err;
	if (is_key)
		now_k.mode = now_k.own ? now_k.mode & 0777 : now_ag.mode & 0666;
	return may_read(c, &now_ns, &now_ag, is_key ? &now_k : NULL) ? 0 : -EACCES;
}

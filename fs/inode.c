/* SPDX-License-Identifier: MIT */
/*
 * inode.c - the inode table of the mount: what each number names, how many lookups the
 * kernel holds, which writers have it open (fs layer).
 *
 * Design note 1.  Inodes are (area, transaction, path, type) tuples.  The kernel holds
 * an inode from its first lookup until it forgets it (nlookup back to 0); the entry is
 * freed then, but the number does not depend on that lifetime: it is a 64-bit hash of
 * the tuple (the bytes of make_key()), so the same path has the same st_ino after a
 * forget and after a restart of the daemon, for find, tar, rsync and git.  A collision
 * (the number is taken by another inode the kernel still holds: another tuple with the
 * same hash, the old inode of a path that was deleted or renamed away and created
 * again, or a number below INO_FIRST_DYNAMIC or UNKNOWN_INO) takes the next number of
 * the tuple's probe sequence (hash_probe()), so two inodes the kernel holds never
 * share a number; such a path may get another number after its next forget.  The
 * numbers depend on enum ikind's values and the byte order: stable across restarts of
 * one build on one machine.  The same path in the live tree, in `.tx/A/` and in
 * `.at/T/` are different tuples, so each can be invalidated on its own; a path that
 * changes from file to directory is a new tuple and gets a new number.  A rename keeps
 * the inode (and its number) under the new name, as the kernel does.  The names at the
 * root have fixed numbers below INO_FIRST_DYNAMIC and no entry here.
 *
 * The inodes of each transaction (.tx/NAME, its view, notes and control files) are also
 * on a list of that transaction (fs->by_txn): what a commit, an expiry or an abort makes
 * stale, and what a rename inside the view moves, is found there, whatever the number
 * of other inodes the kernel holds (10,000 cached live keys cost nothing to a commit).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "grow.h"
#include "log.h"

static char *make_key(enum ikind kind, uint64_t txn_id, enum txn_type type, const char *path,
		      size_t len, size_t *keylen)
{
	size_t n = 2 + sizeof(txn_id) + len;
	char *k = malloc(n);

	if (!k)
		return NULL;
	k[0] = (char)kind;
	k[1] = (char)type;
	memcpy(k + 2, &txn_id, sizeof(txn_id));
	memcpy(k + 2 + sizeof(txn_id), path, len);
	*keylen = n;
	return k;
}

struct inode *fs_ifind_key_locked(struct fs *fs, enum ikind kind, uint64_t txn_id,
				  enum txn_type type, const char *path, size_t len)
{
	struct inode *in = NULL;
	size_t kl;
	char *k = make_key(kind, txn_id, type, path, len, &kl);

	if (!k)
		return NULL;
	HASH_FIND(hh_key, fs->by_key, k, kl, in);
	free(k);
	return in;
}

/* The i-th candidate number of a key: FNV-1a over its bytes, then splitmix64's finaliser
 * of the hash plus i times the golden ratio (i = 0 for nearly every inode). */
static uint64_t hash_probe(const char *k, size_t kl, uint64_t i)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t j = 0; j < kl; j++) {
		h ^= (unsigned char)k[j];
		h *= 0x100000001b3ull;
	}
	h += i * 0x9e3779b97f4a7c15ull;
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	h ^= h >> 31;
	/* 63 bits: no tool that reads st_ino as signed sees a negative number */
	return h & INT64_MAX;
}

/* The first number of k's probe sequence that no inode in the table has.  itable_lock. */
static uint64_t ino_for_key_locked(struct fs *fs, const char *k, size_t kl)
{
	for (uint64_t i = 0;; i++) {
		uint64_t ino = hash_probe(k, kl, i);
		struct inode *in = NULL;

		if (ino < INO_FIRST_DYNAMIC || ino == UNKNOWN_INO)
			continue;
		HASH_FIND(hh_ino, fs->by_ino, &ino, sizeof(ino), in);
		if (!in)
			return ino;
	}
}

/*
 * The node journal (supervise.h): every change of what a number names or of how many
 * lookups the kernel holds is written down, after it is made in the table and before
 * the kernel hears of it, so that the next worker can rebuild the table if this one
 * dies.  A journal that has grown too big (or is full) is rewritten from the table.
 * itable_lock held.
 */
enum { JN_NODE = 1, JN_REF, JN_FORGET, JN_UNHASH, JN_REKEY };

static void jn_compact_locked(struct fs *fs)
{
	struct inode *in, *tmp;

	fs_jcompact_begin(&fs->jn);
	HASH_ITER(hh_ino, fs->by_ino, in, tmp) {
		if (fs_jcompact_put(&fs->jn, JN_NODE, in->ino, in->hashed, in->key, in->keylen) ||
		    (in->nlookup && fs_jcompact_put(&fs->jn, JN_REF, in->ino, in->nlookup, NULL, 0))) {
			fs_jlose(&fs->jn, "inode");
			return;
		}
	}
	fs_jcompact_end(&fs->jn);
}

static void jn(struct fs *fs, unsigned kind, uint64_t ino, uint64_t n, const void *k, size_t kl)
{
	if (!fs->journaled)
		return;
	if (fs_jput(&fs->jn, kind, ino, n, k, kl) == -ENOSPC || fs_jwants_compact(&fs->jn))
		jn_compact_locked(fs);
}

/* Does an inode of this kind belong to a transaction's list (by txn_id)? */
static bool is_txn_kind(enum ikind kind)
{
	return kind == IK_TXROOT || kind == IK_TXPATH || kind == IK_TXNOTE || kind == IK_TXCTL;
}

/* Put in on its transaction's list.  itable_lock held. */
static int txn_list_add_locked(struct fs *fs, struct inode *in)
{
	struct txn_inodes *t = NULL;

	HASH_FIND(hh, fs->by_txn, &in->txn_id, sizeof(in->txn_id), t);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		t->txn_id = in->txn_id;
		HASH_ADD(hh, fs->by_txn, txn_id, sizeof(t->txn_id), t);
		if (!HASH_ADDED(hh, t)) {
			free(t);
			return -ENOMEM;
		}
	}
	in->tx_prev = NULL;
	in->tx_next = t->head;
	if (t->head)
		t->head->tx_prev = in;
	t->head = in;
	return 0;
}

/* Take in off its transaction's list (the list goes with its last inode).  itable_lock. */
static void txn_list_del_locked(struct fs *fs, struct inode *in)
{
	struct txn_inodes *t = NULL;

	HASH_FIND(hh, fs->by_txn, &in->txn_id, sizeof(in->txn_id), t);
	if (!t)
		BUG("inode %" PRIu64 " of transaction %" PRIu64 " on no list", in->ino, in->txn_id);
	if (in->tx_prev)
		in->tx_prev->tx_next = in->tx_next;
	else
		t->head = in->tx_next;
	if (in->tx_next)
		in->tx_next->tx_prev = in->tx_prev;
	in->tx_prev = in->tx_next = NULL;
	if (!t->head) {
		HASH_DELETE(hh, fs->by_txn, t);
		free(t);
	}
}

static void inode_free(struct inode *in)
{
	free(in->key);
	free(in->path);
	free(in);
}

/* A new inode for a tuple, numbered ino (0: the tuple's own number), in both tables
 * (in the key table only if hashed); the key k is consumed.  itable_lock held. */
static struct inode *inode_insert_locked(struct fs *fs, enum ikind kind, uint64_t txn_id,
					 enum txn_type type, const char *path, size_t len,
					 char *k, size_t kl, uint64_t ino, bool hashed)
{
	struct inode *in = calloc(1, sizeof(*in));

	if (!in || !(in->path = malloc(len + 1))) {
		free(in);
		free(k);
		return NULL;
	}
	memcpy(in->path, path, len);
	in->path[len] = '\0';
	in->len = len;
	in->kind = kind;
	in->type = type;
	in->txn_id = txn_id;
	in->key = k;
	in->keylen = kl;
	in->ino = ino ? ino : ino_for_key_locked(fs, k, kl);
	in->hashed = hashed;
	HASH_ADD(hh_ino, fs->by_ino, ino, sizeof(in->ino), in);
	if (!HASH_ADDED(hh_ino, in)) {
		inode_free(in);
		return NULL;
	}
	if (hashed)
		HASH_ADD_KEYPTR(hh_key, fs->by_key, in->key, in->keylen, in);
	if (hashed && !HASH_ADDED(hh_key, in)) {
		HASH_DELETE(hh_ino, fs->by_ino, in);
		inode_free(in);
		return NULL;
	}
	if (is_txn_kind(kind) && txn_list_add_locked(fs, in)) {
		if (hashed)
			HASH_DELETE(hh_key, fs->by_key, in);
		HASH_DELETE(hh_ino, fs->by_ino, in);
		inode_free(in);
		return NULL;
	}
	return in;
}

static struct inode *inode_new_locked(struct fs *fs, enum ikind kind, uint64_t txn_id,
				      enum txn_type type, const char *path, size_t len,
				      char *k, size_t kl)
{
	struct inode *in = inode_insert_locked(fs, kind, txn_id, type, path, len, k, kl, 0, true);

	if (in)
		jn(fs, JN_NODE, in->ino, 1, in->key, in->keylen);
	return in;
}

/* Find or create the inode for a tuple and count one more kernel lookup. */
int fs_iget_tuple(struct fs *fs, enum ikind kind, uint64_t txn_id, enum txn_type type,
		  const char *path, size_t len, uint64_t *ino)
{
	struct inode *in;
	size_t kl;
	char *k = make_key(kind, txn_id, type, path, len, &kl);

	if (!k)
		return -ENOMEM;
	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_key, fs->by_key, k, kl, in);
	if (in) {
		free(k);
	} else {
		in = inode_new_locked(fs, kind, txn_id, type, path, len, k, kl);
		if (!in) {
			pthread_mutex_unlock(&fs->itable_lock);
			return -ENOMEM;
		}
	}
	in->nlookup++;
	jn(fs, JN_REF, in->ino, 1, NULL, 0);
	*ino = in->ino;
	pthread_mutex_unlock(&fs->itable_lock);
	return 0;
}

void fs_iref_release(struct iref *r)
{
	free(r->path);
	r->path = NULL;
}

int fs_iref_copy(struct iref *dst, const struct iref *src)
{
	*dst = *src;
	dst->path = malloc(src->len + 1);
	if (!dst->path)
		return -ENOMEM;
	memcpy(dst->path, src->path, src->len + 1);
	return 0;
}

/* *out names the tuple with path, which it takes over (malloc'ed). */
void fs_iref_take(struct iref *out, enum ikind kind, uint64_t txn_id, enum txn_type type,
		  char *path, size_t len)
{
	*out = (struct iref){ .kind = kind, .txn_id = txn_id, .type = type, .path = path,
			      .len = len };
}

/* *out names the tuple with a copy of path. */
int fs_iref_set(struct iref *out, enum ikind kind, uint64_t txn_id, enum txn_type type,
		const char *path, size_t len)
{
	char *p = malloc(len + 1);

	if (!p)
		return -ENOMEM;
	memcpy(p, path, len);
	p[len] = '\0';
	fs_iref_take(out, kind, txn_id, type, p, len);
	return 0;
}

/* The fixed inodes: kind, type and txn_id by number (0 kind: a dynamic one). */
static const struct {
	enum ikind kind;
	enum txn_type type;
	uint64_t txn_id;
} fixed[INO_FIRST_DYNAMIC] = {
	[FUSE_ROOT_ID] = { IK_ROOT, TXN_DIR, 0 },    [INO_TXDIR] = { IK_TXDIR, TXN_DIR, 0 },
	[INO_HEALTH] = { IK_HEALTH, TXN_FILE, 0 },   [INO_VERSION] = { IK_VERSION, TXN_FILE, 0 },
	[INO_METRICS] = { IK_METRICS, TXN_FILE, 0 }, [INO_STATUS] = { IK_STATUS, TXN_FILE, 0 },
	[INO_BACKUP] = { IK_BACKUP, TXN_FILE, 0 },
	[INO_ATDIR] = { IK_ATDIR, TXN_DIR, 0 },      [INO_HISTDIR] = { IK_HISTDIR, TXN_DIR, 0 },
	[INO_EVDIR] = { IK_EV, TXN_DIR, 0 },         [INO_FOLLOWDIR] = { IK_EV, TXN_DIR, 1 },
};

/* What does ino name?  -ENOENT for an inode the kernel should not have. */
int fs_iget(struct fs *fs, fuse_ino_t ino, struct iref *out)
{
	struct inode *in = NULL;
	uint64_t key = ino;

	memset(out, 0, sizeof(*out));
	out->ino = ino;
	if (ino < INO_FIRST_DYNAMIC && fixed[ino].kind) {
		out->kind = fixed[ino].kind;
		out->type = fixed[ino].type;
		out->txn_id = fixed[ino].txn_id;
		out->path = strdup("");
		return out->path ? 0 : -ENOMEM;
	}
	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_ino, fs->by_ino, &key, sizeof(key), in);
	if (!in || !in->hashed) {
		pthread_mutex_unlock(&fs->itable_lock);
		return -ENOENT;
	}
	out->kind = in->kind;
	out->type = in->type;
	out->txn_id = in->txn_id;
	out->len = in->len;
	out->path = strdup(in->path);
	pthread_mutex_unlock(&fs->itable_lock);
	return out->path ? 0 : -ENOMEM;
}

enum ikind fs_ikind(struct fs *fs, fuse_ino_t ino)
{
	struct inode *in = NULL;
	uint64_t key = ino;
	enum ikind kind = 0;

	if (ino < INO_FIRST_DYNAMIC)
		return fixed[ino].kind;
	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_ino, fs->by_ino, &key, sizeof(key), in);
	if (in && in->hashed)
		kind = in->kind;
	pthread_mutex_unlock(&fs->itable_lock);
	return kind;
}

static void inode_drop_locked(struct fs *fs, struct inode *in)
{
	if (is_txn_kind(in->kind))
		txn_list_del_locked(fs, in);
	HASH_DELETE(hh_ino, fs->by_ino, in);
	if (in->hashed)
		HASH_DELETE(hh_key, fs->by_key, in);
	inode_free(in);
}

void fs_iforget(struct fs *fs, uint64_t ino, uint64_t n)
{
	struct inode *in = NULL;

	if (ino < INO_FIRST_DYNAMIC)
		return;
	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_ino, fs->by_ino, &ino, sizeof(ino), in);
	if (in) {
		in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
		jn(fs, JN_FORGET, ino, n, NULL, 0);
		if (in->nlookup == 0)
			inode_drop_locked(fs, in);
	}
	pthread_mutex_unlock(&fs->itable_lock);
}

/* At fs_free(): the kernel will forget nothing more. */
void fs_inodes_free_all(struct fs *fs)
{
	struct inode *in, *tmp;

	HASH_ITER(hh_ino, fs->by_ino, in, tmp)
		inode_drop_locked(fs, in);
}

/* The path stops naming this inode (unlink, rmdir, replaced by a rename). */
void fs_iunhash_locked(struct fs *fs, struct inode *in)
{
	if (in && in->hashed) {
		HASH_DELETE(hh_key, fs->by_key, in);
		in->hashed = false;
		jn(fs, JN_UNHASH, in->ino, 0, NULL, 0);
	}
}

void fs_iunhash(struct fs *fs, enum ikind kind, uint64_t txn_id, enum txn_type type,
		const char *path, size_t len)
{
	pthread_mutex_lock(&fs->itable_lock);
	fs_iunhash_locked(fs, fs_ifind_key_locked(fs, kind, txn_id, type, path, len));
	pthread_mutex_unlock(&fs->itable_lock);
}

/* in now names (kind, path); whatever did before is detached.  On failure in is. */
int fs_irekey_locked(struct fs *fs, struct inode *in, enum ikind kind, const char *path,
		     size_t len)
{
	size_t kl;
	char *np = malloc(len + 1);
	char *k = make_key(kind, in->txn_id, in->type, path, len, &kl);

	if (!np || !k) {
		free(np);
		free(k);
		fs_iunhash_locked(fs, in);
		return -ENOMEM;
	}
	memcpy(np, path, len);
	np[len] = '\0';
	if (is_txn_kind(in->kind) != is_txn_kind(kind)) {
		/* Renames stay in their area: a transaction's kinds change among themselves. */
		BUG("inode %" PRIu64 " moved between a transaction and another area", in->ino);
	}
	fs_iunhash_locked(fs, fs_ifind_key_locked(fs, kind, in->txn_id, in->type, path, len));
	fs_iunhash_locked(fs, in);
	free(in->key);
	free(in->path);
	in->key = k;
	in->keylen = kl;
	in->path = np;
	in->len = len;
	in->kind = kind;
	in->hashed = true;
	HASH_ADD_KEYPTR(hh_key, fs->by_key, in->key, in->keylen, in);
	if (!HASH_ADDED(hh_key, in)) {
		in->hashed = false;
		return -ENOMEM;
	}
	jn(fs, JN_REKEY, in->ino, 1, in->key, in->keylen);
	return 0;
}

/*
 * A file at the top of transaction txn_id was renamed from src (a from_kind) to dst (a
 * to_kind): a note renamed (detach_dst: whatever dst named is detached even when src
 * has no inode), or the note renamed onto .commit.
 */
void fs_irename(struct fs *fs, enum ikind from_kind, enum ikind to_kind, uint64_t txn_id,
		const char *src, const char *dst, bool detach_dst)
{
	struct inode *in;

	pthread_mutex_lock(&fs->itable_lock);
	if (detach_dst)
		fs_iunhash_locked(fs, fs_ifind_key_locked(fs, to_kind, txn_id, TXN_FILE, dst,
							  strlen(dst)));
	in = fs_ifind_key_locked(fs, from_kind, txn_id, TXN_FILE, src, strlen(src));
	if (in)
		fs_irekey_locked(fs, in, to_kind, dst, strlen(dst));
	pthread_mutex_unlock(&fs->itable_lock);
}

/*
 * A successful rename moved src to dst in one view (kind/txn_id): the kernel keeps the
 * source inodes under the new names, so their tuples follow; whatever dst named before
 * is detached.
 */
/* in follows a move of src to dst when it is src or below it.  itable_lock held. */
static void imove_one_locked(struct fs *fs, struct inode *in, enum ikind kind, uint64_t txn_id,
			     const char *src, size_t slen, const char *dst, size_t dlen)
{
	size_t nl;
	char *np;

	if (!in->hashed || in->kind != kind || in->txn_id != txn_id || in->len < slen ||
	    memcmp(in->path, src, slen) != 0)
		return;
	if (in->len == slen) {
		fs_irekey_locked(fs, in, kind, dst, dlen);
		return;
	}
	if (in->path[slen] != '/')
		return;
	nl = dlen + (in->len - slen);
	np = malloc(nl + 1);
	if (!np) {
		fs_iunhash_locked(fs, in);
		return;
	}
	memcpy(np, dst, dlen);
	memcpy(np + dlen, in->path + slen, in->len - slen + 1);
	fs_irekey_locked(fs, in, kind, np, nl);
	free(np);
}

void fs_imove(struct fs *fs, enum ikind kind, uint64_t txn_id, const char *src, size_t slen,
	      const char *dst, size_t dlen)
{
	struct inode *in, *tmp;

	pthread_mutex_lock(&fs->itable_lock);
	fs_iunhash_locked(fs, fs_ifind_key_locked(fs, kind, txn_id, TXN_FILE, dst, dlen));
	fs_iunhash_locked(fs, fs_ifind_key_locked(fs, kind, txn_id, TXN_DIR, dst, dlen));
	if (is_txn_kind(kind)) {
		struct txn_inodes *t = NULL;

		HASH_FIND(hh, fs->by_txn, &txn_id, sizeof(txn_id), t);
		for (in = t ? t->head : NULL; in; in = in->tx_next)
			imove_one_locked(fs, in, kind, txn_id, src, slen, dst, dlen);
	} else {
		HASH_ITER(hh_ino, fs->by_ino, in, tmp)
			imove_one_locked(fs, in, kind, txn_id, src, slen, dst, dlen);
	}
	pthread_mutex_unlock(&fs->itable_lock);
}

/*
 * A successful RENAME_EXCHANGE of the keys a and b in one view: the kernel swapped the
 * two entries, so the inode that named a now names b and the other way round.
 */
void fs_iexchange(struct fs *fs, enum ikind kind, uint64_t txn_id, const char *a,
		  const char *b)
{
	size_t alen = strlen(a), blen = strlen(b);
	struct inode *ia, *ib;

	pthread_mutex_lock(&fs->itable_lock);
	ia = fs_ifind_key_locked(fs, kind, txn_id, TXN_FILE, a, alen);
	ib = fs_ifind_key_locked(fs, kind, txn_id, TXN_FILE, b, blen);
	fs_iunhash_locked(fs, ia);
	fs_iunhash_locked(fs, ib);
	if (ia)
		fs_irekey_locked(fs, ia, kind, b, blen);
	if (ib)
		fs_irekey_locked(fs, ib, kind, a, alen);
	pthread_mutex_unlock(&fs->itable_lock);
}

void fs_iwriter(struct fs *fs, uint64_t ino, int delta, size_t size)
{
	struct inode *in = NULL;

	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_ino, fs->by_ino, &ino, sizeof(ino), in);
	if (in) {
		if (delta > 0)
			in->writers++;
		else if (delta < 0 && in->writers)
			in->writers--;
		in->writer_size = size;
	}
	pthread_mutex_unlock(&fs->itable_lock);
}

/* Size of a pending (not yet committed) write for a live inode, or -1. */
ssize_t fs_ipending_size(struct fs *fs, uint64_t ino)
{
	struct inode *in = NULL;
	ssize_t r = -1;

	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh_ino, fs->by_ino, &ino, sizeof(ino), in);
	if (in && in->writers)
		r = (ssize_t)in->writer_size;
	pthread_mutex_unlock(&fs->itable_lock);
	return r;
}

/*
 * As fs_inodes_where(), among the inodes of transaction txn_id only (.tx/NAME, its view,
 * its notes and control files): a walk of that transaction's list, not of the table.
 */
size_t fs_txn_inodes_where(struct fs *fs, uint64_t txn_id,
			   bool (*match)(const struct inode *, const void *), const void *arg,
			   uint64_t **out)
{
	struct txn_inodes *t = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	pthread_mutex_lock(&fs->itable_lock);
	HASH_FIND(hh, fs->by_txn, &txn_id, sizeof(txn_id), t);
	for (struct inode *in = t ? t->head : NULL; in; in = in->tx_next) {
		if (match && !match(in, arg))
			continue;
		if (ARRAY_GROW(*out, n + 1, cap))
			break;
		(*out)[n++] = in->ino;
	}
	pthread_mutex_unlock(&fs->itable_lock);
	return n;
}

/*
 * The numbers of the inodes in the table for which match(in, arg) holds, in *out
 * (malloc'ed; as many as memory allows), so that the caller can notify the kernel with
 * no lock held.
 */
size_t fs_inodes_where(struct fs *fs, bool (*match)(const struct inode *, const void *),
		       const void *arg, uint64_t **out)
{
	struct inode *in, *tmp;
	size_t n = 0, cap = 0;

	*out = NULL;
	pthread_mutex_lock(&fs->itable_lock);
	HASH_ITER(hh_ino, fs->by_ino, in, tmp) {
		if (!match(in, arg))
			continue;
		if (ARRAY_GROW(*out, n + 1, cap))
			break;
		(*out)[n++] = in->ino;
	}
	pthread_mutex_unlock(&fs->itable_lock);
	return n;
}

/* ---- taking over the table of a dead worker --------------------------------------- */

/* Apply one record of the node journal to the table.  itable_lock held. */
static int take_over_one(void *arg, const struct sup_rec *r, const void *bytes)
{
	struct fs *fs = arg;
	struct inode *in = NULL;
	uint64_t ino = r->a, txn_id;
	char *k;

	HASH_FIND(hh_ino, fs->by_ino, &ino, sizeof(ino), in);
	switch (r->kind) {
	case JN_NODE:
	case JN_REKEY:
		if (r->n < 2 + sizeof(txn_id))
			return -EIO;
		if (!(k = malloc(r->n)))
			return -ENOMEM;
		memcpy(k, bytes, r->n);
		memcpy(&txn_id, k + 2, sizeof(txn_id));
		if (r->kind == JN_REKEY && in) {
			int err = fs_irekey_locked(fs, in, (enum ikind)k[0], k + 2 + sizeof(txn_id),
						   r->n - 2 - sizeof(txn_id));

			free(k);
			return err;
		}
		if (in)
			inode_drop_locked(fs, in); /* an older inode of that number */
		if (r->b)
			fs_iunhash_locked(fs, fs_ifind_key_locked(fs, (enum ikind)k[0], txn_id,
								  (enum txn_type)k[1],
								  k + 2 + sizeof(txn_id),
								  r->n - 2 - sizeof(txn_id)));
		in = inode_insert_locked(fs, (enum ikind)k[0], txn_id, (enum txn_type)k[1],
					 k + 2 + sizeof(txn_id), r->n - 2 - sizeof(txn_id), k,
					 r->n, ino, r->b != 0);
		return in ? 0 : -ENOMEM;
	case JN_REF:
		if (in)
			in->nlookup += r->b;
		return 0;
	case JN_FORGET:
		if (in) {
			in->nlookup = in->nlookup > r->b ? in->nlookup - r->b : 0;
			if (!in->nlookup)
				inode_drop_locked(fs, in);
		}
		return 0;
	case JN_UNHASH:
		fs_iunhash_locked(fs, in);
		return 0;
	default:
		return -EIO;
	}
}

/*
 * A new worker rebuilds the table the dead one had from the node journal: every number
 * the kernel holds names what it named, with the kernel's lookup count.  Then the
 * journal is rewritten from the table.  Before the session serves.
 */
int fs_inodes_take_over(struct fs *fs)
{
	unsigned n = 0;
	int err;

	pthread_mutex_lock(&fs->itable_lock);
	fs->journaled = false;
	err = fs_jeach(&fs->jn, take_over_one, fs);
	fs->journaled = true;
	if (!err)
		jn_compact_locked(fs);
	n = HASH_CNT(hh_ino, fs->by_ino);
	pthread_mutex_unlock(&fs->itable_lock);
	if (err)
		log_err("cannot rebuild the inode table from its journal: %s", strerror(-err));
	else
		log_info("took over %u inodes the kernel holds", n);
	return err;
}

/* SPDX-License-Identifier: MIT */
/*
 * notify.c - the notifier thread: it invalidates the kernel's caches after each batch
 * of commits, then completes the requests that waited for that, and wakes parked
 * .follow reads and pollers (fs layer).
 *
 * Design note 3.  Freshness: a commit that a caller waits for (a flush, or the rename
 * onto .commit) is completed by the notifier thread only after it has invalidated every
 * kernel cache entry the commit made stale.  Requests during which the kernel holds a
 * directory lock (unlink, rename in the live tree, truncate) are completed at once by
 * the committer, because invalidating an entry takes that lock; the kernel updates its
 * own dentries for those.  Every invalidation of the live tree also reaches the
 * read-only mount, if there is one (design note 5, romount.c), which also drops the name
 * of each changed key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"
#include "log.h"

struct nq_item {
	struct txn_changes *ch; /* a batch of commits, or NULL: */
	uint64_t inval_ino;     /* an inode whose kernel size a writer changed */
	char *inval_txn;        /* or a transaction reaped: the name .tx/NAME to drop */
	fuse_req_t txn_req;     /* or a commit of transaction txn_id failed with txn_err: */
	uint64_t txn_id;        /*   its inodes to invalidate, then txn_req to answer */
	int txn_err;
	struct nq_item *next;
};

static void nq_push(struct fs *fs, struct nq_item *it)
{
	pthread_mutex_lock(&fs->nq_lock);
	*fs->nq_tail = it;
	fs->nq_tail = &it->next;
	pthread_cond_signal(&fs->nq_cond);
	pthread_mutex_unlock(&fs->nq_lock);
}

/* Have the notifier drop the kernel's size and pages of ino (not from a handler). */
void fs_queue_inval(struct fs *fs, uint64_t ino)
{
	struct nq_item *it = calloc(1, sizeof(*it));

	if (!it)
		return;
	it->inval_ino = ino;
	nq_push(fs, it);
}

/* Called by the engine's reaper: .tx/NAME went away without an rmdir the kernel saw. */
static void on_reap(void *arg, const char *name)
{
	struct fs *fs = arg;
	struct nq_item *it = calloc(1, sizeof(*it));

	if (!it || !(it->inval_txn = strdup(name))) {
		free(it);
		return;
	}
	nq_push(fs, it);
}

/* Complete the requests of a batch that wait for its invalidation. */
static void complete_late(struct txn_changes *ch)
{
	for (struct txn_commit_req *r = ch->late, *next; r; r = next) {
		next = r->next;
		r->next = NULL;
		r->done(r, 0);
	}
	ch->late = NULL;
}

void fs_queue_changes(struct fs *fs, struct txn_changes *ch)
{
	struct nq_item *it = calloc(1, sizeof(*it));

	if (!it) {
		/* Cannot queue: complete now rather than leave callers hanging. */
		complete_late(ch);
		txn_changes_free(ch);
		return;
	}
	it->ch = ch;
	nq_push(fs, it);
}

/* Called by the committer: hand the batch to the notifier thread. */
static void on_commit(void *arg, struct txn_changes *ch)
{
	fs_queue_changes(arg, ch);
}

/*
 * A commit ended a transaction's view (or failed it): the directory is read-only (0500)
 * and its view answers EROFS, ESTALE or ETIMEDOUT from now on, so whatever the kernel
 * caches of .tx/NAME and of the directories and files below it is stale.  Only that
 * transaction's inodes are walked (fs_txn_inodes_where), whatever else the kernel holds.
 */
static bool is_txn_view(const struct inode *in, const void *arg)
{
	return in->kind == IK_TXROOT || in->kind == IK_TXPATH;
}

static void invalidate_txn(struct fs *fs, uint64_t txn_id)
{
	uint64_t *inos;
	size_t n = fs_txn_inodes_where(fs, txn_id, is_txn_view, NULL, &inos);

	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(fs->se, inos[i], 0, 0);
	free(inos);
}

/* A commit of txn_id succeeded: called by the notifier thread, before the rename is
 * answered (this takes no lock the waiting rename holds: attributes and pages only). */
void fs_inval_txn(struct fs *fs, uint64_t txn_id)
{
	if (fs->se)
		invalidate_txn(fs, txn_id);
}

/* A commit of txn_id failed (on the committer thread, which never waits for the kernel):
 * the notifier invalidates the view, then answers req with err, so that the caller's
 * next stat sees the failed state. */
void fs_queue_txn_failed(struct fs *fs, uint64_t txn_id, fuse_req_t req, int err)
{
	struct nq_item *it = calloc(1, sizeof(*it));

	if (!it) {
		fs_reply_err(req, err);
		return;
	}
	it->txn_req = req;
	it->txn_id = txn_id;
	it->txn_err = err;
	nq_push(fs, it);
}

struct prefix {
	const char *p;
	size_t len;
};

static bool is_at_or_below(const struct inode *in, const void *arg)
{
	const struct prefix *pf = arg;

	return in->len >= pf->len && memcmp(in->path, pf->p, pf->len) == 0 &&
	       (in->len == pf->len || in->path[pf->len] == '/');
}

/* The read-only mount's connection, or NULL (romount.c). */
static struct fuse_session *ro_session(struct fs *fs)
{
	return atomic_load_explicit(&fs->ro_se, memory_order_acquire);
}

/* The owner or mode of a namespace or agent changed: every inode at or below it, in
 * every view, has stale attributes (keys take their agent's); on the connection se. */
static void invalidate_below(struct fs *fs, struct fuse_session *se, const char *p, size_t len)
{
	struct prefix pf = { p, len };
	uint64_t *inos;
	size_t n = fs_inodes_where(fs, is_at_or_below, &pf, &inos);

	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(se, inos[i], -1, 0);
	free(inos);
}

/* The inode number of a live path of type type, or 0 when the kernel has none. */
static uint64_t live_ino(struct fs *fs, enum txn_type type, const char *p, size_t len)
{
	struct inode *in;
	uint64_t ino;

	pthread_mutex_lock(&fs->itable_lock);
	in = fs_ifind_key_locked(fs, IK_LIVE, 0, type, p, len);
	ino = in ? in->ino : 0;
	pthread_mutex_unlock(&fs->itable_lock);
	return ino;
}

/* A key changed: its own inode, then each directory that no longer exists (or that
 * now exists as a key), walking from the key up; on the connection se.  entry: drop the
 * key's own name too, even when it still exists (the read-only mount, where no rename or
 * unlink moved the kernel's dentries). */
static void invalidate_key(struct fs *fs, struct fuse_session *se, const char *p, size_t len,
			   bool entry)
{
	struct txn_entry e;
	bool is_file = txn_stat(fs->eng, NULL, p, len, &e) == 0 && e.type == TXN_FILE;
	uint64_t file_ino = live_ino(fs, TXN_FILE, p, len);
	size_t end = len;

	if (file_ino)
		fuse_lowlevel_notify_inval_inode(se, file_ino, 0, 0);
	for (;;) {
		const char *slash = memrchr(p, '/', end);
		size_t plen = slash ? (size_t)(slash - p) : 0;
		const char *name = slash ? slash + 1 : p;
		size_t nlen = end - (size_t)(name - p);
		uint64_t parent_ino;
		bool gone;

		if (end == len) {
			gone = !is_file || entry; /* the key itself was deleted */
		} else {
			struct txn_entry de;

			gone = !(txn_stat(fs->eng, NULL, p, end, &de) == 0 && de.type == TXN_DIR);
		}
		if (!gone)
			break;
		parent_ino = !slash ? FUSE_ROOT_ID : live_ino(fs, TXN_DIR, p, plen);
		if (parent_ino) {
			char name_buf[TXN_NAME_MAX + 1];

			memcpy(name_buf, name, nlen);
			name_buf[nlen] = '\0';
			fuse_lowlevel_notify_inval_entry(se, parent_ino, name_buf, nlen);
		}
		if (!slash || (end == len && is_file))
			break;
		end = plen;
	}
}

/* What a commit of the live path p made stale in the caches of the connection se. */
static void invalidate_path(struct fs *fs, struct fuse_session *se, const char *p, bool ro)
{
	size_t len = strlen(p);

	if (txn_path_depth(p, len) <= 2)
		invalidate_below(fs, se, p, len);
	else
		invalidate_key(fs, se, p, len, ro);
}

/* Invalidate what a batch of commits made stale in the kernels' caches: the main
 * mount's and the read-only mount's. */
static void invalidate(struct fs *fs, struct txn_changes *ch)
{
	struct fuse_session *ro = ro_session(fs);

	for (size_t i = 0; i < ch->n; i++) {
		invalidate_path(fs, fs->se, ch->paths[i], false);
		if (ro)
			invalidate_path(fs, ro, ch->paths[i], true);
	}
}

static int invalidate_event(void *arg, const struct txn_event *ev)
{
	struct fs *fs = arg;

	for (size_t i = 0; i < ev->n_ops; i++) {
		char *p = strndup(ev->ops[i].path, ev->ops[i].path_len);

		if (!p)
			return -ENOMEM;
		invalidate_path(fs, fs->se, p, false);
		free(p);
	}
	return 0;
}

/* fs_i.h */
int fs_invalidate_since(struct fs *fs, int64_t after_ts, int64_t upto_ts)
{
	if (!fs->se || upto_ts <= after_ts)
		return 0;
	return txn_events(fs->eng, NULL, 0, after_ts + 1, upto_ts, invalidate_event, fs);
}

/* fs_i.h */
void fs_ro_invalidate_path(struct fs *fs, const char *path)
{
	struct fuse_session *ro = ro_session(fs);

	if (ro && path)
		invalidate_path(fs, ro, path, true);
}

/*
 * Test hook (builds with -Dfault_injection=true): STATEHOUSE_NOTIFY_PAUSE_MS=N makes the
 * notifier sleep N ms before it invalidates each batch, so that a test sees what a
 * request answered before the notifier ran (by the committer) finds in the caches.
 */
static unsigned notify_pause_ms(void)
{
#if STATEHOUSE_FAULT_INJECTION
	const char *spec = getenv("STATEHOUSE_NOTIFY_PAUSE_MS");
	unsigned long ms = spec ? strtoul(spec, NULL, 10) : 0;

	if (ms)
		log_warn("fault injection on: the notifier pauses %lu ms before each batch", ms);
	return ms < 60000 ? (unsigned)ms : 60000;
#else
	if (getenv("STATEHOUSE_NOTIFY_PAUSE_MS"))
		log_warn("ignoring STATEHOUSE_NOTIFY_PAUSE_MS: this build has no fault injection "
			 "(meson -Dfault_injection=true)");
	return 0;
#endif
}

static void *notifier_main(void *arg)
{
	struct fs *fs = arg;
	unsigned pause_ms = notify_pause_ms();

	for (;;) {
		struct nq_item *it;

		pthread_mutex_lock(&fs->nq_lock);
		while (!fs->nq_head && !fs->wake && !fs->nq_stopping)
			pthread_cond_wait(&fs->nq_cond, &fs->nq_lock);
		it = fs->nq_head;
		if (!it && fs->wake) {
			fs->wake = false;
			pthread_mutex_unlock(&fs->nq_lock);
			fs_events_wake(fs);
			continue;
		}
		if (!it) {
			pthread_mutex_unlock(&fs->nq_lock);
			break;
		}
		fs->nq_head = it->next;
		if (!fs->nq_head)
			fs->nq_tail = &fs->nq_head;
		if (it->ch)
			fs->wake = true; /* followers may have something new */
		pthread_mutex_unlock(&fs->nq_lock);

		if (it->txn_req) {
			if (fs->se)
				invalidate_txn(fs, it->txn_id);
			fs_reply_err(it->txn_req, it->txn_err);
			free(it);
			continue;
		}
		if (it->inval_txn) {
			if (fs->se)
				fuse_lowlevel_notify_inval_entry(fs->se, INO_TXDIR, it->inval_txn,
								 strlen(it->inval_txn));
			free(it->inval_txn);
			free(it);
			continue;
		}
		if (!it->ch) {
			if (fs->se)
				fuse_lowlevel_notify_inval_inode(fs->se, it->inval_ino, 0, 0);
			free(it);
			continue;
		}
		if (pause_ms)
			usleep(pause_ms * 1000u);
		if (fs->se)
			invalidate(fs, it->ch);
		fs_worker_invalidated(fs, it->ch->upto_ts);
		complete_late(it->ch);
		txn_changes_free(it->ch);
		free(it);
	}
	return NULL;
}

int fs_notifier_start(struct fs *fs)
{
	int rc = pthread_create(&fs->notifier, NULL, notifier_main, fs);

	if (rc)
		return -rc;
	fs->notifier_started = true;
	txn_engine_set_notify(fs->eng, on_commit, fs);
	txn_engine_set_reap_hook(fs->eng, on_reap, fs);
	return 0;
}

/* fs_i.h */
void fs_notifier_stop(struct fs *fs)
{
	if (!fs->notifier_started)
		return;
	txn_engine_set_reap_hook(fs->eng, NULL, NULL);
	pthread_mutex_lock(&fs->nq_lock);
	fs->nq_stopping = true;
	pthread_cond_signal(&fs->nq_cond);
	pthread_mutex_unlock(&fs->nq_lock);
	pthread_join(fs->notifier, NULL);
	fs->notifier_started = false;
}

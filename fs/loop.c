/* SPDX-License-Identifier: MIT */
/*
 * loop.c - how requests are served (fs layer): the loop threads that read /dev/fuse and
 * answer what lives in memory, and the pool that answers what reads the log.
 *
 * A request handed from the thread that read it to an idle thread on another CPU costs
 * several times a same-CPU answer on a small machine, and most requests (lookups,
 * attributes, reads of the live tree, staging, commit renames, which the committer
 * answers) never block.  So by default one loop thread reads and answers them itself,
 * and only the requests that may wait on SQLite or on a commit's fsync (anything below
 * .at, .history, .events, .follow, .health and .backup; a mkdir or rmdir of the live
 * tree; a statehouse xattr) go to a small pool, so that they never hold up the fast
 * path.  `-o loop_threads=N` runs N loop threads, `-o pool_threads=N` sizes the pool,
 * `-s` answers everything on one thread (no pool) and an explicit `-o max_threads=N`
 * asks for libfuse's own multi-threaded loop, as before.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "log.h"

/* The pool: jobs in arrival order, answered by n threads. */
struct fs_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct fs_job *head, **tail;
	bool stopping;
	pthread_t *threads;
	unsigned n;
};

static __thread bool on_pool; /* this thread is a pool thread: run, never defer */

static void *pool_main(void *arg)
{
	struct fs_pool *p = arg;
	struct fs_job *j;

	on_pool = true;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		j = p->head;
		if (j && !(p->head = j->next))
			p->tail = &p->head;
		pthread_mutex_unlock(&p->lock);
		if (!j)
			return NULL; /* stopping, and nothing left */
		fs_request_id_set(j->unique);
		fs_job_run(j);
		free(j->name);
		free(j);
	}
}

bool fs_defer_wanted(struct fs *fs)
{
	return fs->pool && !on_pool;
}

bool fs_defer(struct fs *fs, const struct fs_job *job)
{
	struct fs_pool *p = fs->pool;
	struct fs_job *j = malloc(sizeof(*j));

	if (!j)
		return false; /* answered where it is: slower, still right */
	*j = *job;
	j->unique = fs_request_id();
	fs_worker_handoff(); /* an open this thread noted is answered elsewhere */
	j->next = NULL;
	j->name = NULL;
	if (job->fi) {
		j->fi_copy = *job->fi;
		j->fi = &j->fi_copy;
	}
	if (job->name && !(j->name = strdup(job->name))) {
		free(j);
		return false;
	}
	fs->pooled++;
	pthread_mutex_lock(&p->lock);
	*p->tail = j;
	p->tail = &j->next;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return true;
}

/* Start a thread that takes no signal: they are the main thread's, whose read of
 * /dev/fuse they interrupt so the loop can end. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -err;
}

static void pool_stop(struct fs *fs)
{
	struct fs_pool *p = fs->pool;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	fs->pool = NULL;
	free(p->threads);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int pool_start(struct fs *fs, unsigned n)
{
	struct fs_pool *p = calloc(1, sizeof(*p));
	int err = 0;

	if (!p || !(p->threads = calloc(n, sizeof(*p->threads)))) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->tail = &p->head;
	fs->pool = p;
	for (; p->n < n && !err; p->n++)
		err = start_thread(&p->threads[p->n], pool_main, p);
	if (err) {
		p->n--;
		pool_stop(fs);
	}
	return err;
}

/* ---- loop threads beyond the main one ------------------------------------------------- */

static void free_buf(void *arg)
{
	free(((struct fuse_buf *)arg)->mem);
}

/*
 * libfuse's session loop without its end-of-loop reset: a read of /dev/fuse is where the
 * thread may be cancelled once the main loop is over, a request is always answered
 * whole.
 */
static void *loop_main(void *arg)
{
	struct fuse_session *se = arg;
	struct fuse_buf buf = { 0 };
	int r;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_cleanup_push(free_buf, &buf);
	while (!fuse_session_exited(se)) {
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		r = fuse_session_receive_buf(se, &buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		fuse_session_process_buf(se, &buf);
	}
	pthread_cleanup_pop(1);
	return NULL;
}

/* ---- serving ------------------------------------------------------------------------ */

static int serve_libfuse_mt(struct fuse_session *se, const struct fs_loop_options *o)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int ret;

	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, o->clone_fd);
	if (o->max_idle_threads)
		fuse_loop_cfg_set_idle_threads(lc, o->max_idle_threads);
	fuse_loop_cfg_set_max_threads(lc, o->max_threads);
	ret = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return ret;
}

int fs_serve(struct fs *fs, const struct fs_loop_options *o)
{
	struct fuse_session *se = fs->se;
	pthread_t *extra = NULL;
	unsigned n_extra = 0;
	int ret;

	if (o->libfuse_mt)
		return serve_libfuse_mt(se, o);
	if (!o->single) {
		if (pool_start(fs, o->pool_threads)) {
			log_err("cannot start the request pool's threads");
			return -ENOMEM;
		}
		if (o->loop_threads > 1 && !(extra = calloc(o->loop_threads - 1, sizeof(*extra))))
			log_warn("cannot allocate loop threads; serving with one");
		for (; extra && n_extra < o->loop_threads - 1; n_extra++) {
			if (start_thread(&extra[n_extra], loop_main, se)) {
				log_warn("started %u of %u loop threads", n_extra + 1,
					 o->loop_threads);
				break;
			}
		}
	}
	ret = fuse_session_loop(se);
	/* The others are blocked in a read of /dev/fuse (a cancellation point) or finish
	 * the request they hold and then see the session ended. */
	fuse_session_exit(se);
	for (unsigned i = 0; i < n_extra; i++)
		pthread_cancel(extra[i]);
	for (unsigned i = 0; i < n_extra; i++)
		pthread_join(extra[i], NULL);
	free(extra);
	pool_stop(fs);
	return ret;
}

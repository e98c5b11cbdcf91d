/* SPDX-License-Identifier: MIT */
/*
 * supervise.c - the supervisor: the process that mounts, keeps /dev/fuse and starts the
 * workers that serve it, one after another (fs layer; supervise.h says why).
 *
 * The kernel's first message on a new connection is always INIT.  The supervisor reads
 * it and keeps its bytes; every worker hands them to its own libfuse session, so each
 * one starts initialised, and only the first one's answer reaches the kernel
 * (worker.c).  When waitpid() reports a worker dead (whatever killed it), every request
 * it had read but not answered is parked in the kernel: the supervisor writes
 * FUSE_NOTIFY_RESEND, which puts them back in the queue (with bit 63 of their id set),
 * and only then forks the next worker, which recovers the store and answers them.  The
 * notification is sent even when the worker looked idle: a request can sit between its
 * read and the worker's death.  Sending it while a worker lives would duplicate
 * requests, so it is never sent then.
 *
 * The supervisor stays small and single-threaded: it holds the data dir's lock and the
 * shared memory (journals, counters), forwards SIGTERM, SIGINT and SIGHUP to the
 * worker, and ends when a worker ends cleanly (the mount was unmounted or the daemon
 * was told to stop).  Workers die with it (PR_SET_PDEATHSIG): if the supervisor itself
 * dies, the mount is dead, as a single-process daemon's is.  Without FUSE_HAS_RESEND
 * in the kernel's INIT there is nothing to restart into: a worker's death ends the
 * mount, and the log says so at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "supervise.h"

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7 /* kernel 6.9, protocol 7.40: Debian 12's headers stop at 7.38 */
#endif
#define SUP_HAS_RESEND (1ull << 39) /* FUSE_HAS_RESEND in INIT's flags (flags2 bit 7) */
#define SUP_INIT_EXT (1u << 30)
#define NODE_HALF (256ull << 20)
#define HANDLE_HALF (32ull << 20)
#define TXN_HALF (1ull << 30) /* staged values are in it: sparse, used as written */
#define FAST_FAILS 5 /* workers in a row that die before serving: give up */

static volatile sig_atomic_t worker_pid;
/* A worker's copy of the supervisor's session (fork): kept, never destroyed, since
 * fuse_session_destroy() would close the /dev/fuse descriptor the worker serves.  Held
 * here so LeakSanitizer sees it reachable when a worker exits: a leak report would
 * change its exit status and the supervisor would take a clean stop for a death. */
static struct fuse_session *inherited_se;
static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	pid_t p = worker_pid;

	if (sig != SIGHUP)
		stop_sig = sig;
	if (p > 0)
		kill(p, sig);
	if (sig == SIGHUP)
		log_reopen();
}

static void set_handlers(void (*fn)(int))
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa = { .sa_handler = fn, .sa_flags = fn == SIG_DFL ? 0 : SA_RESTART };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static struct sup_shared *shared_new(unsigned char **base_out)
{
	size_t page = 4096, size = page + 2 * NODE_HALF + 2 * HANDLE_HALF + 2 * TXN_HALF;
	int fd = memfd_create("statehouse-supervisor", MFD_CLOEXEC);
	unsigned char *base;
	struct sup_shared *sh;

	if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
		log_err("cannot create the supervisor's shared memory: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	close(fd);
	if (base == MAP_FAILED) {
		log_err("cannot map the supervisor's shared memory: %s", strerror(errno));
		return NULL;
	}
	sh = (struct sup_shared *)base;
	sh->magic = SUP_MAGIC;
	if (getrandom(&sh->instance, sizeof(sh->instance), 0) != sizeof(sh->instance))
		sh->instance = (uint64_t)clock_now_ns(CLOCK_REALTIME) ^ (uint64_t)getpid() << 32;
	sh->instance |= 1; /* never 0: 0 means "no record" */
	sh->supervisor_pid = getpid();
	sh->nodes.off = page;
	sh->nodes.half = NODE_HALF;
	sh->handles.off = page + 2 * NODE_HALF;
	sh->handles.half = HANDLE_HALF;
	sh->txns.off = page + 2 * NODE_HALF + 2 * HANDLE_HALF;
	sh->txns.half = TXN_HALF;
	*base_out = base;
	return sh;
}

/* Read the kernel's INIT into sh->init.  0, or -1 (logged). */
static int read_init(int fd, struct sup_shared *sh, bool *resend)
{
	static unsigned char buf[1 << 17];
	const struct fuse_in_header *h = (const void *)buf;
	const struct fuse_init_in *in = (const void *)(h + 1);
	ssize_t n;

	do
		n = read(fd, buf, sizeof(buf));
	while (n < 0 && (errno == EINTR || errno == EAGAIN) && !stop_sig);
	if (n < 0 || (size_t)n < sizeof(*h) + offsetof(struct fuse_init_in, flags2)) {
		log_err("cannot read the kernel's first message: %s",
			n < 0 ? strerror(errno) : "too short");
		return -1;
	}
	if (h->opcode != FUSE_INIT || (size_t)n > sizeof(sh->init)) {
		log_err("the kernel's first message is not INIT (opcode %u)", h->opcode);
		return -1;
	}
	memcpy(sh->init, buf, (size_t)n);
	sh->init_len = (uint32_t)n;
	*resend = in->major == 7 && in->minor >= 36 && (in->flags & SUP_INIT_EXT) &&
		  ((uint64_t)in->flags2 << 32 & SUP_HAS_RESEND);
	return 0;
}

static int send_resend(int fd)
{
	struct fuse_out_header oh = { .len = sizeof(oh), .error = FUSE_NOTIFY_RESEND,
				      .unique = 0 };
	ssize_t n = write(fd, &oh, sizeof(oh));

	if (n != (ssize_t)sizeof(oh)) {
		log_err("cannot ask the kernel to resend the dead worker's requests: %s",
			n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

/* Wait for the worker to say it serves (1) or to die first (0, *status set). */
static int wait_ready(pid_t pid, int rfd, int *status)
{
	char c;
	ssize_t n;

	do
		n = read(rfd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		return 1;
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static void describe(int status, char *buf, size_t cap)
{
	if (WIFSIGNALED(status))
		snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
}

/* In the child: become a worker.  Returns 0 (the caller returns it from sup_run). */
static int become_worker(pid_t sup, int fd, struct sup_shared *sh, unsigned char *base,
			 bool restarted, int wfd, struct sup_worker *w)
{
	set_handlers(SIG_DFL);
	/* A worker never outlives its supervisor: the mount dies with the supervisor. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != sup)
		_exit(1);
	*w = (struct sup_worker){ .fd = fd, .sh = sh, .base = base, .restarted = restarted,
				  .ready_fd = wfd };
	return 0;
}

int sup_run(const struct sup_config *sc, struct sup_worker *w, int *status)
{
	static const struct fuse_lowlevel_ops none;
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct sup_shared *sh;
	unsigned char *base = NULL;
	bool resend = false, served = false;
	unsigned fast_fails = 0;
	int fd, ret = -1;

	*status = 1;
	if (!(sh = shared_new(&base)))
		return -1;
	for (int i = 0; i < sc->args->argc; i++)
		if (fuse_opt_add_arg(&copy, sc->args->argv[i]))
			goto out;
	se = fuse_session_new(&copy, &none, sizeof(none), NULL);
	if (!se) {
		log_err("cannot start a FUSE session (see the message above)");
		goto out;
	}
	set_handlers(on_signal);
	if (fuse_session_mount(se, sc->mountpoint) != 0) {
		log_err("cannot mount on '%s'", sc->mountpoint);
		goto out;
	}
	fd = fuse_session_fd(se);
	if (read_init(fd, sh, &resend))
		goto out_unmount;
	if (!resend)
		log_warn("this kernel cannot resend a dead worker's requests (FUSE_HAS_RESEND, "
			 "Linux 6.9): if the serving process dies, the mount dies with it");
	ret = 1;
	for (bool first = true; !stop_sig; first = false) {
		int pfd[2], st = 0;
		pid_t pid;
		char why[96];
		int64_t t0 = clock_now_ns(CLOCK_MONOTONIC);

		if (pipe2(pfd, O_CLOEXEC) != 0) {
			log_err("cannot create a pipe: %s", strerror(errno));
			break;
		}
		pid = fork();
		if (pid < 0) {
			log_err("cannot start a worker: %s", strerror(errno));
			close(pfd[0]);
			close(pfd[1]);
			break;
		}
		if (pid == 0) {
			close(pfd[0]);
			fuse_opt_free_args(&copy);
			inherited_se = se;
			return become_worker(sh->supervisor_pid, fd, sh, base, !first, pfd[1], w);
		}
		worker_pid = pid;
		close(pfd[1]);
		if (wait_ready(pid, pfd[0], &st)) {
			close(pfd[0]);
			fast_fails = 0;
			if (!served && sc->live)
				sc->live(sc->live_arg);
			served = true;
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
		} else {
			close(pfd[0]);
			fast_fails++;
		}
		worker_pid = 0;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			*status = 0; /* unmounted, or told to stop */
			break;
		}
		if (!served) {
			*status = 1; /* the first worker could not start: it said why */
			break;
		}
		describe(st, why, sizeof(why));
		atomic_store(&sh->death_ns, clock_now_ns(CLOCK_MONOTONIC));
		if (stop_sig) {
			log_warn("the worker (pid %d) %s while stopping", (int)pid, why);
			break;
		}
		if (!resend || atomic_load(&sh->nodes.lost) || atomic_load(&sh->handles.lost)) {
			log_err("the worker (pid %d) %s; the mount cannot be kept%s", (int)pid, why,
				resend ? " (a journal was full)" : "");
			break;
		}
		if (fast_fails >= FAST_FAILS) {
			log_err("%u workers in a row died before serving; giving up", fast_fails);
			break;
		}
		log_warn("the worker (pid %d) %s after %.1f s; starting another one", (int)pid,
			 why, (double)(clock_now_ns(CLOCK_MONOTONIC) - t0) / 1e9);
		if (send_resend(fd))
			break;
		atomic_fetch_add(&sh->restarts, 1);
		if (fast_fails > 1)
			usleep(100000u << (fast_fails > 4 ? 4 : fast_fails)); /* back off */
	}
out_unmount:
	fuse_session_unmount(se);
out:
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&copy);
	return ret;
}

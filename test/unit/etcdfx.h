/* SPDX-License-Identifier: MIT */
/*
 * etcdfx.h - a real etcd for the unit tests (tests): start Debian's /usr/bin/etcd on
 * free loopback ports with its data under $TMPDIR, wait until it has a leader, stop,
 * continue, kill and restart it, and remove everything at the end.
 *
 * The child dies with the thread that started it (PR_SET_PDEATHSIG), so an aborted test
 * leaves no etcd behind; start members from the test's main thread.
 */
#ifndef STATEHOUSE_ETCDFX_H
#define STATEHOUSE_ETCDFX_H

#include <stdbool.h>
#include <sys/types.h>

#define ETCDFX_BIN "/usr/bin/etcd"
#define ETCDFX_CTL "/usr/bin/etcdctl"
#define ETCDFX_MAX_ARGS 16

struct etcdfx {
	pid_t pid;          /* 0: not running */
	char *dir;          /* scratch directory: data/ and etcd.log */
	char name[16];
	int port, peer_port;
	char endpoint[32];  /* "127.0.0.1:<port>" */
	char cluster[512];  /* --initial-cluster */
	const char *extra[ETCDFX_MAX_ARGS];
	int n_extra;
	/* TLS (set before starting; all NULL: plain http): the CA the tests trust, and the
	 * client's certificate and key that etcdfx_wait_ready() uses */
	const char *cacert, *cert, *key;
};

/* Whether etcd (Debian etcd-server) is installed; if not, print which package to install
 * and return false: the caller fails (CI installs it; a skip would fail there anyway). */
bool etcdfx_installed(void);
/* The same for etcdctl (Debian etcd-client). */
bool etcdfx_ctl_installed(void);
/* The same for openssl (Debian openssl). */
bool etcdfx_openssl_installed(void);
/*
 * Make a CA and certificates signed by it in dir with openssl: ca.pem, server.pem and
 * server.key (for 127.0.0.1), client.pem and client.key, and a second CA other-ca.pem
 * that signed nothing here.  0 or -1 (openssl's output printed).
 */
int etcdfx_make_certs(const char *dir);
/* A TCP port of 127.0.0.1 that nothing listens on now; -1 on failure. */
int etcdfx_free_port(void);

/*
 * A member called name on a free client port and peer_port (0: a free one too), alone in
 * its cluster (cluster NULL) or one of the "name=http://127.0.0.1:<peer>,..." given;
 * extra: more etcd arguments (NULL-terminated, kept by pointer).  Makes the scratch
 * directory; starts nothing.  0 or -1.
 */
int etcdfx_init(struct etcdfx *e, const char *name, int peer_port, const char *cluster,
		const char *const *extra);
/* Start the member (again, on its data: a restart) on port; 0 or -1. */
int etcdfx_start_on(struct etcdfx *e, int port);
static inline int etcdfx_start(struct etcdfx *e)
{
	return etcdfx_start_on(e, e->port);
}
/* Wait until the member at endpoint answers and knows a leader (up to seconds); 0 or
 * -1 with the end of its log printed. */
int etcdfx_wait_ready(struct etcdfx *e, const char *endpoint, int seconds);
/* A member alone in its cluster, started and ready (a group setup): 0 or -1, after
 * saying why (a missing etcd names its package). */
int etcdfx_single(struct etcdfx *e, const char *name);
/* Send sig (SIGSTOP, SIGCONT, ...) to the running member. */
void etcdfx_signal(struct etcdfx *e, int sig);
/* SIGKILL the member and reap it (its data stays). */
void etcdfx_kill(struct etcdfx *e);
/* Kill it and remove its directory. */
void etcdfx_release(struct etcdfx *e);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * etcdfx.c - start, signal and remove real etcd members for the unit tests (tests).
 */
#include "etcdfx.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd_client.h"
#include "testutil.h"

bool etcdfx_installed(void)
{
	if (access(ETCDFX_BIN, X_OK) == 0)
		return true;
	print_error("%s is missing: install the Debian package etcd-server "
		    "(scripts/debian-packages lists it)\n", ETCDFX_BIN);
	return false;
}

bool etcdfx_ctl_installed(void)
{
	if (access(ETCDFX_CTL, X_OK) == 0)
		return true;
	print_error("%s is missing: install the Debian package etcd-client "
		    "(scripts/debian-packages lists it)\n", ETCDFX_CTL);
	return false;
}

bool etcdfx_openssl_installed(void)
{
	if (access("/usr/bin/openssl", X_OK) == 0)
		return true;
	print_error("/usr/bin/openssl is missing: install the Debian package openssl "
		    "(scripts/debian-packages lists it)\n");
	return false;
}

/* EC keys: quick to make; one day is longer than any test.  The server's certificate
 * serves as a client's too: etcd's gateway presents it to etcd's own gRPC server, which
 * --client-cert-auth makes check it. */
#define CERTS_SCRIPT                                                                      \
	"set -e; exec 2>&1; cd '%s';"                                                     \
	"k='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';"                    \
	"for ca in ca other-ca; do"                                                       \
	" openssl req -x509 $k -keyout $ca.key -out $ca.pem -days 1 -subj /CN=$ca; done;" \
	"printf 'subjectAltName=IP:127.0.0.1\\n' >server.ext;"                           \
	"printf 'extendedKeyUsage=serverAuth,clientAuth\\n' >>server.ext;"               \
	"printf 'extendedKeyUsage=clientAuth\\n' >client.ext;"                            \
	"for who in server client; do"                                                    \
	" openssl req $k -keyout $who.key -out $who.csr -subj /CN=$who;"                  \
	" openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial"        \
	"  -out $who.pem -days 1 -extfile $who.ext; done"

int etcdfx_make_certs(const char *dir)
{
	char cmd[sizeof(CERTS_SCRIPT) + 4096], *out;
	int st = -1;

	snprintf(cmd, sizeof(cmd), CERTS_SCRIPT, dir);
	out = tu_run(cmd, &st);
	if (st != 0)
		print_error("cannot make certificates: %s\n", out ? out : "");
	free(out);
	return st == 0 ? 0 : -1;
}

int etcdfx_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

int etcdfx_init(struct etcdfx *e, const char *name, int peer_port, const char *cluster,
		const char *const *extra)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->port = etcdfx_free_port();
	e->peer_port = peer_port ? peer_port : etcdfx_free_port();
	if (e->port < 0 || e->peer_port < 0 || !(e->dir = tu_mkdtemp()))
		return -1;
	snprintf(e->endpoint, sizeof(e->endpoint), "127.0.0.1:%d", e->port);
	if (cluster)
		snprintf(e->cluster, sizeof(e->cluster), "%s", cluster);
	else
		snprintf(e->cluster, sizeof(e->cluster), "%s=http://127.0.0.1:%d", name,
			 e->peer_port);
	for (; extra && extra[e->n_extra] && e->n_extra < ETCDFX_MAX_ARGS; e->n_extra++)
		e->extra[e->n_extra] = extra[e->n_extra];
	return 0;
}

int etcdfx_start_on(struct etcdfx *e, int port)
{
	char data[4096], logf[4096], client[64], peer[64], certs[4096], keyf[4096];
	const char *argv[24 + ETCDFX_MAX_ARGS];
	pid_t parent = getpid();
	int n = 0;

	snprintf(data, sizeof(data), "%s/data", e->dir);
	snprintf(logf, sizeof(logf), "%s/etcd.log", e->dir);
	snprintf(client, sizeof(client), "%s://127.0.0.1:%d", e->cacert ? "https" : "http", port);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", e->peer_port);
	argv[n++] = ETCDFX_BIN;
	argv[n++] = "--name";
	argv[n++] = e->name;
	argv[n++] = "--data-dir";
	argv[n++] = data;
	argv[n++] = "--listen-client-urls";
	argv[n++] = client;
	argv[n++] = "--advertise-client-urls";
	argv[n++] = client;
	argv[n++] = "--listen-peer-urls";
	argv[n++] = peer;
	argv[n++] = "--initial-advertise-peer-urls";
	argv[n++] = peer;
	argv[n++] = "--initial-cluster";
	argv[n++] = e->cluster;
	for (int i = 0; i < e->n_extra; i++)
		argv[n++] = e->extra[i];
	if (e->cacert) {
		snprintf(certs, sizeof(certs), "%s/server.pem", e->dir);
		snprintf(keyf, sizeof(keyf), "%s/server.key", e->dir);
		argv[n++] = "--cert-file";
		argv[n++] = certs;
		argv[n++] = "--key-file";
		argv[n++] = keyf;
		argv[n++] = "--client-cert-auth";
		argv[n++] = "--trusted-ca-file";
		argv[n++] = e->cacert;
	}
	argv[n] = NULL;

	fflush(NULL);
	e->pid = fork();
	if (e->pid < 0) {
		e->pid = 0;
		return -1;
	}
	if (e->pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* never outlive the test, even one that crashed */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(ETCDFX_BIN, (char *const *)argv);
		_exit(127);
	}
	return 0;
}

static void print_log_tail(const struct etcdfx *e)
{
	char cmd[4200], *out;
	int st;

	snprintf(cmd, sizeof(cmd), "tail -n 15 '%s/etcd.log' 2>&1", e->dir);
	out = tu_run(cmd, &st);
	print_error("etcd '%s' log ends:\n%s\n", e->name, out ? out : "(unreadable)");
	free(out);
}

int etcdfx_wait_ready(struct etcdfx *e, const char *endpoint, int seconds)
{
	const char *eps[] = { endpoint ? endpoint : e->endpoint };
	struct etcd_config cfg = { .endpoints = eps, .n_endpoints = 1, .timeout_ms = 1000,
				   .cacert = e->cacert, .cert = e->cert, .key = e->key };
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	time_t until = time(NULL) + seconds;
	struct etcd_client *c;
	int st;

	if (etcd_open(&cfg, &c) != 0)
		return -1;
	while (time(NULL) < until) {
		struct etcd_status s;

		if (e->pid && waitpid(e->pid, &st, WNOHANG) == e->pid) {
			e->pid = 0;
			print_error("etcd '%s' exited while starting\n", e->name);
			break;
		}
		if (etcd_status(c, &s) == 0 && s.leader != 0) {
			etcd_close(c);
			return 0;
		}
		nanosleep(&pause, NULL);
	}
	etcd_close(c);
	print_error("etcd '%s' at %s did not get ready in %d s\n", e->name, eps[0], seconds);
	print_log_tail(e);
	return -1;
}

void etcdfx_signal(struct etcdfx *e, int sig)
{
	if (e->pid)
		kill(e->pid, sig);
}

void etcdfx_kill(struct etcdfx *e)
{
	if (!e->pid)
		return;
	kill(e->pid, SIGKILL);
	kill(e->pid, SIGCONT);
	while (waitpid(e->pid, NULL, 0) < 0 && errno == EINTR)
		;
	e->pid = 0;
}

void etcdfx_release(struct etcdfx *e)
{
	etcdfx_kill(e);
	if (e->dir) {
		tu_rmtree(e->dir);
		free(e->dir);
		e->dir = NULL;
	}
}

int etcdfx_single(struct etcdfx *e, const char *name)
{
	if (!etcdfx_installed())
		return -1;
	if (etcdfx_init(e, name, 0, NULL, NULL) || etcdfx_start(e) ||
	    etcdfx_wait_ready(e, e->endpoint, 30))
		return -1;
	return 0;
}

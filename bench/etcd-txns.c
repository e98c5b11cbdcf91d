/* SPDX-License-Identifier: MIT */
/*
 * etcd-txns: what one etcd transaction costs through store/etcd_client.h, shaped as the
 * etcd backend commits: compare the head key's mod_revision with the one last seen, put
 * K records e/<n> and the head, else range over the records after the head (the Else
 * branch).  T threads each run their own head (no contention) for N transactions and
 * print the transactions and records per second, and the round trip's p50 and p99.
 *
 * usage: build/etcd-txns -e HOST:PORT [-n TXNS] [-k PUTS] [-t THREADS] [-b VALUE_BYTES]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "etcd_client.h"

static struct etcd_client *client;
static long n_txns = 2000, k_puts = 1, value_bytes = 100;

struct worker {
	pthread_t thread;
	int id;
	double *lat_ms;
	int err;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	struct worker *wk = arg;
	char head[64], (*keys)[64] = calloc((size_t)k_puts, sizeof(*keys));
	char *value = malloc((size_t)value_bytes);
	struct etcd_op *ops = calloc((size_t)k_puts + 1, sizeof(*ops));
	struct etcd_range_result r;
	int64_t mod = 0, n = 0;

	if (!keys || !value || !ops) {
		wk->err = -ENOMEM;
		goto out;
	}
	memset(value, 'v', (size_t)value_bytes);
	snprintf(head, sizeof(head), "bench/%d/%d/head", getpid(), wk->id);
	if ((wk->err = etcd_put(client, head, strlen(head), "0", 1)) < 0 ||
	    (wk->err = etcd_range(client, head, strlen(head), NULL, 0, 0, &r)) < 0)
		goto out;
	mod = r.kvs[0].mod_revision;
	etcd_range_free(&r);
	for (long i = 0; i < n_txns; i++) {
		struct etcd_compare cmp = { .key = head, .key_len = strlen(head),
					    .target = ETCD_CMP_MOD, .num = mod };
		struct etcd_op miss = { .kind = ETCD_OP_RANGE, .key = head,
					.key_len = strlen(head) };
		struct etcd_txn_result t;
		double t0;

		for (long j = 0; j < k_puts; j++) {
			snprintf(keys[j], sizeof(keys[j]), "bench/%d/%d/e/%020" PRId64, getpid(),
				 wk->id, ++n);
			ops[j] = (struct etcd_op){ .kind = ETCD_OP_PUT, .key = keys[j],
						   .key_len = strlen(keys[j]), .value = value,
						   .value_len = (size_t)value_bytes };
		}
		ops[k_puts] = (struct etcd_op){ .kind = ETCD_OP_PUT, .key = head,
						.key_len = strlen(head), .value = keys[k_puts - 1],
						.value_len = strlen(keys[k_puts - 1]) };
		t0 = now_s();
		wk->err = etcd_txn(client, &cmp, 1, ops, (size_t)k_puts + 1, &miss, 1, &t);
		wk->lat_ms[i] = (now_s() - t0) * 1000;
		if (wk->err < 0)
			goto out;
		if (!t.succeeded) {
			fprintf(stderr, "etcd-txns: the head moved under thread %d\n", wk->id);
			wk->err = -ESTALE;
			etcd_txn_free(&t);
			goto out;
		}
		mod = t.revision;
		etcd_txn_free(&t);
	}
out:
	free(keys);
	free(value);
	free(ops);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *ep = NULL;
	long threads = 1;
	struct worker *wk;
	double t0, secs, *all;
	int opt;

	while ((opt = getopt(argc, argv, "e:n:k:t:b:")) != -1) {
		switch (opt) {
		case 'e': ep = optarg; break;
		case 'n': n_txns = atol(optarg); break;
		case 'k': k_puts = atol(optarg); break;
		case 't': threads = atol(optarg); break;
		case 'b': value_bytes = atol(optarg); break;
		default: ep = NULL; optind = argc; break;
		}
	}
	if (!ep || n_txns < 1 || k_puts < 1 || threads < 1 || value_bytes < 1) {
		fprintf(stderr, "usage: %s -e HOST:PORT [-n TXNS] [-k PUTS] [-t THREADS] "
				"[-b VALUE_BYTES]\n", argv[0]);
		return 2;
	}
	struct etcd_config cfg = { .endpoints = &ep, .n_endpoints = 1 };
	if (etcd_open(&cfg, &client) < 0)
		return 1;
	wk = calloc((size_t)threads, sizeof(*wk));
	all = calloc((size_t)(threads * n_txns), sizeof(*all));
	if (!wk || !all)
		return 1;
	t0 = now_s();
	for (long i = 0; i < threads; i++) {
		wk[i].id = (int)i;
		wk[i].lat_ms = all + i * n_txns;
		pthread_create(&wk[i].thread, NULL, run, &wk[i]);
	}
	for (long i = 0; i < threads; i++) {
		pthread_join(wk[i].thread, NULL);
		if (wk[i].err < 0) {
			fprintf(stderr, "etcd-txns: thread %ld failed: %s\n", i, strerror(-wk[i].err));
			return 1;
		}
	}
	secs = now_s() - t0;
	qsort(all, (size_t)(threads * n_txns), sizeof(*all), cmp_double);
	printf("threads %ld, puts/txn %ld, value %ld B: %.0f txns/s, %.0f records/s, "
	       "round trip p50 %.2f ms p99 %.2f ms\n",
	       threads, k_puts, value_bytes, (double)(threads * n_txns) / secs,
	       (double)(threads * n_txns * k_puts) / secs, all[threads * n_txns / 2],
	       all[threads * n_txns * 99 / 100]);
	etcd_close(client);
	free(wk);
	free(all);
	return 0;
}

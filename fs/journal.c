/* SPDX-License-Identifier: MIT */
/*
 * journal.c - append-only journals in the memory the supervisor shares with its workers
 * (fs layer): what a worker's death must not lose of what the kernel holds.
 *
 * A journal is two halves of a region of the shared memory file.  Records go to the end
 * of the active half; the length is stored after the record's bytes, so a worker killed
 * in the middle of an append leaves the record out, never half of it.  When the active
 * half has grown to 4 times what its last compaction wrote (at least 4 MiB), its owner
 * writes the whole state to the other half and then flips `active` (one store): a
 * worker killed during a compaction leaves the old half, complete.  The freed half's
 * pages go back to the system (the memory file is sparse).  Appends are serialised by
 * the owner's lock (the inode table's, the handle journal's).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <string.h>

#include "log.h"
#include "supervise.h"

#define JMIN_COMPACT (4u << 20)

static size_t rec_size(size_t n)
{
	return (sizeof(struct sup_rec) + n + 7) & ~(size_t)7;
}

static int put_at(struct fs_journal *j, unsigned half, unsigned kind, uint64_t a, uint64_t b,
		  const void *bytes, size_t n)
{
	struct sup_region *r = j->r;
	uint64_t len = atomic_load_explicit(&r->len[half], memory_order_relaxed);
	size_t sz = rec_size(n);
	struct sup_rec *h;

	if (n > UINT32_MAX - 64)
		return -EINVAL;
	if (len + sz > r->half)
		return -ENOSPC;
	h = (struct sup_rec *)(j->base + r->off + half * r->half + len);
	h->len = (uint32_t)sz;
	h->kind = kind;
	h->n = (uint32_t)n;
	h->pad = 0;
	h->a = a;
	h->b = b;
	if (n)
		memcpy(h + 1, bytes, n);
	atomic_store_explicit(&r->len[half], len + sz, memory_order_release);
	return 0;
}

int fs_jput(struct fs_journal *j, unsigned kind, uint64_t a, uint64_t b, const void *bytes,
	    size_t n)
{
	return put_at(j, atomic_load_explicit(&j->r->active, memory_order_relaxed), kind, a, b,
		      bytes, n);
}

bool fs_jwants_compact(const struct fs_journal *j)
{
	const struct sup_region *r = j->r;
	uint64_t len = atomic_load_explicit(&r->len[atomic_load(&r->active)],
					    memory_order_relaxed);
	uint64_t limit = r->compacted * 4;

	if (limit < JMIN_COMPACT)
		limit = JMIN_COMPACT;
	if (limit > r->half - r->half / 8)
		limit = r->half - r->half / 8;
	return len >= limit;
}

void fs_jcompact_begin(struct fs_journal *j)
{
	unsigned other = 1 - atomic_load(&j->r->active);

	atomic_store(&j->r->len[other], 0);
}

int fs_jcompact_put(struct fs_journal *j, unsigned kind, uint64_t a, uint64_t b,
		    const void *bytes, size_t n)
{
	return put_at(j, 1 - atomic_load(&j->r->active), kind, a, b, bytes, n);
}

void fs_jcompact_end(struct fs_journal *j)
{
	struct sup_region *r = j->r;
	unsigned old = atomic_load(&r->active);

	r->compacted = atomic_load(&r->len[1 - old]);
	atomic_store_explicit(&r->active, 1 - old, memory_order_release);
	atomic_store(&r->len[old], 0);
	/* The old half's pages are garbage now: give them back. */
	(void)madvise(j->base + r->off + old * r->half, r->half, MADV_REMOVE);
}

int fs_jeach(const struct fs_journal *j,
	     int (*fn)(void *arg, const struct sup_rec *r, const void *bytes), void *arg)
{
	const struct sup_region *r = j->r;
	unsigned half = atomic_load_explicit(&r->active, memory_order_acquire);
	uint64_t len = atomic_load_explicit(&r->len[half], memory_order_acquire);
	const unsigned char *p = j->base + r->off + half * r->half;

	for (uint64_t off = 0; off + sizeof(struct sup_rec) <= len;) {
		const struct sup_rec *h = (const struct sup_rec *)(p + off);
		int err;

		if (h->len < sizeof(*h) || h->n > h->len - sizeof(*h) || off + h->len > len)
			return -EIO;
		err = fn(arg, h, h + 1);
		if (err)
			return err;
		off += h->len;
	}
	return 0;
}

void fs_jlose(struct fs_journal *j, const char *what)
{
	if (!atomic_exchange(&j->r->lost, 1))
		log_err("the %s journal is full: if this worker dies, the mount dies with it "
			"(clients see ENOTCONN until the daemon is started again)", what);
}

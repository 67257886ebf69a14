// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: per-CPU record rings.
 *
 * A ring is a consumer page, a producer page and ring_size bytes of data.
 * The data pages are mapped twice in a row, in the kernel (vmap) and in user
 * space (mmap), so that a record is always contiguous in memory even where
 * it wraps: the producer writes it in one go and the consumer hands a whole
 * run of records to copy_to_user() or write() in one call.
 *
 * Positions are u64 byte counts.  The producer publishes producer_pos with
 * smp_store_release() after writing a record and reads consumer_pos with
 * smp_load_acquire(); the consumer does the mirror image.  A consumer_pos
 * that a user space reader corrupted can make the producer drop (the ring
 * looks full) but never write outside the data area.
 */
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "mgcap.h"

static enum hrtimer_restart mgcap_ring_timer_fn(struct hrtimer *timer)
{
	struct mgcap_ring *ring = container_of(timer, struct mgcap_ring,
					       wakeup_timer);

	/* runs on the ring's CPU (the timer is pinned), after the records the
	 * producer published before it saw the timer armed; see hook.c
	 */
	WRITE_ONCE(ring->timer_armed, false);
	mgcap_ring_wake(ring);
	return HRTIMER_NORESTART;
}

/* wake the ring's readers and the unbound ones (cold paths and batched) */
void mgcap_ring_wake(struct mgcap_ring *ring)
{
	wake_up_interruptible(&ring->wq);
	wake_up_interruptible(&ring->cap->wq_any);
}

/* bytes of records the consumer has not taken yet */
u64 mgcap_ring_used(struct mgcap_ring *ring, u64 *cons_pos)
{
	u64 cons = READ_ONCE(ring->cons->consumer_pos);
	/* pairs with the producer's release: the records up to prod are written */
	u64 prod = smp_load_acquire(&ring->prod->producer_pos);

	if (cons_pos)
		*cons_pos = cons;
	return prod - cons;
}

bool mgcap_ring_empty(struct mgcap_ring *ring)
{
	return mgcap_ring_used(ring, NULL) == 0;
}

struct mgcap_ring *mgcap_ring_create(struct mgcap_capture *cap,
				     unsigned int cpu, u32 ring_size)
{
	unsigned int nr_data = ring_size >> PAGE_SHIFT;
	unsigned int nr_pages = 2 + nr_data;
	struct page **map = NULL;
	struct mgcap_ring *ring;
	unsigned int i;
	int node = cpu_to_node(cpu);

	ring = kzalloc_node(sizeof(*ring), GFP_KERNEL_ACCOUNT, node);
	if (!ring)
		return NULL;
	ring->cap = cap;
	ring->cpu = cpu;
	ring->mask = ring_size - 1;
	mutex_init(&ring->consumer_lock);
	init_waitqueue_head(&ring->wq);
	u64_stats_init(&ring->syncp);
	hrtimer_init(&ring->wakeup_timer, CLOCK_MONOTONIC,
		     HRTIMER_MODE_REL_PINNED);
	ring->wakeup_timer.function = mgcap_ring_timer_fn;

	ring->pages = kvcalloc(nr_pages, sizeof(*ring->pages),
			       GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL);
	if (!ring->pages)
		goto err;
	for (i = 0; i < nr_pages; i++) {
		/* charged to the caller's memcg; ENOMEM, not the OOM killer */
		ring->pages[i] = alloc_pages_node(node, GFP_KERNEL_ACCOUNT |
						  __GFP_ZERO | __GFP_NOWARN |
						  __GFP_RETRY_MAYFAIL, 0);
		if (!ring->pages[i])
			goto err;
		ring->nr_pages++;
		if (fatal_signal_pending(current))
			goto err;
		cond_resched();
	}

	/* consumer page, producer page, data, data again */
	map = kvcalloc(2 + 2 * nr_data, sizeof(*map),
		       GFP_KERNEL | __GFP_RETRY_MAYFAIL);
	if (!map)
		goto err;
	map[0] = ring->pages[0];
	map[1] = ring->pages[1];
	for (i = 0; i < nr_data; i++) {
		map[2 + i] = ring->pages[2 + i];
		map[2 + nr_data + i] = ring->pages[2 + i];
	}
	ring->area = vmap(map, 2 + 2 * nr_data, VM_MAP | VM_USERMAP,
			  PAGE_KERNEL);
	kvfree(map);
	if (!ring->area)
		goto err;

	ring->cons = ring->area;
	ring->prod = ring->area + PAGE_SIZE;
	ring->data = ring->area + 2 * PAGE_SIZE;
	ring->prod->ring_size = ring_size;
	ring->prod->data_offset = 2 * PAGE_SIZE;
	ring->prod->cpu = cpu;
	return ring;

err:
	mgcap_ring_destroy(ring);
	return NULL;
}

/* called once no producer, timer or reader can touch the ring any more */
void mgcap_ring_destroy(struct mgcap_ring *ring)
{
	unsigned int i;

	if (!ring)
		return;
	if (ring->area)
		vunmap(ring->area);
	for (i = 0; i < ring->nr_pages; i++)
		__free_page(ring->pages[i]);
	kvfree(ring->pages);
	mutex_destroy(&ring->consumer_lock);
	kfree(ring);
}

void mgcap_ring_stats_add(struct mgcap_ring *ring, struct mgcap_stats *sum)
{
	const struct mgcap_producer_page *p = ring->prod;
	struct mgcap_stats s;
	unsigned int start;

	do {
		start = u64_stats_fetch_begin(&ring->syncp);
		s.seen_packets = READ_ONCE(p->seen_packets);
		s.seen_bytes = READ_ONCE(p->seen_bytes);
		s.captured_packets = READ_ONCE(p->captured_packets);
		s.captured_bytes = READ_ONCE(p->captured_bytes);
		s.ring_full_drops = READ_ONCE(p->ring_full_drops);
		s.consumed_packets = READ_ONCE(p->consumed_packets);
		s.copy_errors = READ_ONCE(p->copy_errors);
		s.hw_stamped_packets = READ_ONCE(p->hw_stamped_packets);
		s.filtered_packets = READ_ONCE(p->filtered_packets);
	} while (u64_stats_fetch_retry(&ring->syncp, start));

	sum->seen_packets += s.seen_packets;
	sum->seen_bytes += s.seen_bytes;
	sum->captured_packets += s.captured_packets;
	sum->captured_bytes += s.captured_bytes;
	sum->ring_full_drops += s.ring_full_drops;
	sum->consumed_packets += s.consumed_packets;
	sum->copy_errors += s.copy_errors;
	sum->hw_stamped_packets += s.hw_stamped_packets;
	sum->filtered_packets += s.filtered_packets;
}

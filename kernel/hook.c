// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: the receive hook.
 *
 * mgcap_rx_handler() runs in the receive path of a captured device with
 * bottom halves off, so it is the only producer of its CPU's ring.  It never
 * writes the skb's bytes (it may be shared, e.g. by pktgen) and never
 * allocates.  A capture filter runs first: a frame it rejects costs no copy
 * and no ring space, and is counted in filtered_packets.  Drop mode consumes
 * every frame, rejected ones too: a capture appliance on a SPAN port wants
 * nothing of the port's traffic in its stack, and a filter chooses what is
 * recorded, not what the host receives.
 */
#include <linux/if_vlan.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <linux/timekeeping.h>

#include "mgcap.h"

/*
 * Copy caplen bytes of the frame starting at its link-layer header.  A VLAN
 * tag held in skb metadata goes back after the two MAC addresses.
 */
static int mgcap_copy_frame(const struct sk_buff *skb, int mac_off, u8 *to,
			    u32 caplen, bool vlan)
{
	u32 head, n;
	__be16 tag[2];

	if (!vlan)
		return skb_copy_bits(skb, mac_off, to, caplen);

	head = min_t(u32, caplen, 2 * ETH_ALEN);
	if (skb_copy_bits(skb, mac_off, to, head))
		return -EFAULT;
	if (caplen == head)
		return 0;
	tag[0] = skb->vlan_proto;
	tag[1] = htons(skb_vlan_tag_get(skb));
	n = min_t(u32, caplen - head, VLAN_HLEN);
	memcpy(to + head, tag, n);
	if (caplen == head + n)
		return 0;
	return skb_copy_bits(skb, mac_off + head, to + head + n,
			     caplen - head - n);
}

#ifdef MGCAP_HAVE_HWTSTAMP_NETDEV
/*
 * The driver (igc, for one) left a cookie in skb_hwtstamps() instead of the
 * stamp, for its ndo_get_tstamp() to turn into one: ask the device that
 * received the frame, found as net/socket.c finds it (by NAPI id), else the
 * device the hook runs on.  0 (no hardware stamp) when neither can answer:
 * the cookie is a kernel address, never a time.
 */
static ktime_t mgcap_netdev_tstamp(struct sk_buff *skb)
{
	struct net_device *dev = dev_get_by_napi_id(skb_napi_id(skb));

	if (!dev)
		dev = skb->dev;
	if (!dev->netdev_ops->ndo_get_tstamp)
		return 0;
	return netdev_get_tstamp(dev, skb_hwtstamps(skb), false);
}

static ktime_t mgcap_hwtstamp(struct sk_buff *skb)
{
	if (unlikely(skb_shinfo(skb)->tx_flags & SKBTX_HW_TSTAMP_NETDEV))
		return mgcap_netdev_tstamp(skb);
	return skb_hwtstamps(skb)->hwtstamp;
}
#else
static ktime_t mgcap_hwtstamp(struct sk_buff *skb)
{
	return skb_hwtstamps(skb)->hwtstamp;
}
#endif

/* the NIC's stamp if the frame has one (*hw set), else the real time clock */
static u64 mgcap_timestamp(struct sk_buff *skb, bool *hw_stamp)
{
	ktime_t hw = mgcap_hwtstamp(skb);

	*hw_stamp = hw != 0;
	return hw ? ktime_to_ns(hw) : ktime_get_real_ns();
}

/*
 * Batched wakeups without a barrier per record.  Every record is followed, in
 * this CPU's program order, by an armed wakeup timer: the producer arms it
 * when it is not armed, whether or not a reader sleeps now, and the timer is
 * pinned to this CPU, so that its callback runs after every record published
 * before the producer saw it armed.  The callback's wake_up() takes the wait
 * queue lock: a reader queued before is woken and sees the records, one that
 * queues itself after acquires the lock after them.  No record can wait
 * longer than wakeup_ns for a sleeping reader, and a flood costs one timer
 * per wakeup_ns per ring instead of a full barrier per record.
 *
 * Crossing the watermark wakes a sleeper at once; that check is the classic
 * one: a full barrier orders the producer_pos store before the wait queue
 * loads, pairing with set_current_state() in wait_event and the smp_mb() in
 * mgcap_poll().  It runs once per watermark, and if it misses a reader that
 * is just going to sleep, the armed timer still wakes it.
 */
static void mgcap_maybe_wake(struct mgcap_ring *ring, u64 used, u32 reclen)
{
	struct mgcap_capture *cap = ring->cap;

	/* timer_armed is only touched on this CPU: here and in the callback */
	if (!READ_ONCE(ring->timer_armed)) {
		WRITE_ONCE(ring->timer_armed, true);
		hrtimer_start(&ring->wakeup_timer, ns_to_ktime(cap->wakeup_ns),
			      HRTIMER_MODE_REL_PINNED);
	}
	if (likely(used >= cap->watermark || used + reclen < cap->watermark))
		return;
	/* order the producer_pos store before the wait queue loads */
	smp_mb();
	/* safe without the lock: the barrier above orders it, see wq_has_sleeper() */
	if (waitqueue_active(&ring->wq) || waitqueue_active(&cap->wq_any))
		mgcap_ring_wake(ring);
}

/*
 * A record starts at the device's link-layer header.  A device without one
 * (no header_ops->create: tun, ipip, sit, gre, ppp) has its network header
 * first, at skb->data, as AF_PACKET hands it out: the skb's mac header may
 * still point at the outer Ethernet header of a decapsulated packet, which
 * this device never received.
 */
rx_handler_result_t mgcap_rx_handler(struct sk_buff **pskb)
{
	struct sk_buff *skb = *pskb;
	struct mgcap_capture *cap = rcu_dereference(skb->dev->rx_handler_data);
	struct mgcap_ring *ring = cap->rings[smp_processor_id()];
	struct mgcap_producer_page *pp = ring->prod;
	int mac_off = cap->link_header && skb_mac_header_was_set(skb) ?
		      skb_mac_offset(skb) : 0;
	bool vlan = skb_vlan_tag_present(skb);
	u32 origlen = skb->len - mac_off + (vlan ? VLAN_HLEN : 0);
	u32 caplen = min(origlen, READ_ONCE(cap->snaplen));
	bool drop = READ_ONCE(cap->mode) == MGCAP_MODE_DROP;
	struct mgcap_filter *flt = rcu_dereference(cap->filter);
	u32 size = ring->mask + 1;
	u64 prod, cons, used = 0;
	struct mgcap_epb *epb;
	u32 reclen = 0;
	u64 ts;
	bool hw_stamp = false;
	bool filtered = false;
	bool full = false;
	int err = 0;

	if (flt) {
		u32 keep = mgcap_filter_run(flt, skb, mac_off);

		filtered = !keep;
		caplen = min(caplen, keep);
	}
	if (filtered)
		goto account;

	reclen = MGCAP_RECORD_LEN(caplen);
	prod = pp->producer_pos;
	/* pairs with the consumer's release: it is done with the bytes before cons */
	cons = smp_load_acquire(&ring->cons->consumer_pos);
	used = prod - cons;
	full = used > size || size - used < reclen;
	if (!full) {
		epb = (struct mgcap_epb *)(ring->data + (prod & ring->mask));
		err = mgcap_copy_frame(skb, mac_off, epb->frame, caplen, vlan);
		if (!err) {
			ts = mgcap_timestamp(skb, &hw_stamp);
			epb->block_type = MGCAP_EPB_TYPE;
			epb->block_len = reclen;
			epb->interface_id = READ_ONCE(cap->ifid);
			epb->ts_high = upper_32_bits(ts);
			epb->ts_low = lower_32_bits(ts);
			epb->caplen = caplen;
			epb->origlen = origlen;
			/* zero the padding; the trailer ends the record */
			memset(epb->frame + caplen, 0,
			       reclen - MGCAP_EPB_TRAILER_LEN -
			       MGCAP_EPB_HDR_LEN - caplen);
			*(u32 *)((u8 *)epb + reclen - MGCAP_EPB_TRAILER_LEN) =
				reclen;
			/* the record is complete before the reader can see it */
			smp_store_release(&pp->producer_pos, prod + reclen);
		}
	}

account:
	u64_stats_update_begin(&ring->syncp);
	WRITE_ONCE(pp->seen_packets, pp->seen_packets + 1);
	WRITE_ONCE(pp->seen_bytes, pp->seen_bytes + origlen);
	if (filtered) {
		WRITE_ONCE(pp->filtered_packets, pp->filtered_packets + 1);
	} else if (full) {
		WRITE_ONCE(pp->ring_full_drops, pp->ring_full_drops + 1);
	} else if (err) {
		WRITE_ONCE(pp->copy_errors, pp->copy_errors + 1);
	} else {
		WRITE_ONCE(pp->captured_packets, pp->captured_packets + 1);
		WRITE_ONCE(pp->captured_bytes, pp->captured_bytes + origlen);
		if (hw_stamp)
			WRITE_ONCE(pp->hw_stamped_packets,
				   pp->hw_stamped_packets + 1);
	}
	if (drop)
		WRITE_ONCE(pp->consumed_packets, pp->consumed_packets + 1);
	u64_stats_update_end(&ring->syncp);

	if (!filtered && !full && !err)
		mgcap_maybe_wake(ring, used, reclen);

	if (drop) {
		consume_skb(skb);
		return RX_HANDLER_CONSUMED;
	}
	return RX_HANDLER_PASS;
}

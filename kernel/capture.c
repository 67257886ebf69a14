// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: starting and stopping capture on a device.
 *
 * A capture lives from mgcap_capture_start() to the last reference: the
 * capture list holds one until mgcap_capture_stop(), every open file of the
 * character device holds one.  Start and stop run under RTNL.
 */
#include <linux/log2.h>
#include <linux/proc_ns.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>

#include "mgcap.h"

LIST_HEAD(mgcap_captures);

static unsigned int mgcap_wakeup_usecs = 1000;
module_param_named(wakeup_usecs, mgcap_wakeup_usecs, uint, 0444);
MODULE_PARM_DESC(wakeup_usecs,
		 "Longest a sleeping reader waits for a record, in microseconds (default 1000)");

struct mgcap_capture *mgcap_capture_of(const struct net_device *dev)
{
	ASSERT_RTNL();
	if (rtnl_dereference(dev->rx_handler) != mgcap_rx_handler)
		return NULL;
	return rtnl_dereference(dev->rx_handler_data);
}

int mgcap_validate_ring_size(u32 ring_size, u32 snaplen,
			     struct netlink_ext_ack *extack)
{
	if (!is_power_of_2(ring_size)) {
		NL_SET_ERR_MSG_MOD(extack, "ring size must be a power of two");
		return -EINVAL;
	}
	if (ring_size < MGCAP_RING_SIZE_MIN || ring_size > MGCAP_RING_SIZE_MAX) {
		NL_SET_ERR_MSG_MOD(extack,
				   "ring size out of range (64 KiB to 1 GiB)");
		return -ERANGE;
	}
	if (ring_size < 2 * MGCAP_RECORD_LEN(snaplen)) {
		NL_SET_ERR_MSG_MOD(extack,
				   "ring size must hold two records of the snaplen");
		return -EINVAL;
	}
	return 0;
}

static void mgcap_capture_release(struct kref *ref)
{
	struct mgcap_capture *cap = container_of(ref, struct mgcap_capture, ref);
	unsigned int cpu;

	for (cpu = 0; cpu < cap->nr_rings; cpu++)
		mgcap_ring_destroy(cap->rings[cpu]);
	kfree(cap->rings);
	/* no hook runs any more: the capture stopped or never started */
	mgcap_filter_free(rcu_dereference_protected(cap->filter, true));
	kfree(cap);
}

bool mgcap_capture_get(struct mgcap_capture *cap)
{
	return kref_get_unless_zero(&cap->ref);
}

void mgcap_capture_put(struct mgcap_capture *cap)
{
	kref_put(&cap->ref, mgcap_capture_release);
}

void mgcap_capture_stats(struct mgcap_capture *cap, struct mgcap_stats *sum)
{
	unsigned int cpu;

	memset(sum, 0, sizeof(*sum));
	for (cpu = 0; cpu < cap->nr_rings; cpu++)
		if (cap->rings[cpu])
			mgcap_ring_stats_add(cap->rings[cpu], sum);
}

/* flt (may be NULL) becomes the capture's on success; the caller frees it else */
int mgcap_capture_start(struct net_device *dev, u32 mode, u32 snaplen,
			u32 ring_size, struct mgcap_filter *flt,
			struct netlink_ext_ack *extack)
{
	struct mgcap_capture *cap;
	unsigned int cpu;
	int err;

	ASSERT_RTNL();
	if (mgcap_capture_of(dev)) {
		NL_SET_ERR_MSG_MOD(extack, "device is already capturing");
		return -EEXIST;
	}
	if (rtnl_dereference(dev->rx_handler) ||
	    (dev->priv_flags & IFF_NO_RX_HANDLER)) {
		NL_SET_ERR_MSG_MOD(extack,
				   "device has another rx_handler (bridge, bond, team, macvlan or similar port)");
		return -EBUSY;
	}
	if (mode != MGCAP_MODE_DROP && mode != MGCAP_MODE_MIRROR) {
		NL_SET_ERR_MSG_MOD(extack, "mode must be mirror or drop");
		return -EINVAL;
	}
	if (snaplen < MGCAP_SNAPLEN_MIN || snaplen > MGCAP_SNAPLEN_MAX) {
		NL_SET_ERR_MSG_MOD(extack, "snaplen out of range (1 to 65535)");
		return -ERANGE;
	}
	err = mgcap_validate_ring_size(ring_size, snaplen, extack);
	if (err)
		return err;

	cap = kzalloc(sizeof(*cap), GFP_KERNEL);
	if (!cap)
		return -ENOMEM;
	kref_init(&cap->ref);
	cap->mode = mode;
	cap->snaplen = snaplen;
	cap->ring_size = ring_size;
	cap->watermark = ring_size / 4;
	cap->wakeup_ns = (u64)max(mgcap_wakeup_usecs, 1U) * NSEC_PER_USEC;
	cap->ifindex = dev->ifindex;
	cap->link_type = dev->type;
	strscpy(cap->ifname, dev->name, sizeof(cap->ifname));
	cap->net = dev_net(dev);
	cap->netns_inum = cap->net->ns.inum;
	if (net_eq(cap->net, &init_net))
		snprintf(cap->chardev_name, sizeof(cap->chardev_name),
			 "mgcap/%s", cap->ifname);
	else
		snprintf(cap->chardev_name, sizeof(cap->chardev_name),
			 "mgcap/netns-%u/%s", cap->netns_inum, cap->ifname);
	init_waitqueue_head(&cap->wq_any);
	cap->minor = -1;

	cap->nr_rings = nr_cpu_ids;
	cap->rings = kcalloc(cap->nr_rings, sizeof(*cap->rings), GFP_KERNEL);
	if (!cap->rings) {
		err = -ENOMEM;
		goto err_put;
	}
	for_each_possible_cpu(cpu) {
		cap->rings[cpu] = mgcap_ring_create(cap, cpu, ring_size);
		if (!cap->rings[cpu]) {
			NL_SET_ERR_MSG_MOD(extack, "out of memory for the rings");
			err = -ENOMEM;
			goto err_put;
		}
	}

	err = mgcap_chardev_add(cap);
	if (err) {
		NL_SET_ERR_MSG_MOD(extack, "cannot create the character device");
		goto err_put;
	}

	/* published with cap by the rx_handler registration */
	RCU_INIT_POINTER(cap->filter, flt);
	err = netdev_rx_handler_register(dev, mgcap_rx_handler, cap);
	if (err) {
		RCU_INIT_POINTER(cap->filter, NULL);
		NL_SET_ERR_MSG_MOD(extack, "cannot attach the rx_handler");
		goto err_chardev;
	}
	netdev_hold(dev, &cap->dev_tracker, GFP_KERNEL);
	cap->dev = dev;
	list_add_tail(&cap->list, &mgcap_captures);
	netdev_info(dev, "mgcap: capturing, mode %s, snaplen %u, ring %u bytes x %u CPUs%s\n",
		    mode == MGCAP_MODE_DROP ? "drop" : "mirror", snaplen,
		    ring_size, num_possible_cpus(), flt ? ", filtered" : "");
	mgcap_nl_notify(cap, MGCAP_CMD_DEV_START_NTF);
	return 0;

err_chardev:
	mgcap_chardev_del(cap);
err_put:
	mgcap_capture_put(cap);
	return err;
}

/*
 * Change mode and/or snaplen (0: leave as is) and the filter (flt: a new
 * one, clear_filter: none; the capture owns flt on success) while capturing.
 * The hook reads each once per frame, so every frame is handled entirely in
 * the old or entirely in the new setting: none is lost or captured twice.
 * Everything is checked before anything changes.
 */
int mgcap_capture_set(struct mgcap_capture *cap, u32 mode, u32 snaplen,
		      struct mgcap_filter *flt, bool clear_filter,
		      struct netlink_ext_ack *extack)
{
	bool changed = false;
	int err;

	ASSERT_RTNL();
	if (mode && mode != MGCAP_MODE_DROP && mode != MGCAP_MODE_MIRROR) {
		NL_SET_ERR_MSG_MOD(extack, "mode must be mirror or drop");
		return -EINVAL;
	}
	if (snaplen) {
		if (snaplen > MGCAP_SNAPLEN_MAX) {
			NL_SET_ERR_MSG_MOD(extack, "snaplen out of range (1 to 65535)");
			return -ERANGE;
		}
		err = mgcap_validate_ring_size(cap->ring_size, snaplen, extack);
		if (err)
			return err;
	}
	if (flt || clear_filter)
		changed |= mgcap_filter_swap(cap, flt);
	if (snaplen) {
		changed |= snaplen != cap->snaplen;
		WRITE_ONCE(cap->snaplen, snaplen);
	}
	if (mode) {
		changed |= mode != cap->mode;
		WRITE_ONCE(cap->mode, mode);
	}
	if (changed)
		mgcap_nl_notify(cap, MGCAP_CMD_DEV_CHANGE_NTF);
	return 0;
}

void mgcap_capture_stop(struct mgcap_capture *cap)
{
	struct net_device *dev = cap->dev;
	unsigned int cpu;

	ASSERT_RTNL();
	/* waits for every running rx_handler (synchronize_net) */
	netdev_rx_handler_unregister(dev);
	for (cpu = 0; cpu < cap->nr_rings; cpu++)
		if (cap->rings[cpu])
			hrtimer_cancel(&cap->rings[cpu]->wakeup_timer);

	/* no producer runs any more and every record is published; pairs
	 * with smp_load_acquire() in mgcap_read() and mgcap_poll()
	 */
	smp_store_release(&cap->stopped, true);
	for (cpu = 0; cpu < cap->nr_rings; cpu++)
		if (cap->rings[cpu])
			wake_up_interruptible_all(&cap->rings[cpu]->wq);
	wake_up_interruptible_all(&cap->wq_any);

	list_del(&cap->list);
	mgcap_chardev_del(cap);
	/* the timestamp configuration the device had before mgcap changed it */
	mgcap_hwtstamp_restore(dev);
	netdev_info(dev, "mgcap: capture stopped\n");
	mgcap_nl_notify(cap, MGCAP_CMD_DEV_STOP_NTF);
	cap->dev = NULL;
	netdev_put(dev, &cap->dev_tracker);
	mgcap_capture_put(cap);
}

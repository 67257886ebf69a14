// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: starting and stopping capture on a device.
 *
 * A capture lives from mgcap_capture_start() to the last reference: the
 * capture list holds one until mgcap_capture_stop(), every open file of the
 * character device holds one.  Start and stop run under RTNL.
 */
#include <linux/cpuhotplug.h>
#include <linux/if_arp.h>
#include <linux/log2.h>
#include <linux/mm.h>
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
	mgcap_budget_release(cap);
	if (cap->user_ns)
		put_user_ns(cap->user_ns);
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

/* the dynamic CPU hotplug state whose instances are the running captures */
static enum cpuhp_state mgcap_cpuhp_state;

/*
 * A CPU comes (back) online.  When it went offline its rings' wakeup timers
 * were migrated to another CPU (pinned or not), where a timer may still be
 * pending or running: hook.c's rule that only the ring's CPU touches
 * timer_armed would break, and a record published after the producer saw
 * the stale armed flag could wait for a wakeup that ran elsewhere before
 * it.  So cancel whatever is left and arm a fresh timer here: it runs on
 * this CPU, after every record produced before it, and the usual rule
 * holds again.  Runs on the CPU coming online.
 */
static int mgcap_cpu_online(unsigned int cpu, struct hlist_node *node)
{
	struct mgcap_capture *cap = hlist_entry(node, struct mgcap_capture,
						cpuhp_node);
	struct mgcap_ring *ring = cpu < cap->nr_rings ? cap->rings[cpu] : NULL;

	if (!ring)
		return 0;
	hrtimer_cancel(&ring->wakeup_timer);
	local_bh_disable();
	WRITE_ONCE(ring->timer_armed, true);
	hrtimer_start(&ring->wakeup_timer, ns_to_ktime(cap->wakeup_ns),
		      HRTIMER_MODE_REL_PINNED);
	local_bh_enable();
	return 0;
}

int mgcap_cpuhp_init(void)
{
	int ret;

	ret = cpuhp_setup_state_multi(CPUHP_AP_ONLINE_DYN, "net/mgcap:online",
				      mgcap_cpu_online, NULL);
	if (ret < 0)
		return ret;
	mgcap_cpuhp_state = ret;
	return 0;
}

void mgcap_cpuhp_exit(void)
{
	cpuhp_remove_multi_state(mgcap_cpuhp_state);
}

/*
 * Bumped on every start, stop and rename: a dump's parts compare it (cb->seq)
 * and flag NLM_F_DUMP_INTR.  Never 0, which would turn the check off: it starts
 * at 1 and skips 0 when it wraps.  Under RTNL.
 */
u32 mgcap_generation = 1;

static void mgcap_generation_bump(void)
{
	ASSERT_RTNL();
	if (!++mgcap_generation)
		mgcap_generation = 1;
}

/*
 * The device types whose frames a capture file can describe, as the records
 * hold them (mgctl/pcapng.py has the same list, mapped to PCAP-NG link
 * types): an Ethernet header first, or no link-layer header at all, IPv4 or
 * IPv6 from the first byte (LINKTYPE_RAW; see mgcap_rx_handler()).  Types
 * with other headers (CAN frames in host byte order, InfiniBand's pseudo
 * header, netlink monitors, 802.11, ...) are refused rather than mislabelled.
 */
static bool mgcap_link_type_ok(const struct net_device *dev)
{
	switch (dev->type) {
	case ARPHRD_ETHER:
	case ARPHRD_LOOPBACK:
		return true;
	case ARPHRD_NONE:	/* tun, wireguard */
	case ARPHRD_RAWIP:
	case ARPHRD_PPP:
	case ARPHRD_TUNNEL:	/* ipip */
	case ARPHRD_TUNNEL6:	/* ip6tnl */
	case ARPHRD_SIT:
	case ARPHRD_IPGRE:
	case ARPHRD_IP6GRE:
		return true;
	}
	return false;
}

/* dev may capture; under RTNL, at the request and again at the start */
int mgcap_capture_check(struct net_device *dev, struct netlink_ext_ack *extack)
{
	ASSERT_RTNL();
	if (!mgcap_link_type_ok(dev)) {
		NL_SET_ERR_MSG_MOD(extack,
				   "the device's link type is not supported: no capture file link type describes its frames");
		return -EOPNOTSUPP;
	}
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
	return 0;
}

/*
 * A capture without rings, not attached to a device yet: what it will take is
 * reserved (budget.c) before mgcap_capture_alloc_rings().  The values come
 * checked: by the family's policy and mgcap_validate_ring_size() for a
 * request, by mgcap_init() for the module parameters.
 */
struct mgcap_capture *mgcap_capture_alloc(u32 mode, u32 snaplen, u32 ring_size,
					  struct netlink_ext_ack *extack)
{
	struct mgcap_capture *cap;

	cap = kzalloc(sizeof(*cap), GFP_KERNEL_ACCOUNT);
	if (!cap)
		return ERR_PTR(-ENOMEM);
	kref_init(&cap->ref);
	spin_lock_init(&cap->name_lock);
	INIT_HLIST_NODE(&cap->cpuhp_node);
	cap->mode = mode;
	cap->snaplen = snaplen;
	cap->ring_size = ring_size;
	cap->watermark = ring_size / 4;
	cap->wakeup_ns = (u64)max(mgcap_wakeup_usecs, 1U) * NSEC_PER_USEC;
	init_waitqueue_head(&cap->wq_any);
	cap->minor = -1;

	return cap;
}

/*
 * The rings of a capture whose memory is reserved; may run without RTNL,
 * since zeroing up to a GiB per CPU takes a while.  On failure the caller
 * puts cap, which frees what was made.
 */
int mgcap_capture_alloc_rings(struct mgcap_capture *cap,
			      struct netlink_ext_ack *extack)
{
	unsigned int cpu;

	cap->nr_rings = nr_cpu_ids;
	cap->rings = kcalloc(cap->nr_rings, sizeof(*cap->rings),
			     GFP_KERNEL_ACCOUNT);
	if (!cap->rings)
		goto err_nomem;
	for_each_possible_cpu(cpu) {
		cap->rings[cpu] = mgcap_ring_create(cap, cpu, cap->ring_size);
		if (!cap->rings[cpu])
			goto err_nomem;
	}
	return 0;

err_nomem:
	/* ring creation gives up when the caller is being killed */
	if (fatal_signal_pending(current))
		return -EINTR;
	NL_SET_ERR_MSG_MOD(extack, "out of memory for the rings");
	return -ENOMEM;
}

static void mgcap_capture_set_names(struct mgcap_capture *cap,
				    const char *ifname)
{
	spin_lock(&cap->name_lock);
	strscpy(cap->ifname, ifname, sizeof(cap->ifname));
	if (net_eq(cap->net, &init_net))
		snprintf(cap->chardev_name, sizeof(cap->chardev_name),
			 "mgcap/%s", cap->ifname);
	else
		snprintf(cap->chardev_name, sizeof(cap->chardev_name),
			 "mgcap/netns-%u/%s", cap->netns_inum, cap->ifname);
	spin_unlock(&cap->name_lock);
}

/* a consistent copy of the names, for readers without RTNL */
void mgcap_capture_names(struct mgcap_capture *cap, char *ifname,
			 char *chardev_name)
{
	spin_lock(&cap->name_lock);
	if (ifname)
		strscpy(ifname, cap->ifname, IFNAMSIZ);
	if (chardev_name)
		strscpy(chardev_name, cap->chardev_name,
			MGCAP_CHARDEV_NAME_MAX);
	spin_unlock(&cap->name_lock);
}

/* every reader of a capture that has stopped (or never started) */
static void mgcap_capture_wake_all(struct mgcap_capture *cap)
{
	unsigned int cpu;

	for (cpu = 0; cpu < cap->nr_rings; cpu++)
		if (cap->rings[cpu])
			wake_up_interruptible_all(&cap->rings[cpu]->wq);
	wake_up_interruptible_all(&cap->wq_any);
}

/*
 * The one teardown of a capture's producers, for stop and for a start that
 * failed half-way: the rx_handler is gone (or was never registered).  The
 * hotplug instance goes first, if it was added: no online callback runs after
 * that (the removal holds the hotplug lock), so none arms a timer after they
 * are cancelled.  Then every record is published: stopped, paired with the
 * smp_load_acquire() in mgcap_read() and mgcap_poll(), and every reader woken
 * to see it.  Under RTNL.
 */
static void mgcap_capture_quiesce(struct mgcap_capture *cap)
{
	unsigned int cpu;

	ASSERT_RTNL();
	if (!hlist_unhashed(&cap->cpuhp_node))
		cpuhp_state_remove_instance_nocalls(mgcap_cpuhp_state,
						    &cap->cpuhp_node);
	for (cpu = 0; cpu < cap->nr_rings; cpu++)
		if (cap->rings[cpu])
			hrtimer_cancel(&cap->rings[cpu]->wakeup_timer);
	/* every record before it published; pairs with mgcap_read()'s acquire */
	smp_store_release(&cap->stopped, true);
	mgcap_capture_wake_all(cap);
}

/*
 * Attach a capture from mgcap_capture_alloc() to dev.  On success the
 * capture list owns cap and cap owns flt (may be NULL); on failure the
 * caller still owns both.
 */
int mgcap_capture_start(struct net_device *dev, struct mgcap_capture *cap,
			struct mgcap_filter *flt, struct netlink_ext_ack *extack)
{
	int err;

	ASSERT_RTNL();
	err = mgcap_capture_check(dev, extack);
	if (err)
		return err;

	cap->ifindex = dev->ifindex;
	cap->link_type = dev->type;
	cap->link_header = dev_has_header(dev);
	cap->net = dev_net(dev);
	cap->netns_inum = cap->net->ns.inum;
	mgcap_capture_set_names(cap, dev->name);
	if (!cap->user_ns)
		cap->user_ns = get_user_ns(cap->net->user_ns);

	err = mgcap_chardev_add(cap);
	if (err) {
		NL_SET_ERR_MSG_MOD(extack, "cannot create the character device");
		return err;
	}
	err = cpuhp_state_add_instance_nocalls(mgcap_cpuhp_state,
					       &cap->cpuhp_node);
	if (err) {
		NL_SET_ERR_MSG_MOD(extack, "cannot follow CPU hotplug");
		goto err_quiesce;
	}

	/* published with cap by the rx_handler registration */
	RCU_INIT_POINTER(cap->filter, flt);
	err = netdev_rx_handler_register(dev, mgcap_rx_handler, cap);
	if (err) {
		RCU_INIT_POINTER(cap->filter, NULL);
		NL_SET_ERR_MSG_MOD(extack, "cannot attach the rx_handler");
		goto err_quiesce;
	}
	netdev_hold(dev, &cap->dev_tracker, GFP_KERNEL);
	cap->dev = dev;
	list_add_tail(&cap->list, &mgcap_captures);
	mgcap_owner_add(cap);
	mgcap_generation_bump();
	netdev_info(dev, "mgcap: capturing, mode %s, snaplen %u, ring %u bytes x %u CPUs%s\n",
		    cap->mode == MGCAP_MODE_DROP ? "drop" : "mirror",
		    cap->snaplen, cap->ring_size, num_possible_cpus(),
		    flt ? ", filtered" : "");
	mgcap_nl_notify(cap, MGCAP_CMD_DEV_START_NTF);
	return 0;

err_quiesce:
	/* a file opened meanwhile reads nothing and gets EOF, not a wait */
	mgcap_capture_quiesce(cap);
	mgcap_chardev_del(cap);
	return err;
}

/*
 * The device was renamed: the names follow it, and so do the device node
 * (/dev/mgcap/<new>) and the sysfs directory, so that a new device with the
 * old name can capture.  Open files are not affected.  Under RTNL.
 */
void mgcap_capture_rename(struct mgcap_capture *cap)
{
	ASSERT_RTNL();
	if (!strcmp(cap->ifname, cap->dev->name))
		return;
	/* devtmpfs removes the node under the old name */
	mgcap_chardev_node_del(cap);
	mgcap_capture_set_names(cap, cap->dev->name);
	if (mgcap_chardev_node_add(cap))
		netdev_warn(cap->dev,
			    "mgcap: no device node after the rename; the capture goes on\n");
	mgcap_generation_bump();
	mgcap_nl_notify(cap, MGCAP_CMD_DEV_CHANGE_NTF);
}

/*
 * Change mode and/or snaplen (0: leave as is) and the filter (flt: a new
 * one, clear_filter: none; the capture owns flt on success) while capturing.
 * The hook reads each setting once per frame, so a frame sees each one
 * whole, old or new, and no frame is lost or captured twice by the change.
 * The settings are not swapped together: a frame received during a change of
 * several may see the new filter with the old snaplen or mode (they change
 * in that order).  Everything is checked before anything changes.
 */
int mgcap_capture_set(struct mgcap_capture *cap, u32 mode, u32 snaplen,
		      struct mgcap_filter *flt, bool clear_filter,
		      struct netlink_ext_ack *extack)
{
	bool changed = false;
	int err;

	ASSERT_RTNL();
	/* mode and snaplen are in range (the policy); the ring must hold two */
	if (snaplen) {
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

	ASSERT_RTNL();
	/* waits for every running rx_handler (synchronize_net) */
	netdev_rx_handler_unregister(dev);
	mgcap_capture_quiesce(cap);

	list_del(&cap->list);
	mgcap_owner_del(cap);
	mgcap_generation_bump();
	mgcap_chardev_del(cap);
	/* the timestamp configuration the device had before mgcap changed it */
	mgcap_hwtstamp_restore(dev);
	netdev_info(dev, "mgcap: capture stopped\n");
	mgcap_nl_notify(cap, MGCAP_CMD_DEV_STOP_NTF);
	cap->dev = NULL;
	netdev_put(dev, &cap->dev_tracker);
	mgcap_capture_put(cap);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: captures tied to the netlink socket that started them.
 *
 * dev-start with socket-owner records the requesting socket's port id and
 * network namespace; when that socket is released (its last file reference
 * closed: exit, SIGKILL, the OOM killer) the capture stops as with dev-stop.
 * Every netlink socket's release passes through the notifier, so it takes
 * no RTNL: it marks the captures under a spinlock, and a work item stops
 * them under RTNL.  A capture leaves the owned
 * list when it stops, whatever stops it, so the work never sees a stopped
 * capture and a port id reused by a new socket never matches an old mark.
 */
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/rtnetlink.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "mgcap.h"

static LIST_HEAD(mgcap_owned);
static DEFINE_SPINLOCK(mgcap_owned_lock);

static void mgcap_owner_work_fn(struct work_struct *work)
{
	struct mgcap_capture *cap, *tmp;
	struct net_device *dev;

	rtnl_lock();
	list_for_each_entry_safe(cap, tmp, &mgcap_captures, list) {
		if (!READ_ONCE(cap->owner_gone))
			continue;
		dev = cap->dev;
		netdev_info(dev,
			    "mgcap: the socket that started the capture is closed\n");
		mgcap_capture_stop(cap);
		/* RTNL holds dev: it unregisters only after this */
		mgcap_hwtstamp_orphaned(dev);
	}
	rtnl_unlock();
}

static DECLARE_WORK(mgcap_owner_work, mgcap_owner_work_fn);

static int mgcap_owner_event(struct notifier_block *nb, unsigned long event,
			     void *ptr)
{
	struct netlink_notify *n = ptr;
	struct mgcap_capture *cap;
	bool found = false;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC)
		return NOTIFY_DONE;
	spin_lock(&mgcap_owned_lock);
	list_for_each_entry(cap, &mgcap_owned, owned_node)
		if (cap->owner_portid == n->portid &&
		    net_eq(cap->owner_net, n->net)) {
			WRITE_ONCE(cap->owner_gone, true);
			found = true;
		}
	spin_unlock(&mgcap_owned_lock);
	if (found)
		schedule_work(&mgcap_owner_work);
	return NOTIFY_DONE;
}

static struct notifier_block mgcap_owner_notifier = {
	.notifier_call = mgcap_owner_event,
};

/* a capture that just started, if it has an owner; under RTNL */
void mgcap_owner_add(struct mgcap_capture *cap)
{
	ASSERT_RTNL();
	if (!cap->owner_portid)
		return;
	spin_lock(&mgcap_owned_lock);
	list_add_tail(&cap->owned_node, &mgcap_owned);
	spin_unlock(&mgcap_owned_lock);
}

/* a capture that stops; under RTNL */
void mgcap_owner_del(struct mgcap_capture *cap)
{
	ASSERT_RTNL();
	if (!cap->owner_portid)
		return;
	spin_lock(&mgcap_owned_lock);
	list_del(&cap->owned_node);
	spin_unlock(&mgcap_owned_lock);
}

int mgcap_owner_init(void)
{
	return netlink_register_notifier(&mgcap_owner_notifier);
}

/* after the captures stopped: no notifier or work runs once this returns */
void mgcap_owner_exit(void)
{
	netlink_unregister_notifier(&mgcap_owner_notifier);
	flush_work(&mgcap_owner_work);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: the hardware timestamping configuration of a device.
 *
 * mgcap reaches a driver only with kernel memory, under RTNL: through
 * ndo_hwtstamp_get/set (6.6+) by generic_hwtstamp_get/set_lower(), which
 * also handle phylib PHYs.  A driver with only ndo_eth_ioctl copies a struct
 * hwtstamp_config from and to a user pointer; mgcap never calls it and does
 * no work in any user address space.  Such a device is "user" (legacy): user
 * space (mgctl) issues SIOCGHWTSTAMP/SIOCSHWTSTAMP itself, with the kernel's
 * own permission checks, and tells mgcap with hwtstamp-set what it applied
 * and what the device had before.  On kernels without ndo_hwtstamp_get/set
 * every driver is legacy.  A converted upper device (vlan, macvlan, bond)
 * passes the request to its lower devices, and on 6.12 would use the user
 * buffer mgcap does not give for an unconverted one below: it is legacy too.
 *
 * Restore: the first hwtstamp-set through mgcap on a device saves the
 * configuration the device had before.  When capture on the device stops it
 * is put back, by mgcap for a converted driver and by the process that
 * stopped the capture for a legacy one (the dev-stop reply and dev-stop-ntf
 * carry it), then forgotten; the next hwtstamp-set saves again.  When mgcap
 * stops a capture on its own (the socket that owned it closed: mgdump was
 * killed) no process receives a reply: for a legacy device mgcap logs the
 * command that puts the saved configuration back, then forgets it.  At module
 * unload mgcap puts back what it can and logs, for each legacy device, the
 * command that puts the saved configuration back.  A device that moves to
 * another netns is put back (or logged) as it leaves; one that goes away
 * (NETDEV_UNREGISTER) is forgotten without a restore.
 */
#include <linux/net_tstamp.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>

#include "mgcap.h"

/* a device whose configuration mgcap changed; under RTNL */
struct mgcap_hwts_saved {
	struct list_head list;
	struct net_device *dev;		/* forgotten at NETDEV_UNREGISTER */
	struct hwtstamp_config cfg;	/* before mgcap's first change */
	struct hwtstamp_config applied;	/* legacy: last applied by user space */
	bool stopped;			/* legacy: capture stopped, put cfg back */
};

static LIST_HEAD(mgcap_hwts_saved_list);

#ifdef MGCAP_HAVE_HWTSTAMP_LOWER
static bool mgcap_hwts_converted(struct net_device *dev)
{
	const struct net_device_ops *ops = dev->netdev_ops;

	return ops->ndo_hwtstamp_get && ops->ndo_hwtstamp_set;
}

static int mgcap_hwts_lower_unconverted(struct net_device *lower,
					struct netdev_nested_priv *priv)
{
	return !mgcap_hwts_converted(lower);
}

/*
 * The driver wants a user buffer: it has only ndo_eth_ioctl, or a device
 * below it is not converted (generic_hwtstamp_*_lower() would hand that one
 * kcfg.ifr, which mgcap leaves NULL).
 */
bool mgcap_hwtstamp_legacy(struct net_device *dev)
{
	struct netdev_nested_priv priv = {};

	if (!mgcap_hwts_converted(dev))
		return dev->netdev_ops->ndo_eth_ioctl;
	return netdev_walk_all_lower_dev(dev, mgcap_hwts_lower_unconverted,
					 &priv);
}

/*
 * struct kernel_hwtstamp_config, without a user buffer (kcfg.ifr NULL).  The
 * ioctl path checks a request with net_hwtstamp_validate(), which is not
 * exported: here the family's policy bounds rx_filter and tx_type to the same
 * ranges (mgcap_hwtstamp_set_policy), flags are always 0, and a restore puts
 * back what the driver itself reported.
 */
static int mgcap_hwts_call(struct net_device *dev, bool set,
			   struct hwtstamp_config *cfg,
			   struct netlink_ext_ack *extack)
{
	struct kernel_hwtstamp_config kcfg = {};
	int err;

	hwtstamp_config_to_kernel(&kcfg, cfg);
	if (set)
		err = generic_hwtstamp_set_lower(dev, &kcfg, extack);
	else
		err = generic_hwtstamp_get_lower(dev, &kcfg);
	if (!err)
		hwtstamp_config_from_kernel(cfg, &kcfg);
	return err;
}
#else
/* older kernels: only ndo_eth_ioctl, which wants a user buffer */
static bool mgcap_hwts_converted(struct net_device *dev)
{
	return false;
}

bool mgcap_hwtstamp_legacy(struct net_device *dev)
{
	return dev->netdev_ops->ndo_eth_ioctl;
}

static int mgcap_hwts_call(struct net_device *dev, bool set,
			   struct hwtstamp_config *cfg,
			   struct netlink_ext_ack *extack)
{
	return -EOPNOTSUPP;
}
#endif

/* the device can stamp at all; extack must not be NULL */
static int mgcap_hwts_supported(struct net_device *dev,
				struct netlink_ext_ack *extack)
{
	if (mgcap_hwts_converted(dev) || mgcap_hwtstamp_legacy(dev))
		return 0;
	NL_SET_ERR_MSG_MOD(extack, "hardware timestamping not supported");
	return -EOPNOTSUPP;
}

/* extack must not be NULL: the 6.6+ helpers write to it */
static int mgcap_hwts_do(struct net_device *dev, bool set,
			 struct hwtstamp_config *cfg,
			 struct netlink_ext_ack *extack)
{
	int err;

	ASSERT_RTNL();
	err = mgcap_hwts_supported(dev, extack);
	if (err)
		return err;
	if (mgcap_hwtstamp_legacy(dev)) {
		NL_SET_ERR_MSG_MOD(extack,
				   "the driver is configured only by SIOC[GS]HWTSTAMP from user space (hwtstamp-user)");
		return -EOPNOTSUPP;
	}
	err = mgcap_hwts_call(dev, set, cfg, extack);
	if (!err || extack->_msg)
		return err;
	if (err == -EOPNOTSUPP)
		NL_SET_ERR_MSG_MOD(extack, "hardware timestamping not supported");
	else if (err == -ERANGE)
		NL_SET_ERR_MSG_MOD(extack,
				   "the device cannot stamp with this setting");
	else
		NL_SET_ERR_MSG_MOD(extack,
				   "the driver refused the timestamp request");
	return err;
}

/*
 * The device's configuration as a driver the kernel reaches reports it;
 * -EOPNOTSUPP for a legacy one.  Under RTNL.
 */
int mgcap_hwtstamp_get(struct net_device *dev, struct hwtstamp_config *cfg,
		       struct netlink_ext_ack *extack)
{
	memset(cfg, 0, sizeof(*cfg));
	return mgcap_hwts_do(dev, false, cfg, extack);
}

static struct mgcap_hwts_saved *mgcap_hwts_saved_of(struct net_device *dev)
{
	struct mgcap_hwts_saved *s;

	ASSERT_RTNL();
	list_for_each_entry(s, &mgcap_hwts_saved_list, list)
		if (s->dev == dev)
			return s;
	return NULL;
}

/*
 * Configure a device the kernel reaches; cfg becomes what the driver applied
 * (it may widen the receive filter).  The first change saves the previous
 * configuration.  Under RTNL.
 */
int mgcap_hwtstamp_set(struct net_device *dev, struct hwtstamp_config *cfg,
		       struct netlink_ext_ack *extack)
{
	struct mgcap_hwts_saved *saved = mgcap_hwts_saved_of(dev);
	struct mgcap_hwts_saved *fresh = NULL;
	int err;

	ASSERT_RTNL();
	if (!saved) {
		fresh = kzalloc(sizeof(*fresh), GFP_KERNEL);
		if (!fresh)
			return -ENOMEM;
		err = mgcap_hwtstamp_get(dev, &fresh->cfg, extack);
		if (err)
			goto err_free;
		fresh->dev = dev;
	}
	err = mgcap_hwts_do(dev, true, cfg, extack);
	if (err)
		goto err_free;
	if (fresh)
		list_add_tail(&fresh->list, &mgcap_hwts_saved_list);
	return 0;

err_free:
	kfree(fresh);
	return err;
}

/*
 * A legacy device: user space applied *applied with SIOCSHWTSTAMP over
 * *before.  Keep before if this is the first change, and applied for dev-get.
 * Under RTNL.
 */
int mgcap_hwtstamp_record(struct net_device *dev,
			  const struct hwtstamp_config *before,
			  const struct hwtstamp_config *applied,
			  struct netlink_ext_ack *extack)
{
	struct mgcap_hwts_saved *s;
	int err;

	ASSERT_RTNL();
	err = mgcap_hwts_supported(dev, extack);
	if (err)
		return err;
	if (!mgcap_hwtstamp_legacy(dev)) {
		NL_SET_ERR_MSG_MOD(extack,
				   "mgcap configures this driver itself: hwtstamp-user is for ioctl-only drivers");
		return -EINVAL;
	}
	s = mgcap_hwts_saved_of(dev);
	if (!s) {
		s = kzalloc(sizeof(*s), GFP_KERNEL);
		if (!s)
			return -ENOMEM;
		s->dev = dev;
		s->cfg = *before;
		list_add_tail(&s->list, &mgcap_hwts_saved_list);
	}
	/* changed again after a stop whose restore is still pending */
	s->stopped = false;
	s->applied = *applied;
	return 0;
}

/*
 * What dev-get reports, without calling a legacy driver: a converted
 * driver's answer, or the configuration last applied through mgcap on a
 * legacy device (-ENOENT if none).  Quiet.  Under RTNL.
 */
int mgcap_hwtstamp_report(struct net_device *dev, struct hwtstamp_config *cfg)
{
	struct netlink_ext_ack extack = {};
	struct mgcap_hwts_saved *s;

	if (!mgcap_hwtstamp_legacy(dev))
		return mgcap_hwtstamp_get(dev, cfg, &extack);
	s = mgcap_hwts_saved_of(dev);
	if (!s || s->stopped)
		return -ENOENT;
	*cfg = s->applied;
	return 0;
}

/*
 * The saved configuration user space is to put back on a legacy device whose
 * capture just stopped (dev-stop reply, dev-stop-ntf).  Under RTNL.
 */
bool mgcap_hwtstamp_pending(struct net_device *dev, struct hwtstamp_config *cfg)
{
	struct mgcap_hwts_saved *s = mgcap_hwts_saved_of(dev);

	if (!s || !s->stopped)
		return false;
	*cfg = s->cfg;
	return true;
}

/* forget a saved configuration */
static void mgcap_hwts_drop(struct mgcap_hwts_saved *s)
{
	list_del(&s->list);
	kfree(s);
}

/* put a saved configuration back through the driver, then forget it */
static void mgcap_hwts_put_back(struct mgcap_hwts_saved *s)
{
	struct netlink_ext_ack extack = {};
	struct hwtstamp_config cfg = s->cfg;
	int err;

	err = mgcap_hwts_do(s->dev, true, &cfg, &extack);
	if (err)
		netdev_warn(s->dev,
			    "mgcap: cannot restore the timestamp configuration (rx filter %d, tx %d): %s (%d)\n",
			    s->cfg.rx_filter, s->cfg.tx_type, extack._msg, err);
	mgcap_hwts_drop(s);
}

/*
 * Capture on dev stopped: put its saved configuration back, or for a legacy
 * device keep it for the stop reply and notification until
 * mgcap_hwtstamp_forget().  Under RTNL.
 */
void mgcap_hwtstamp_restore(struct net_device *dev)
{
	struct mgcap_hwts_saved *s;

	ASSERT_RTNL();
	s = mgcap_hwts_saved_of(dev);
	if (!s)
		return;
	if (mgcap_hwtstamp_legacy(dev))
		s->stopped = true;
	else
		mgcap_hwts_put_back(s);
}

/* a legacy device's configuration mgcap cannot put back: log how, forget it */
static void mgcap_hwts_give_up(struct mgcap_hwts_saved *s, const char *why)
{
	netdev_warn(s->dev,
		    "mgcap: %s: timestamp configuration not restored (ioctl-only driver); to restore it run: hwstamp_ctl -i %s -r %d -t %d\n",
		    why, s->dev->name, s->cfg.rx_filter, s->cfg.tx_type);
	mgcap_hwts_drop(s);
}

/*
 * mgcap stopped the capture on dev on its own (its owner socket closed): no
 * stop reply goes to a process that would put a legacy device's saved
 * configuration back, so log the command that does and forget it; the next
 * hwtstamp-set saves afresh.  Under RTNL, after mgcap_capture_stop().
 */
void mgcap_hwtstamp_orphaned(struct net_device *dev)
{
	struct mgcap_hwts_saved *s;

	ASSERT_RTNL();
	s = mgcap_hwts_saved_of(dev);
	if (!s || !s->stopped)
		return;
	mgcap_hwts_give_up(s, "capture stopped with its owner");
}

/*
 * Module unload: every saved configuration back that mgcap can put back; a
 * legacy device's can only be put back from user space, so say how.  Under
 * RTNL.
 */
void mgcap_hwtstamp_restore_all(void)
{
	struct mgcap_hwts_saved *s, *tmp;

	ASSERT_RTNL();
	list_for_each_entry_safe(s, tmp, &mgcap_hwts_saved_list, list) {
		if (!mgcap_hwtstamp_legacy(s->dev)) {
			mgcap_hwts_put_back(s);
			continue;
		}
		mgcap_hwts_give_up(s, "unloading");
	}
}

/*
 * NETDEV_UNREGISTER, before the capture on dev (if any) stops.  A device that
 * moves to another netns is still registered and keeps its NIC: a converted
 * driver gets its saved configuration back now (a later stop or unload could
 * no longer find it), a legacy one is logged with the command that restores
 * it.  A device going away is forgotten.  Under RTNL.
 */
void mgcap_hwtstamp_unregister(struct net_device *dev)
{
	struct mgcap_hwts_saved *s;

	ASSERT_RTNL();
	s = mgcap_hwts_saved_of(dev);
	if (!s)
		return;
	if (dev->reg_state != NETREG_REGISTERED)
		mgcap_hwts_drop(s);
	else if (!mgcap_hwtstamp_legacy(dev))
		mgcap_hwts_put_back(s);
	else
		mgcap_hwts_give_up(s, "moving to another network namespace");
}

/* dev is going away, or its restore was handed out: forget it; under RTNL */
void mgcap_hwtstamp_forget(struct net_device *dev)
{
	struct mgcap_hwts_saved *s;

	ASSERT_RTNL();
	s = mgcap_hwts_saved_of(dev);
	if (s)
		mgcap_hwts_drop(s);
}

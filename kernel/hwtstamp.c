// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: the hardware timestamping configuration of a device.
 *
 * mgcap asks the driver itself, under RTNL, the way SIOCGHWTSTAMP and
 * SIOCSHWTSTAMP do:
 *
 * - with the ndo_hwtstamp_get/set API (6.6+), through
 *   generic_hwtstamp_get/set_lower(), which also handles phylib PHYs and
 *   falls back to ndo_eth_ioctl for drivers not converted yet;
 * - on older kernels through ndo_eth_ioctl only.
 *
 * A legacy driver's ndo_eth_ioctl copies a struct hwtstamp_config from and
 * to ifr_data, which is a user pointer (copy_from_user() refuses kernel
 * addresses).  mgcap therefore hands it a page mapped for the occasion in
 * the calling process (the process that sent the netlink request, or rmmod),
 * and reads the result back from it.  Without a user address space (a kernel
 * thread) only drivers with ndo_hwtstamp_get/set can be reached.
 *
 * Restore: the first hwtstamp-set through mgcap on a device saves the
 * configuration the device had before.  It is put back when capture on that
 * device stops and at module unload, then forgotten; the next hwtstamp-set
 * saves again.  A device that goes away (NETDEV_UNREGISTER, also when it
 * moves to another netns) is forgotten without a restore.
 */
#include <linux/mman.h>
#include <linux/net_tstamp.h>
#include <linux/rtnetlink.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "mgcap.h"

/* a device's configuration before mgcap first changed it; under RTNL */
struct mgcap_hwts_saved {
	struct list_head list;
	struct net_device *dev;		/* forgotten at NETDEV_UNREGISTER */
	struct hwtstamp_config cfg;
};

static LIST_HEAD(mgcap_hwts_saved_list);

static bool mgcap_hwts_has_ops(struct net_device *dev)
{
	const struct net_device_ops *ops = dev->netdev_ops;

#ifdef MGCAP_HAVE_HWTSTAMP_LOWER
	if (ops->ndo_hwtstamp_get && ops->ndo_hwtstamp_set)
		return true;
#endif
	return ops->ndo_eth_ioctl;
}

/*
 * A page of the caller's address space that a legacy driver can
 * copy_from_user()/copy_to_user() a struct hwtstamp_config through; 0 when
 * the caller has no user address space.
 */
static unsigned long mgcap_hwts_ubuf_map(void)
{
	unsigned long addr;

	if (!current->mm || (current->flags & PF_KTHREAD))
		return 0;
	addr = vm_mmap(NULL, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, 0);
	return IS_ERR_VALUE(addr) ? 0 : addr;
}

#ifdef MGCAP_HAVE_HWTSTAMP_LOWER
/* the configuration API of 6.6+: struct kernel_hwtstamp_config */
static int mgcap_hwts_call(struct net_device *dev, bool set,
			   struct hwtstamp_config *cfg,
			   struct netlink_ext_ack *extack)
{
	struct kernel_hwtstamp_config kcfg = {};
	struct ifreq ifr = {};
	unsigned long addr;
	void __user *ubuf;
	int err;

	/* for a legacy driver, or one below a converted device (a vlan) */
	addr = mgcap_hwts_ubuf_map();
	if (!addr && !dev->netdev_ops->ndo_hwtstamp_set) {
		NL_SET_ERR_MSG_MOD(extack,
				   "cannot reach the driver's timestamp ioctl from here");
		return -EOPNOTSUPP;
	}
	ubuf = (void __user *)addr;
	if (addr && copy_to_user(ubuf, cfg, sizeof(*cfg))) {
		err = -EFAULT;
		goto out;
	}
	strscpy(ifr.ifr_name, dev->name, sizeof(ifr.ifr_name));
	ifr.ifr_data = ubuf;
	hwtstamp_config_to_kernel(&kcfg, cfg);
	kcfg.ifr = &ifr;
	if (set)
		err = generic_hwtstamp_set_lower(dev, &kcfg, extack);
	else
		err = generic_hwtstamp_get_lower(dev, &kcfg);
	if (err)
		goto out;
	if (!kcfg.copied_to_user)
		hwtstamp_config_from_kernel(cfg, &kcfg);
	else if (copy_from_user(cfg, ubuf, sizeof(*cfg)))
		err = -EFAULT;
out:
	if (addr)
		vm_munmap(addr, PAGE_SIZE);
	return err;
}
#else
/* older kernels: SIOC[GS]HWTSTAMP through ndo_eth_ioctl */
static int mgcap_hwts_call(struct net_device *dev, bool set,
			   struct hwtstamp_config *cfg,
			   struct netlink_ext_ack *extack)
{
	const struct net_device_ops *ops = dev->netdev_ops;
	struct ifreq ifr = {};
	unsigned long addr;
	void __user *ubuf;
	int err;

	if (!netif_device_present(dev))
		return -ENODEV;
	addr = mgcap_hwts_ubuf_map();
	if (!addr) {
		NL_SET_ERR_MSG_MOD(extack,
				   "cannot reach the driver's timestamp ioctl from here");
		return -EOPNOTSUPP;
	}
	ubuf = (void __user *)addr;
	if (copy_to_user(ubuf, cfg, sizeof(*cfg))) {
		err = -EFAULT;
		goto out;
	}
	strscpy(ifr.ifr_name, dev->name, sizeof(ifr.ifr_name));
	ifr.ifr_data = ubuf;
	err = ops->ndo_eth_ioctl(dev, &ifr, set ? SIOCSHWTSTAMP : SIOCGHWTSTAMP);
	if (!err && copy_from_user(cfg, ubuf, sizeof(*cfg)))
		err = -EFAULT;
out:
	vm_munmap(addr, PAGE_SIZE);
	return err;
}
#endif

/* extack must not be NULL: the 6.6+ helpers write to it */
static int mgcap_hwts_do(struct net_device *dev, bool set,
			 struct hwtstamp_config *cfg,
			 struct netlink_ext_ack *extack)
{
	int err;

	ASSERT_RTNL();
	if (!mgcap_hwts_has_ops(dev)) {
		NL_SET_ERR_MSG_MOD(extack, "hardware timestamping not supported");
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

/* the device's configuration as the driver reports it; under RTNL */
int mgcap_hwtstamp_get(struct net_device *dev, struct hwtstamp_config *cfg,
		       struct netlink_ext_ack *extack)
{
	memset(cfg, 0, sizeof(*cfg));
	return mgcap_hwts_do(dev, false, cfg, extack);
}

static struct mgcap_hwts_saved *mgcap_hwts_saved_of(struct net_device *dev)
{
	struct mgcap_hwts_saved *s;

	list_for_each_entry(s, &mgcap_hwts_saved_list, list)
		if (s->dev == dev)
			return s;
	return NULL;
}

/*
 * Configure the device; cfg becomes what the driver applied (it may widen
 * the receive filter).  The first change saves the previous configuration.
 * Under RTNL.
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
	list_del(&s->list);
	kfree(s);
}

/* capture on dev stopped: put its saved configuration back; under RTNL */
void mgcap_hwtstamp_restore(struct net_device *dev)
{
	struct mgcap_hwts_saved *s;

	ASSERT_RTNL();
	s = mgcap_hwts_saved_of(dev);
	if (s)
		mgcap_hwts_put_back(s);
}

/* module unload: every saved configuration back; under RTNL */
void mgcap_hwtstamp_restore_all(void)
{
	struct mgcap_hwts_saved *s, *tmp;

	ASSERT_RTNL();
	list_for_each_entry_safe(s, tmp, &mgcap_hwts_saved_list, list)
		mgcap_hwts_put_back(s);
}

/* dev is going away: forget it, nothing to restore; under RTNL */
void mgcap_hwtstamp_forget(struct net_device *dev)
{
	struct mgcap_hwts_saved *s;

	ASSERT_RTNL();
	s = mgcap_hwts_saved_of(dev);
	if (s) {
		list_del(&s->list);
		kfree(s);
	}
}

// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: module parameters, load and unload, and the netdevice notifier
 * that stops capture on a device that goes away.
 */
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/string.h>

#include "mgcap.h"

static char *ifname;
module_param(ifname, charp, 0444);
MODULE_PARM_DESC(ifname,
		 "Devices to capture from load on, comma separated (init netns)");

static char *mode = "mirror";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "Default capture mode: mirror or drop (default mirror)");

static unsigned int snaplen = MGCAP_SNAPLEN_DEFAULT;
module_param(snaplen, uint, 0444);
MODULE_PARM_DESC(snaplen, "Default snapshot length in bytes, 1-262144 (default 96)");

static unsigned int ring_size = MGCAP_RING_SIZE_DEFAULT;
module_param(ring_size, uint, 0444);
MODULE_PARM_DESC(ring_size,
		 "Default ring size per CPU in bytes, a power of two from 64 KiB to 1 GiB (default 4 MiB)");

struct mgcap_params mgcap_default_params;

static int mgcap_parse_mode(const char *s, u32 *out)
{
	if (sysfs_streq(s, "mirror"))
		*out = MGCAP_MODE_MIRROR;
	else if (sysfs_streq(s, "drop"))
		*out = MGCAP_MODE_DROP;
	else
		return -EINVAL;
	return 0;
}

static void mgcap_stop_all(bool closing)
{
	struct mgcap_capture *cap, *tmp;

	rtnl_lock();
	if (closing)
		mgcap_nl_close();
	list_for_each_entry_safe(cap, tmp, &mgcap_captures, list)
		mgcap_capture_stop(cap);
	rtnl_unlock();
}

static int mgcap_netdev_event(struct notifier_block *nb, unsigned long event,
			      void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct mgcap_capture *cap;

	switch (event) {
	case NETDEV_UNREGISTER:
		/* the device leaves, or changes netns with its NIC setting */
		mgcap_hwtstamp_unregister(dev);
		cap = mgcap_capture_of(dev);
		if (cap)
			mgcap_capture_stop(cap);
		break;
	case NETDEV_CHANGENAME:
		cap = mgcap_capture_of(dev);
		if (cap)
			mgcap_capture_rename(cap);
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block mgcap_netdev_notifier = {
	.notifier_call = mgcap_netdev_event,
};

/*
 * An extack message for the kernel log at load time: NL_SET_ERR_MSG_MOD put
 * "mgcap: " in front of it, which the log line already has.
 */
static const char *mgcap_load_msg(const struct netlink_ext_ack *extack,
				  const char *fallback)
{
	if (!extack->_msg)
		return fallback;
	return extack->_msg + str_has_prefix(extack->_msg, KBUILD_MODNAME ": ");
}

/* ifname=a,b: start mirror capture on each, all or nothing */
static int mgcap_start_param_devices(void)
{
	struct netlink_ext_ack extack = {};
	struct mgcap_capture *cap;
	char *list, *cur, *name;
	int err = 0;

	if (!ifname || !*ifname)
		return 0;
	list = kstrdup(ifname, GFP_KERNEL);
	if (!list)
		return -ENOMEM;
	cur = list;
	rtnl_lock();
	while ((name = strsep(&cur, ",")) != NULL) {
		struct net_device *dev;

		name = strim(name);
		if (!*name)
			continue;
		dev = __dev_get_by_name(&init_net, name);
		if (!dev) {
			pr_err("mgcap: ifname=%s: no such device\n", name);
			err = -ENODEV;
			break;
		}
		cap = mgcap_capture_alloc(mgcap_default_params.mode, snaplen,
					  ring_size, &extack);
		err = IS_ERR(cap) ? PTR_ERR(cap) : 0;
		/* module load is an init-namespace admin's act: not limited */
		if (!err)
			err = mgcap_budget_reserve(cap, &init_user_ns, false,
						   &extack);
		if (!err)
			err = mgcap_capture_alloc_rings(cap, &extack);
		if (!err)
			err = mgcap_capture_start(dev, cap, NULL, &extack);
		if (err) {
			if (!IS_ERR(cap))
				mgcap_capture_put(cap);
			pr_err("mgcap: %s: %s (%d)\n", name,
			       mgcap_load_msg(&extack, "cannot start"), err);
			break;
		}
	}
	rtnl_unlock();
	kfree(list);
	if (err)
		mgcap_stop_all(false);
	return err;
}

static int __init mgcap_init(void)
{
	struct netlink_ext_ack extack = {};
	int err;

	if (mgcap_parse_mode(mode, &mgcap_default_params.mode)) {
		pr_err("mgcap: mode=%s: must be mirror or drop\n", mode);
		return -EINVAL;
	}
	if (snaplen < MGCAP_SNAPLEN_MIN || snaplen > MGCAP_SNAPLEN_MAX) {
		pr_err("mgcap: snaplen=%u: out of range (1 to 262144)\n", snaplen);
		return -EINVAL;
	}
	err = mgcap_validate_ring_size(ring_size, snaplen, &extack);
	if (err) {
		pr_err("mgcap: ring_size=%u: %s\n", ring_size,
		       mgcap_load_msg(&extack, "invalid"));
		return err;
	}

	mgcap_default_params.snaplen = snaplen;
	mgcap_default_params.ring_size = ring_size;

	err = mgcap_chardev_init();
	if (err)
		return err;
	err = mgcap_cpuhp_init();
	if (err)
		goto err_chardev;
	err = register_netdevice_notifier(&mgcap_netdev_notifier);
	if (err)
		goto err_cpuhp;
	err = mgcap_owner_init();
	if (err)
		goto err_notifier;
	err = mgcap_start_param_devices();
	if (err)
		goto err_owner;
	/* last: no request can come in before everything else is ready */
	err = mgcap_nl_init();
	if (err)
		goto err_stop;
	return 0;

err_stop:
	mgcap_stop_all(false);
err_owner:
	mgcap_owner_exit();
err_notifier:
	unregister_netdevice_notifier(&mgcap_netdev_notifier);
err_cpuhp:
	mgcap_cpuhp_exit();
err_chardev:
	mgcap_chardev_exit();
	return err;
}

static void __exit mgcap_exit(void)
{
	mgcap_stop_all(true);
	mgcap_owner_exit();
	mgcap_nl_exit();
	/* no request runs any more: put back what hwtstamp-set changed */
	rtnl_lock();
	mgcap_hwtstamp_restore_all();
	rtnl_unlock();
	unregister_netdevice_notifier(&mgcap_netdev_notifier);
	mgcap_cpuhp_exit();
	mgcap_chardev_exit();
	/* filters replaced while capturing are freed by RCU callbacks */
	rcu_barrier();
}

module_init(mgcap_init);
module_exit(mgcap_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mgcap: per-CPU ring packet capture through an rx_handler");
MODULE_AUTHOR("mgcap developers");
MODULE_VERSION(MGCAP_VERSION);

// SPDX-License-Identifier: GPL-2.0
/*
 * mgnull: an rx_handler that does nothing, for the benchmark only
 * (tests/bench).  It measures the physical limit of a capture hook: the cost
 * of the rx_handler call itself, with the frame passed on to the stack
 * (consume=0, what mgcap's mirror mode is measured against) or consumed
 * (consume=1, what drop mode is measured against).
 *
 *   insmod mgnull.ko ifname=d0 consume=1
 */
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/skbuff.h>

static char *ifname = "d0";
module_param(ifname, charp, 0444);
MODULE_PARM_DESC(ifname, "Device whose receive path gets the null handler");

static bool consume;
module_param(consume, bool, 0444);
MODULE_PARM_DESC(consume, "Consume every frame instead of passing it on");

static struct net_device *mgnull_dev;	/* under RTNL */

static rx_handler_result_t mgnull_rx_handler(struct sk_buff **pskb)
{
	if (!consume)
		return RX_HANDLER_PASS;
	consume_skb(*pskb);
	return RX_HANDLER_CONSUMED;
}

static void mgnull_detach(void)
{
	ASSERT_RTNL();
	if (!mgnull_dev)
		return;
	netdev_rx_handler_unregister(mgnull_dev);
	mgnull_dev = NULL;
}

static int mgnull_netdev_event(struct notifier_block *nb, unsigned long event,
			       void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);

	if (event == NETDEV_UNREGISTER && dev == mgnull_dev)
		mgnull_detach();
	return NOTIFY_DONE;
}

static struct notifier_block mgnull_notifier = {
	.notifier_call = mgnull_netdev_event,
};

static int __init mgnull_init(void)
{
	struct net_device *dev;
	int err;

	err = register_netdevice_notifier(&mgnull_notifier);
	if (err)
		return err;
	rtnl_lock();
	dev = __dev_get_by_name(&init_net, ifname);
	if (!dev)
		err = -ENODEV;
	else
		err = netdev_rx_handler_register(dev, mgnull_rx_handler, NULL);
	if (!err)
		mgnull_dev = dev;
	rtnl_unlock();
	if (err)
		unregister_netdevice_notifier(&mgnull_notifier);
	return err;
}

static void __exit mgnull_exit(void)
{
	rtnl_lock();
	mgnull_detach();
	rtnl_unlock();
	unregister_netdevice_notifier(&mgnull_notifier);
}

module_init(mgnull_init);
module_exit(mgnull_exit);
MODULE_DESCRIPTION("Null rx_handler for the mgcap benchmark");
MODULE_LICENSE("GPL");

// SPDX-License-Identifier: GPL-2.0
/*
 * mgts: a test-only Ethernet device with deterministic hardware timestamps,
 * for mgcap's VM tests.  Never installed.
 *
 * Loading creates mgts0 .. mgts<count-1>.  Every frame a device transmits
 * comes back as a received frame of the same device (netif_rx), so an
 * AF_PACKET send or a ping on it produces RX frames.  While its receive
 * filter is not "none", each such frame carries a hardware timestamp from
 * one sequence shared by all the devices:
 *
 *   stamp(n) = ts_base_ns + n * ts_step_ns,   n = 0, 1, 2, ...
 *
 * Writing ts_next (/sys/module/mgts/parameters/ts_next) sets the n of the
 * next stamped frame (0 restarts the sequence); ts_base_ns and ts_step_ns are
 * writable too.
 *
 * Timestamping is configured like a real NIC's: ndo_hwtstamp_get/set where
 * the kernel has them (6.6+), SIOC[GS]HWTSTAMP through ndo_eth_ioctl
 * otherwise, or on any kernel with legacy=1.  Accepted: tx off/on; rx none
 * and all as asked, every PTP v2 filter widened to ptp-v2-event, and every
 * other filter (some, PTP v1, NTP) widened to all, the way drivers widen to
 * what their hardware can do.  Once any filter is on, every received frame
 * is stamped (as with rx all).  No transmit stamps are delivered.
 *
 * With netdev_tstamp=1 a stamp is stored the way igc stores its own: the
 * frame carries SKBTX_HW_TSTAMP_NETDEV and skb_hwtstamps()->netdev_data
 * points at the stamp, kept at the start of the frame's buffer, which
 * ndo_get_tstamp() reads; a reader that takes hwtstamp as is gets the
 * pointer.  eth_ioctl_calls counts the calls of ndo_eth_ioctl.
 */
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/module.h>
#include <linux/net_tstamp.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <linux/uaccess.h>

static unsigned int count = 1;
module_param(count, uint, 0444);
MODULE_PARM_DESC(count, "Number of devices mgts0.. to create (1-16, default 1)");

static bool legacy;
module_param(legacy, bool, 0444);
MODULE_PARM_DESC(legacy,
		 "Configure timestamping through ndo_eth_ioctl even where ndo_hwtstamp_get/set exist");

static bool netdev_tstamp;
module_param(netdev_tstamp, bool, 0444);
MODULE_PARM_DESC(netdev_tstamp,
		 "Leave a pointer for ndo_get_tstamp in the frames instead of the stamp (as igc)");

static atomic_t mgts_eth_ioctl_calls = ATOMIC_INIT(0);

static int mgts_calls_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&mgts_eth_ioctl_calls));
}

static const struct kernel_param_ops mgts_calls_ops = {
	.get = mgts_calls_get,
};

module_param_cb(eth_ioctl_calls, &mgts_calls_ops, NULL, 0444);
MODULE_PARM_DESC(eth_ioctl_calls, "Calls of ndo_eth_ioctl so far (read only)");

static unsigned long long ts_base_ns = 1700000000ULL * NSEC_PER_SEC;
module_param(ts_base_ns, ullong, 0644);
MODULE_PARM_DESC(ts_base_ns, "First stamp of the sequence, ns since the epoch");

static unsigned long long ts_step_ns = 1000;
module_param(ts_step_ns, ullong, 0644);
MODULE_PARM_DESC(ts_step_ns, "Nanoseconds between stamps of the sequence");

static atomic64_t mgts_next = ATOMIC64_INIT(0);

static int mgts_next_set(const char *val, const struct kernel_param *kp)
{
	u64 n;
	int err = kstrtou64(val, 0, &n);

	if (err)
		return err;
	atomic64_set(&mgts_next, n);
	return 0;
}

static int mgts_next_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&mgts_next));
}

static const struct kernel_param_ops mgts_next_ops = {
	.set = mgts_next_set,
	.get = mgts_next_get,
};

module_param_cb(ts_next, &mgts_next_ops, NULL, 0644);
MODULE_PARM_DESC(ts_next, "Index n of the next stamp; write 0 to restart");

#define MGTS_MAX_DEVS	16

struct mgts_priv {
	int rx_filter;		/* HWTSTAMP_FILTER_*, written under RTNL */
	int tx_type;		/* HWTSTAMP_TX_* */
};

static struct net_device *mgts_devs[MGTS_MAX_DEVS];

/* check a configuration and widen it to what the device does */
static int mgts_hwts_apply(struct net_device *dev, int flags, int *rx, int *tx)
{
	struct mgts_priv *priv = netdev_priv(dev);

	if (flags)
		return -EINVAL;
	if (*tx != HWTSTAMP_TX_OFF && *tx != HWTSTAMP_TX_ON)
		return -ERANGE;
	switch (*rx) {
	case HWTSTAMP_FILTER_NONE:
	case HWTSTAMP_FILTER_ALL:
	case HWTSTAMP_FILTER_PTP_V2_EVENT:
		break;
	case HWTSTAMP_FILTER_PTP_V2_L4_EVENT:
	case HWTSTAMP_FILTER_PTP_V2_L4_SYNC:
	case HWTSTAMP_FILTER_PTP_V2_L4_DELAY_REQ:
	case HWTSTAMP_FILTER_PTP_V2_L2_EVENT:
	case HWTSTAMP_FILTER_PTP_V2_L2_SYNC:
	case HWTSTAMP_FILTER_PTP_V2_L2_DELAY_REQ:
	case HWTSTAMP_FILTER_PTP_V2_SYNC:
	case HWTSTAMP_FILTER_PTP_V2_DELAY_REQ:
		*rx = HWTSTAMP_FILTER_PTP_V2_EVENT;
		break;
	case HWTSTAMP_FILTER_SOME:
	case HWTSTAMP_FILTER_PTP_V1_L4_EVENT:
	case HWTSTAMP_FILTER_PTP_V1_L4_SYNC:
	case HWTSTAMP_FILTER_PTP_V1_L4_DELAY_REQ:
	case HWTSTAMP_FILTER_NTP_ALL:
		*rx = HWTSTAMP_FILTER_ALL;
		break;
	default:
		return -ERANGE;
	}
	WRITE_ONCE(priv->rx_filter, *rx);
	WRITE_ONCE(priv->tx_type, *tx);
	netdev_dbg(dev, "hwtstamp rx filter %d tx %d\n", *rx, *tx);
	return 0;
}

/* the old API: struct hwtstamp_config at a user pointer */
static int mgts_eth_ioctl(struct net_device *dev, struct ifreq *ifr, int cmd)
{
	struct mgts_priv *priv = netdev_priv(dev);
	struct hwtstamp_config cfg;
	int err;

	atomic_inc(&mgts_eth_ioctl_calls);
	switch (cmd) {
	case SIOCGHWTSTAMP:
		memset(&cfg, 0, sizeof(cfg));
		cfg.rx_filter = priv->rx_filter;
		cfg.tx_type = priv->tx_type;
		break;
	case SIOCSHWTSTAMP:
		if (copy_from_user(&cfg, ifr->ifr_data, sizeof(cfg)))
			return -EFAULT;
		err = mgts_hwts_apply(dev, cfg.flags, &cfg.rx_filter,
				      &cfg.tx_type);
		if (err)
			return err;
		break;
	default:
		return -EOPNOTSUPP;
	}
	return copy_to_user(ifr->ifr_data, &cfg, sizeof(cfg)) ? -EFAULT : 0;
}

#ifdef MGTS_HAVE_NDO_HWTSTAMP
/* the new API: struct kernel_hwtstamp_config */
static int mgts_hwtstamp_get(struct net_device *dev,
			     struct kernel_hwtstamp_config *cfg)
{
	struct mgts_priv *priv = netdev_priv(dev);

	cfg->flags = 0;
	cfg->rx_filter = priv->rx_filter;
	cfg->tx_type = priv->tx_type;
	return 0;
}

static int mgts_hwtstamp_set(struct net_device *dev,
			     struct kernel_hwtstamp_config *cfg,
			     struct netlink_ext_ack *extack)
{
	int err = mgts_hwts_apply(dev, cfg->flags, &cfg->rx_filter,
				  &cfg->tx_type);

	if (err == -ERANGE)
		NL_SET_ERR_MSG_MOD(extack, "timestamp setting not supported");
	return err;
}
#endif

/* netdev_tstamp: the stamp is at the start of the buffer, as put by mgts_stamp() */
static ktime_t mgts_get_tstamp(struct net_device *dev,
			       const struct skb_shared_hwtstamps *hwtstamps,
			       bool cycles)
{
	ktime_t stamp;

	memcpy(&stamp, hwtstamps->netdev_data, sizeof(stamp));
	return stamp;
}

/* store the stamp as the driver does, or false if the frame has no room */
static bool mgts_stamp(struct sk_buff *skb, ktime_t stamp)
{
	if (!netdev_tstamp) {
		skb_hwtstamps(skb)->hwtstamp = stamp;
		return true;
	}
	/* the stamp goes before the frame, at skb->head, as igc's before its data */
	if (skb_headroom(skb) < sizeof(stamp) &&
	    pskb_expand_head(skb, sizeof(stamp), 0, GFP_ATOMIC))
		return false;
	memcpy(skb->head, &stamp, sizeof(stamp));
	skb_hwtstamps(skb)->netdev_data = skb->head;
	skb_shinfo(skb)->tx_flags |= SKBTX_HW_TSTAMP_NETDEV;
	return true;
}

/* the frame comes back as a received one, stamped if the filter is on */
static netdev_tx_t mgts_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct mgts_priv *priv = netdev_priv(dev);
	unsigned int len;
	u64 n;

	skb_tx_timestamp(skb);
	/* packet taps may hold clones sharing skb_shinfo(): stamp a copy */
	skb = skb_unshare(skb, GFP_ATOMIC);
	if (!skb) {
		DEV_STATS_INC(dev, tx_dropped);
		return NETDEV_TX_OK;
	}
	skb_scrub_packet(skb, false);
	skb_orphan(skb);
	len = skb->len;
	DEV_STATS_INC(dev, tx_packets);
	DEV_STATS_ADD(dev, tx_bytes, len);

	if (READ_ONCE(priv->rx_filter) != HWTSTAMP_FILTER_NONE) {
		n = atomic64_fetch_inc(&mgts_next);
		if (!mgts_stamp(skb, ns_to_ktime(READ_ONCE(ts_base_ns) +
						 n * READ_ONCE(ts_step_ns)))) {
			DEV_STATS_INC(dev, rx_dropped);
			kfree_skb(skb);
			return NETDEV_TX_OK;
		}
	}
	skb->protocol = eth_type_trans(skb, dev);
	if (netif_rx(skb) == NET_RX_SUCCESS) {
		DEV_STATS_INC(dev, rx_packets);
		DEV_STATS_ADD(dev, rx_bytes, len);
	} else {
		DEV_STATS_INC(dev, rx_dropped);
	}
	return NETDEV_TX_OK;
}

#ifdef MGTS_HAVE_KERNEL_TS_INFO
#define MGTS_TS_INFO	kernel_ethtool_ts_info
#else
#define MGTS_TS_INFO	ethtool_ts_info
#endif

static int mgts_get_ts_info(struct net_device *dev, struct MGTS_TS_INFO *info)
{
	info->so_timestamping = SOF_TIMESTAMPING_RX_HARDWARE |
				SOF_TIMESTAMPING_RAW_HARDWARE |
				SOF_TIMESTAMPING_TX_SOFTWARE |
				SOF_TIMESTAMPING_RX_SOFTWARE |
				SOF_TIMESTAMPING_SOFTWARE;
	info->phc_index = -1;
	info->tx_types = BIT(HWTSTAMP_TX_OFF) | BIT(HWTSTAMP_TX_ON);
	info->rx_filters = BIT(HWTSTAMP_FILTER_NONE) |
			   BIT(HWTSTAMP_FILTER_ALL) |
			   BIT(HWTSTAMP_FILTER_PTP_V2_EVENT);
	return 0;
}

static const struct ethtool_ops mgts_ethtool_ops = {
	.get_link = ethtool_op_get_link,
	.get_ts_info = mgts_get_ts_info,
};

static const struct net_device_ops mgts_legacy_ops = {
	.ndo_start_xmit = mgts_xmit,
	.ndo_eth_ioctl = mgts_eth_ioctl,
	.ndo_get_tstamp = mgts_get_tstamp,
	.ndo_set_mac_address = eth_mac_addr,
	.ndo_validate_addr = eth_validate_addr,
};

#ifdef MGTS_HAVE_NDO_HWTSTAMP
static const struct net_device_ops mgts_ops = {
	.ndo_start_xmit = mgts_xmit,
	.ndo_hwtstamp_get = mgts_hwtstamp_get,
	.ndo_hwtstamp_set = mgts_hwtstamp_set,
	.ndo_get_tstamp = mgts_get_tstamp,
	.ndo_set_mac_address = eth_mac_addr,
	.ndo_validate_addr = eth_validate_addr,
};
#endif

static void mgts_destroy(void)
{
	unsigned int i;

	for (i = 0; i < MGTS_MAX_DEVS; i++) {
		if (!mgts_devs[i])
			continue;
		unregister_netdev(mgts_devs[i]);
		free_netdev(mgts_devs[i]);
		mgts_devs[i] = NULL;
	}
}

static int __init mgts_init(void)
{
	struct net_device *dev;
	unsigned int i;
	int err;

	if (count < 1 || count > MGTS_MAX_DEVS)
		return -EINVAL;
	for (i = 0; i < count; i++) {
		dev = alloc_netdev(sizeof(struct mgts_priv), "mgts%d",
				   NET_NAME_ENUM, ether_setup);
		if (!dev) {
			err = -ENOMEM;
			goto err;
		}
		dev->netdev_ops = &mgts_legacy_ops;
#ifdef MGTS_HAVE_NDO_HWTSTAMP
		if (!legacy)
			dev->netdev_ops = &mgts_ops;
#endif
		dev->ethtool_ops = &mgts_ethtool_ops;
		dev->priv_flags |= IFF_NO_QUEUE;
		eth_hw_addr_random(dev);
		err = register_netdev(dev);
		if (err) {
			free_netdev(dev);
			goto err;
		}
		mgts_devs[i] = dev;
	}
	return 0;

err:
	mgts_destroy();
	return err;
}

static void __exit mgts_exit(void)
{
	mgts_destroy();
}

module_init(mgts_init);
module_exit(mgts_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mgts: test Ethernet device with deterministic hardware timestamps");
MODULE_AUTHOR("mgcap developers");

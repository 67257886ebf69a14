// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: the generic netlink family "mgcap" (netlink-spec/mgcap.yaml).
 *
 * Every handler runs under RTNL, which also guards the capture list.  The
 * policies below are checked against the spec by the VM tests (policy dump);
 * the command and attribute numbers come from the header generated from it.
 */
#include <linux/net_tstamp.h>
#include <linux/rtnetlink.h>
#include <net/genetlink.h>
#include <net/sock.h>

#include "mgcap.h"

static struct genl_family mgcap_nl_family;

/* longest filter-expr, without its NUL */
#define MGCAP_FILTER_EXPR_MAX	4095

/* set by module unload: no capture may start any more */
static bool mgcap_nl_closing;
/* notifications need a registered family (it is registered last at load) */
static bool mgcap_nl_registered;

/* not const: older kernels' NLA_POLICY_FULL_RANGE() take a plain pointer */
static struct netlink_range_validation mgcap_snaplen_range = {
	.min = MGCAP_SNAPLEN_MIN,
	.max = MGCAP_SNAPLEN_MAX,
};

static struct netlink_range_validation mgcap_ring_size_range = {
	.min = MGCAP_RING_SIZE_MIN,
	.max = MGCAP_RING_SIZE_MAX,
};

#define MGCAP_POLICY_DEV_SELECT						\
	[MGCAP_A_DEV_IFINDEX] = NLA_POLICY_MIN(NLA_U32, 1),		\
	[MGCAP_A_DEV_IFNAME] = { .type = NLA_NUL_STRING, .len = IFNAMSIZ - 1 }

static const struct nla_policy mgcap_dev_select_policy[MGCAP_A_DEV_IFNAME + 1] = {
	MGCAP_POLICY_DEV_SELECT,
};

/* the program's length and contents are checked by mgcap_filter_create() */
#define MGCAP_POLICY_FILTER						\
	[MGCAP_A_DEV_FILTER] = { .type = NLA_BINARY },			\
	[MGCAP_A_DEV_FILTER_EXPR] = { .type = NLA_NUL_STRING,		\
				      .len = MGCAP_FILTER_EXPR_MAX }

static const struct nla_policy mgcap_dev_start_policy[MGCAP_A_DEV_SOCKET_OWNER + 1] = {
	MGCAP_POLICY_DEV_SELECT,
	MGCAP_POLICY_FILTER,
	[MGCAP_A_DEV_SOCKET_OWNER] = { .type = NLA_FLAG },
	[MGCAP_A_DEV_MODE] = NLA_POLICY_RANGE(NLA_U32, MGCAP_MODE_DROP,
					      MGCAP_MODE_MIRROR),
	[MGCAP_A_DEV_SNAPLEN] = NLA_POLICY_FULL_RANGE(NLA_U32,
						      &mgcap_snaplen_range),
	[MGCAP_A_DEV_RING_SIZE] = NLA_POLICY_FULL_RANGE(NLA_U32,
							&mgcap_ring_size_range),
};

static const struct nla_policy mgcap_dev_set_policy[MGCAP_A_DEV_FILTER_CLEAR + 1] = {
	MGCAP_POLICY_DEV_SELECT,
	MGCAP_POLICY_FILTER,
	[MGCAP_A_DEV_FILTER_CLEAR] = { .type = NLA_FLAG },
	[MGCAP_A_DEV_MODE] = NLA_POLICY_RANGE(NLA_U32, MGCAP_MODE_DROP,
					      MGCAP_MODE_MIRROR),
	[MGCAP_A_DEV_SNAPLEN] = NLA_POLICY_FULL_RANGE(NLA_U32,
						      &mgcap_snaplen_range),
};

static const struct nla_policy mgcap_hwtstamp_set_policy[MGCAP_A_DEV_HWTSTAMP_SAVED_TX + 1] = {
	MGCAP_POLICY_DEV_SELECT,
	[MGCAP_A_DEV_HWTSTAMP_RX] = NLA_POLICY_MAX(NLA_U32,
						   MGCAP_HWTSTAMP_RX_NTP_ALL),
	[MGCAP_A_DEV_HWTSTAMP_TX] = NLA_POLICY_MAX(NLA_U32,
						   MGCAP_HWTSTAMP_TX_ONESTEP_P2P),
	[MGCAP_A_DEV_HWTSTAMP_USER] = { .type = NLA_FLAG },
	[MGCAP_A_DEV_HWTSTAMP_SAVED_RX] = NLA_POLICY_MAX(NLA_U32,
							 MGCAP_HWTSTAMP_RX_NTP_ALL),
	[MGCAP_A_DEV_HWTSTAMP_SAVED_TX] = NLA_POLICY_MAX(NLA_U32,
							 MGCAP_HWTSTAMP_TX_ONESTEP_P2P),
};

/* the device named by ifindex or ifname, in the caller's netns, under RTNL */
static struct net_device *mgcap_nl_dev(struct genl_info *info)
{
	struct nlattr *ifindex = info->attrs[MGCAP_A_DEV_IFINDEX];
	struct nlattr *ifname = info->attrs[MGCAP_A_DEV_IFNAME];
	struct net *net = genl_info_net(info);
	struct net_device *dev;

	ASSERT_RTNL();
	if (ifindex) {
		dev = __dev_get_by_index(net, nla_get_u32(ifindex));
		if (!dev) {
			NL_SET_ERR_MSG_ATTR(info->extack, ifindex, "no such device");
			return ERR_PTR(-ENODEV);
		}
		if (ifname && nla_strcmp(ifname, dev->name)) {
			NL_SET_ERR_MSG_ATTR(info->extack, ifname,
					    "ifindex and ifname name different devices");
			return ERR_PTR(-EINVAL);
		}
		return dev;
	}
	if (ifname) {
		dev = __dev_get_by_name(net, nla_data(ifname));
		if (!dev) {
			NL_SET_ERR_MSG_ATTR(info->extack, ifname, "no such device");
			return ERR_PTR(-ENODEV);
		}
		return dev;
	}
	NL_SET_ERR_MSG(info->extack, "a device is required (ifindex or ifname)");
	NL_SET_ERR_ATTR_MISS(info->extack, NULL, MGCAP_A_DEV_IFINDEX);
	return ERR_PTR(-EINVAL);
}

static int mgcap_nl_put_stats(struct sk_buff *skb, int attr, int cpu,
			      const struct mgcap_stats *s)
{
	struct nlattr *nest = nla_nest_start(skb, attr);

	if (!nest)
		return -EMSGSIZE;
	if ((cpu >= 0 && nla_put_u32(skb, MGCAP_A_STATS_CPU, cpu)) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_SEEN_PACKETS, s->seen_packets,
			      MGCAP_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_SEEN_BYTES, s->seen_bytes,
			      MGCAP_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_CAPTURED_PACKETS,
			      s->captured_packets, MGCAP_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_CAPTURED_BYTES,
			      s->captured_bytes, MGCAP_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_RING_FULL_DROPS,
			      s->ring_full_drops, MGCAP_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_CONSUMED_PACKETS,
			      s->consumed_packets, MGCAP_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_COPY_ERRORS, s->copy_errors,
			      MGCAP_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_HW_STAMPED_PACKETS,
			      s->hw_stamped_packets, MGCAP_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, MGCAP_A_STATS_FILTERED_PACKETS,
			      s->filtered_packets, MGCAP_A_STATS_PAD)) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

/* an upper bound of a dev message's size */
static size_t mgcap_nl_dev_size(void)
{
	size_t stats = nla_total_size(0) + nla_total_size(sizeof(u32)) +
		       9 * nla_total_size_64bit(sizeof(u64));

	return NLMSG_ALIGN(GENL_HDRLEN) +
	       5 * nla_total_size(sizeof(u32)) +	/* ifindex mode .. */
	       2 * nla_total_size(sizeof(u32)) +	/* .. link-type nr-rings */
	       2 * nla_total_size(sizeof(u32)) +	/* hwtstamp-rx, -tx */
	       2 * nla_total_size(sizeof(u32)) +	/* hwtstamp-saved-* */
	       nla_total_size(sizeof(u32)) +		/* owner-portid */
	       nla_total_size(sizeof(u8)) +		/* capturing */
	       nla_total_size(IFNAMSIZ) +		/* ifname */
	       nla_total_size(MGCAP_CHARDEV_NAME_MAX) +	/* chardev */
	       nla_total_size(BPF_MAXINSNS * sizeof(struct sock_filter)) +
	       nla_total_size(MGCAP_FILTER_EXPR_MAX + 1) +	/* filter-expr */
	       (1 + nr_cpu_ids) * stats;
}

/*
 * The timestamp part of a dev message, never calling a legacy driver: while
 * capturing, the setting (mgcap_hwtstamp_report()); once stopped, for the
 * stop event, what user space is to put back on a legacy device.  A device
 * with nothing to say has no hwtstamp attributes.
 */
static int mgcap_nl_put_hwts(struct sk_buff *skb, struct mgcap_capture *cap)
{
	struct hwtstamp_config cfg;

	if (!cap->dev)
		return 0;
	if (!READ_ONCE(cap->stopped)) {
		if (mgcap_hwtstamp_report(cap->dev, &cfg))
			return 0;
		if (nla_put_u32(skb, MGCAP_A_DEV_HWTSTAMP_RX, cfg.rx_filter) ||
		    nla_put_u32(skb, MGCAP_A_DEV_HWTSTAMP_TX, cfg.tx_type))
			return -EMSGSIZE;
		return 0;
	}
	if (!mgcap_hwtstamp_pending(cap->dev, &cfg))
		return 0;
	if (nla_put_u32(skb, MGCAP_A_DEV_HWTSTAMP_SAVED_RX, cfg.rx_filter) ||
	    nla_put_u32(skb, MGCAP_A_DEV_HWTSTAMP_SAVED_TX, cfg.tx_type))
		return -EMSGSIZE;
	return 0;
}

/*
 * One message for do, dump and notification: a device by ifindex and name,
 * and its capture if it has one (cap may be stopped, for the stop event).
 */
static int mgcap_nl_fill_dev(struct sk_buff *skb, int ifindex,
			     const char *ifname, struct mgcap_capture *cap,
			     u32 portid, u32 seq, int flags, u8 cmd,
			     struct netlink_callback *cb)
{
	struct mgcap_stats total, s;
	struct mgcap_filter *flt;
	unsigned int cpu;
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &mgcap_nl_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;
	if (cb)
		genl_dump_check_consistent(cb, hdr);
	if (nla_put_u32(skb, MGCAP_A_DEV_IFINDEX, ifindex) ||
	    nla_put_string(skb, MGCAP_A_DEV_IFNAME, ifname) ||
	    nla_put_u8(skb, MGCAP_A_DEV_CAPTURING,
		       cap && !READ_ONCE(cap->stopped)))
		goto cancel;
	if (!cap)
		goto end;
	if (nla_put_u32(skb, MGCAP_A_DEV_MODE, READ_ONCE(cap->mode)) ||
	    nla_put_u32(skb, MGCAP_A_DEV_SNAPLEN, READ_ONCE(cap->snaplen)) ||
	    nla_put_u32(skb, MGCAP_A_DEV_RING_SIZE, cap->ring_size) ||
	    nla_put_u32(skb, MGCAP_A_DEV_NR_RINGS, cap->nr_rings) ||
	    nla_put_u32(skb, MGCAP_A_DEV_LINK_TYPE, cap->link_type) ||
	    nla_put_string(skb, MGCAP_A_DEV_CHARDEV, cap->chardev_name) ||
	    (cap->owner_portid &&
	     nla_put_u32(skb, MGCAP_A_DEV_OWNER_PORTID, cap->owner_portid)))
		goto cancel;
	flt = rcu_dereference_rtnl(cap->filter);
	if (flt &&
	    (nla_put(skb, MGCAP_A_DEV_FILTER, flt->len * sizeof(*flt->insns),
		     flt->insns) ||
	     (flt->expr &&
	      nla_put_string(skb, MGCAP_A_DEV_FILTER_EXPR, flt->expr))))
		goto cancel;
	if (mgcap_nl_put_hwts(skb, cap))
		goto cancel;
	mgcap_capture_stats(cap, &total);
	if (mgcap_nl_put_stats(skb, MGCAP_A_DEV_STATS, -1, &total))
		goto cancel;
	for (cpu = 0; cpu < cap->nr_rings; cpu++) {
		if (!cap->rings[cpu])
			continue;
		memset(&s, 0, sizeof(s));
		mgcap_ring_stats_add(cap->rings[cpu], &s);
		if (mgcap_nl_put_stats(skb, MGCAP_A_DEV_CPU_STATS, cpu, &s))
			goto cancel;
	}
end:
	genlmsg_end(skb, hdr);
	return 0;
cancel:
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

static struct sk_buff *mgcap_nl_dev_msg(void)
{
	return genlmsg_new(mgcap_nl_dev_size(), GFP_KERNEL);
}

/* send msg from mgcap_nl_dev_msg() filled with the device's state */
static int mgcap_nl_reply_dev(struct genl_info *info, struct sk_buff *msg,
			      struct net_device *dev, struct mgcap_capture *cap)
{
	int err;

	err = mgcap_nl_fill_dev(msg, dev->ifindex, dev->name, cap,
				info->snd_portid, info->snd_seq, 0,
				info->genlhdr->cmd, NULL);
	if (err) {
		nlmsg_free(msg);
		return err;
	}
	return genlmsg_reply(msg, info);
}

/* tell the monitor group of a start, stop or change; under RTNL */
void mgcap_nl_notify(struct mgcap_capture *cap, u8 cmd)
{
	struct sk_buff *msg;

	ASSERT_RTNL();
	if (!mgcap_nl_registered ||
	    !genl_has_listeners(&mgcap_nl_family, cap->net, MGCAP_NLGRP_MONITOR))
		return;
	msg = genlmsg_new(mgcap_nl_dev_size(), GFP_KERNEL);
	if (!msg)
		return;
	if (mgcap_nl_fill_dev(msg, cap->ifindex, cap->ifname, cap, 0, 0, 0,
			      cmd, NULL)) {
		nlmsg_free(msg);
		return;
	}
	genlmsg_multicast_netns(&mgcap_nl_family, cap->net, msg, 0,
				MGCAP_NLGRP_MONITOR, GFP_KERNEL);
}

static int mgcap_nl_dev_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct net_device *dev;
	struct sk_buff *msg;
	int err;

	msg = mgcap_nl_dev_msg();
	if (!msg)
		return -ENOMEM;
	rtnl_lock();
	dev = mgcap_nl_dev(info);
	if (IS_ERR(dev)) {
		nlmsg_free(msg);
		err = PTR_ERR(dev);
	} else {
		err = mgcap_nl_reply_dev(info, msg, dev, mgcap_capture_of(dev));
	}
	rtnl_unlock();
	return err;
}

static int mgcap_nl_dev_get_start(struct netlink_callback *cb)
{
	/* one message per skb at least, whatever the number of CPUs */
	cb->min_dump_alloc = max_t(u32, cb->min_dump_alloc,
				   mgcap_nl_dev_size());
	return 0;
}

/* the request's attributes in a dump */
static struct nlattr **mgcap_nl_dump_attrs(struct netlink_callback *cb)
{
#ifdef MGCAP_HAVE_GENL_INFO_DUMP
	return genl_info_dump(cb)->attrs;
#else
	return genl_dumpit_info(cb)->attrs;
#endif
}

/* the capture of net with the lowest ifindex above after; under RTNL */
static struct mgcap_capture *mgcap_nl_dump_next(struct net *net, long after)
{
	struct mgcap_capture *cap, *next = NULL;

	ASSERT_RTNL();
	list_for_each_entry(cap, &mgcap_captures, list)
		if (net_eq(cap->net, net) && cap->ifindex > after &&
		    (!next || cap->ifindex < next->ifindex))
			next = cap;
	return next;
}

/*
 * Every capture of the caller's netns in ifindex order, or only the device
 * the request names (ifindex or ifname).  A dump that takes more than one
 * message resumes after the last ifindex sent, so a stop between two parts
 * skips nothing else; a start, stop or rename in between sets
 * NLM_F_DUMP_INTR on the next part, as other dumps do.
 */
static int mgcap_nl_dev_get_dumpit(struct sk_buff *skb,
				   struct netlink_callback *cb)
{
	struct nlattr **tb = mgcap_nl_dump_attrs(cb);
	struct net *net = sock_net(skb->sk);
	struct net_device *only = NULL;
	struct mgcap_capture *cap;
	long last = cb->args[0];
	int err = 0;

	rtnl_lock();
	cb->seq = mgcap_generation;
	if (tb[MGCAP_A_DEV_IFINDEX] || tb[MGCAP_A_DEV_IFNAME]) {
		only = tb[MGCAP_A_DEV_IFINDEX] ?
		       __dev_get_by_index(net, nla_get_u32(tb[MGCAP_A_DEV_IFINDEX])) :
		       __dev_get_by_name(net, nla_data(tb[MGCAP_A_DEV_IFNAME]));
		if (!only) {
			NL_SET_ERR_MSG(cb->extack, "no such device");
			err = -ENODEV;
			goto out;
		}
	}
	while ((cap = mgcap_nl_dump_next(net, last))) {
		if (only && cap->dev != only) {
			last = cap->ifindex;
			continue;
		}
		err = mgcap_nl_fill_dev(skb, cap->ifindex, cap->ifname, cap,
					NETLINK_CB(cb->skb).portid,
					cb->nlh->nlmsg_seq, NLM_F_MULTI,
					MGCAP_CMD_DEV_GET, cb);
		if (err)
			break;
		last = cap->ifindex;
	}
out:
	rtnl_unlock();
	cb->args[0] = last;
	if (err == -EMSGSIZE && skb->len)
		return skb->len;
	return err ?: skb->len;
}

/*
 * The filter a request carries (NULL: none), made before RTNL is taken: the
 * program is checked and JIT-compiled outside the lock.
 */
static struct mgcap_filter *mgcap_nl_filter(struct genl_info *info)
{
	struct nlattr *prog = info->attrs[MGCAP_A_DEV_FILTER];
	struct nlattr *expr = info->attrs[MGCAP_A_DEV_FILTER_EXPR];

	if (expr && !prog) {
		NL_SET_ERR_MSG_ATTR(info->extack, expr,
				    "filter-expr needs the filter program it was compiled to");
		return ERR_PTR(-EINVAL);
	}
	if (!prog)
		return NULL;
	return mgcap_filter_create(prog, expr, info->extack);
}

/* the attribute that named the device, for NL_SET_BAD_ATTR */
static struct nlattr *mgcap_nl_dev_attr(struct genl_info *info)
{
	return info->attrs[MGCAP_A_DEV_IFINDEX] ?: info->attrs[MGCAP_A_DEV_IFNAME];
}

/* the attribute a ring size or snaplen error is about */
static void mgcap_nl_bad_size(struct genl_info *info)
{
	struct nlattr **tb = info->attrs;

	NL_SET_BAD_ATTR(info->extack, tb[MGCAP_A_DEV_RING_SIZE] ?:
			tb[MGCAP_A_DEV_SNAPLEN]);
}

/*
 * The device is checked (free, and within what the caller may take) under
 * RTNL, the rings are allocated without it, and everything is checked again
 * when the capture is attached.  The reply is allocated before the start,
 * so a capture that starts is reported as started.
 */
static int mgcap_nl_dev_start_doit(struct sk_buff *skb, struct genl_info *info)
{
	/* captures of user namespace admins are bounded: budget.c */
	bool limited = !netlink_ns_capable(skb, &init_user_ns, CAP_NET_ADMIN);
	struct nlattr **tb = info->attrs;
	struct mgcap_params p = mgcap_default_params;
	struct mgcap_filter *flt = NULL;
	struct mgcap_capture *cap;
	struct net_device *dev;
	struct sk_buff *msg = NULL;
	int err;

	if (tb[MGCAP_A_DEV_MODE])
		p.mode = nla_get_u32(tb[MGCAP_A_DEV_MODE]);
	if (tb[MGCAP_A_DEV_SNAPLEN])
		p.snaplen = nla_get_u32(tb[MGCAP_A_DEV_SNAPLEN]);
	if (tb[MGCAP_A_DEV_RING_SIZE])
		p.ring_size = nla_get_u32(tb[MGCAP_A_DEV_RING_SIZE]);
	err = mgcap_validate_ring_size(p.ring_size, p.snaplen, info->extack);
	if (err) {
		mgcap_nl_bad_size(info);
		return err;
	}
	cap = mgcap_capture_alloc(p.mode, p.snaplen, p.ring_size, info->extack);
	if (IS_ERR(cap))
		return PTR_ERR(cap);

	/* the memory is reserved before any of it is allocated */
	rtnl_lock();
	dev = mgcap_nl_dev(info);
	err = IS_ERR(dev) ? PTR_ERR(dev) : mgcap_capture_check(dev, info->extack);
	if (!err)
		err = mgcap_budget_reserve(cap, dev_net(dev)->user_ns, limited,
					   info->extack);
	rtnl_unlock();
	if (err)
		goto out_free;

	flt = mgcap_nl_filter(info);
	if (IS_ERR(flt)) {
		err = PTR_ERR(flt);
		flt = NULL;
		goto out_free;
	}
	msg = mgcap_nl_dev_msg();
	if (!msg) {
		err = -ENOMEM;
		goto out_free;
	}
	err = mgcap_capture_alloc_rings(cap, info->extack);
	if (err)
		goto out_free;
	/* tied to the requesting socket: owner.c stops it when that closes */
	if (nla_get_flag(tb[MGCAP_A_DEV_SOCKET_OWNER])) {
		cap->owner_portid = info->snd_portid;
		cap->owner_net = genl_info_net(info);
	}

	rtnl_lock();
	if (mgcap_nl_closing) {
		NL_SET_ERR_MSG_MOD(info->extack, "module is unloading");
		err = -ENODEV;
		goto out_unlock;
	}
	dev = mgcap_nl_dev(info);
	if (IS_ERR(dev)) {
		err = PTR_ERR(dev);
		goto out_unlock;
	}
	err = mgcap_capture_start(dev, cap, flt, info->extack);
	if (err)
		goto out_unlock;
	/* the capture list's and the filter the capture's now */
	cap = NULL;
	flt = NULL;
	/* the capture runs: a reply that could not be sent is no failure */
	mgcap_nl_reply_dev(info, msg, dev, mgcap_capture_of(dev));
	msg = NULL;
out_unlock:
	rtnl_unlock();
out_free:
	nlmsg_free(msg);
	if (cap)
		mgcap_capture_put(cap);
	mgcap_filter_free(flt);
	return err;
}

/*
 * The dev-stop reply: the device, and for a legacy one the timestamp
 * configuration its stopper puts back; handed out once, then forgotten.
 */
static int mgcap_nl_reply_stop(struct genl_info *info, struct sk_buff *msg,
			       struct net_device *dev)
{
	struct hwtstamp_config cfg;
	bool restore;
	void *hdr;

	restore = mgcap_hwtstamp_pending(dev, &cfg);
	mgcap_hwtstamp_forget(dev);
	hdr = genlmsg_put_reply(msg, info, &mgcap_nl_family, 0,
				info->genlhdr->cmd);
	if (!hdr ||
	    nla_put_u32(msg, MGCAP_A_DEV_IFINDEX, dev->ifindex) ||
	    nla_put_string(msg, MGCAP_A_DEV_IFNAME, dev->name) ||
	    (restore &&
	     (nla_put_u32(msg, MGCAP_A_DEV_HWTSTAMP_SAVED_RX, cfg.rx_filter) ||
	      nla_put_u32(msg, MGCAP_A_DEV_HWTSTAMP_SAVED_TX, cfg.tx_type)))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

/*
 * The reply is allocated first: a capture that stops is reported as
 * stopped, with the timestamp configuration to put back.
 */
static int mgcap_nl_dev_stop_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct mgcap_capture *cap;
	struct net_device *dev;
	struct sk_buff *msg;
	int err = 0;

	msg = genlmsg_new(NLMSG_ALIGN(GENL_HDRLEN) + nla_total_size(IFNAMSIZ) +
			  3 * nla_total_size(sizeof(u32)), GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	rtnl_lock();
	dev = mgcap_nl_dev(info);
	if (IS_ERR(dev)) {
		err = PTR_ERR(dev);
		goto out;
	}
	cap = mgcap_capture_of(dev);
	if (!cap) {
		NL_SET_ERR_MSG_MOD(info->extack, "device is not capturing");
		NL_SET_BAD_ATTR(info->extack, mgcap_nl_dev_attr(info));
		err = -ENOENT;
		goto out;
	}
	mgcap_capture_stop(cap);
	/* the capture stopped: a reply that could not be sent is no failure */
	mgcap_nl_reply_stop(info, msg, dev);
	msg = NULL;
out:
	rtnl_unlock();
	nlmsg_free(msg);
	return err;
}

static int mgcap_nl_dev_set_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **tb = info->attrs;
	bool clear = nla_get_flag(tb[MGCAP_A_DEV_FILTER_CLEAR]);
	struct mgcap_filter *flt;
	struct mgcap_capture *cap;
	struct net_device *dev;
	struct sk_buff *msg;
	int err;

	if (!tb[MGCAP_A_DEV_MODE] && !tb[MGCAP_A_DEV_SNAPLEN] &&
	    !tb[MGCAP_A_DEV_FILTER] && !tb[MGCAP_A_DEV_FILTER_EXPR] && !clear) {
		NL_SET_ERR_MSG_MOD(info->extack,
				   "nothing to set (mode, snaplen, filter or filter-clear)");
		NL_SET_ERR_ATTR_MISS(info->extack, NULL, MGCAP_A_DEV_MODE);
		return -EINVAL;
	}
	if (clear && tb[MGCAP_A_DEV_FILTER]) {
		NL_SET_ERR_MSG_ATTR(info->extack, tb[MGCAP_A_DEV_FILTER_CLEAR],
				    "filter and filter-clear exclude each other");
		return -EINVAL;
	}
	flt = mgcap_nl_filter(info);
	if (IS_ERR(flt))
		return PTR_ERR(flt);
	msg = mgcap_nl_dev_msg();
	if (!msg) {
		mgcap_filter_free(flt);
		return -ENOMEM;
	}
	rtnl_lock();
	dev = mgcap_nl_dev(info);
	if (IS_ERR(dev)) {
		err = PTR_ERR(dev);
		goto out;
	}
	cap = mgcap_capture_of(dev);
	if (!cap) {
		NL_SET_ERR_MSG_MOD(info->extack, "device is not capturing");
		NL_SET_BAD_ATTR(info->extack, mgcap_nl_dev_attr(info));
		err = -ENOENT;
		goto out;
	}
	err = mgcap_capture_set(cap,
				tb[MGCAP_A_DEV_MODE] ?
				nla_get_u32(tb[MGCAP_A_DEV_MODE]) : 0,
				tb[MGCAP_A_DEV_SNAPLEN] ?
				nla_get_u32(tb[MGCAP_A_DEV_SNAPLEN]) : 0,
				flt, clear, info->extack);
	if (err && tb[MGCAP_A_DEV_SNAPLEN])
		NL_SET_BAD_ATTR(info->extack, tb[MGCAP_A_DEV_SNAPLEN]);
	if (!err) {
		flt = NULL;	/* the capture's now */
		mgcap_nl_reply_dev(info, msg, dev, cap);
		msg = NULL;
		/* the change is made: a reply that could not be sent is no failure */
	}
out:
	rtnl_unlock();
	nlmsg_free(msg);
	mgcap_filter_free(flt);
	return err;
}

/* cfg NULL: a legacy device, which user space asks itself (hwtstamp-user) */
static int mgcap_nl_reply_hwts(struct genl_info *info, struct net_device *dev,
			       const struct hwtstamp_config *cfg)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(NLMSG_ALIGN(GENL_HDRLEN) + nla_total_size(IFNAMSIZ) +
			  3 * nla_total_size(sizeof(u32)), GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &mgcap_nl_family, 0,
				info->genlhdr->cmd);
	if (!hdr ||
	    nla_put_u32(msg, MGCAP_A_DEV_IFINDEX, dev->ifindex) ||
	    nla_put_string(msg, MGCAP_A_DEV_IFNAME, dev->name) ||
	    (!cfg && nla_put_flag(msg, MGCAP_A_DEV_HWTSTAMP_USER)) ||
	    (cfg &&
	     (nla_put_u32(msg, MGCAP_A_DEV_HWTSTAMP_RX, cfg->rx_filter) ||
	      nla_put_u32(msg, MGCAP_A_DEV_HWTSTAMP_TX, cfg->tx_type)))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int mgcap_nl_hwtstamp_get_doit(struct sk_buff *skb,
				      struct genl_info *info)
{
	struct hwtstamp_config cfg;
	struct net_device *dev;
	int err;

	rtnl_lock();
	dev = mgcap_nl_dev(info);
	if (IS_ERR(dev)) {
		err = PTR_ERR(dev);
		goto out;
	}
	if (mgcap_hwtstamp_legacy(dev)) {
		err = mgcap_nl_reply_hwts(info, dev, NULL);
		goto out;
	}
	err = mgcap_hwtstamp_get(dev, &cfg, info->extack);
	if (err) {
		NL_SET_BAD_ATTR(info->extack, mgcap_nl_dev_attr(info));
		goto out;
	}
	err = mgcap_nl_reply_hwts(info, dev, &cfg);
out:
	rtnl_unlock();
	return err;
}

/*
 * hwtstamp-user: user space applied rx and tx with SIOCSHWTSTAMP over
 * saved-rx and saved-tx; all four are needed, and only then.
 */
static int mgcap_nl_hwts_check_user(struct genl_info *info, bool user)
{
	struct nlattr **tb = info->attrs;
	struct nlattr *saved = tb[MGCAP_A_DEV_HWTSTAMP_SAVED_RX] ?:
			       tb[MGCAP_A_DEV_HWTSTAMP_SAVED_TX];

	if (!user && saved) {
		NL_SET_ERR_MSG_ATTR(info->extack, saved,
				    "hwtstamp-saved-rx/-tx go with hwtstamp-user only");
		return -EINVAL;
	}
	if (user && (!tb[MGCAP_A_DEV_HWTSTAMP_RX] ||
		     !tb[MGCAP_A_DEV_HWTSTAMP_TX] ||
		     !tb[MGCAP_A_DEV_HWTSTAMP_SAVED_RX] ||
		     !tb[MGCAP_A_DEV_HWTSTAMP_SAVED_TX])) {
		NL_SET_ERR_MSG_ATTR(info->extack, tb[MGCAP_A_DEV_HWTSTAMP_USER],
				    "hwtstamp-user needs hwtstamp-rx, -tx, -saved-rx and -saved-tx");
		return -EINVAL;
	}
	return 0;
}

/* a legacy device: record what user space applied and what was before */
static int mgcap_nl_hwts_record(struct genl_info *info, struct net_device *dev,
				struct hwtstamp_config *cfg)
{
	struct nlattr **tb = info->attrs;
	struct hwtstamp_config before = {};

	cfg->rx_filter = nla_get_u32(tb[MGCAP_A_DEV_HWTSTAMP_RX]);
	cfg->tx_type = nla_get_u32(tb[MGCAP_A_DEV_HWTSTAMP_TX]);
	before.rx_filter = nla_get_u32(tb[MGCAP_A_DEV_HWTSTAMP_SAVED_RX]);
	before.tx_type = nla_get_u32(tb[MGCAP_A_DEV_HWTSTAMP_SAVED_TX]);
	return mgcap_hwtstamp_record(dev, &before, cfg, info->extack);
}

/*
 * rx and tx not given keep the device's current values.  The reply holds
 * what the driver applied, which may be a wider filter than asked for.
 */
static int mgcap_nl_hwtstamp_set_doit(struct sk_buff *skb,
				      struct genl_info *info)
{
	struct nlattr *rx = info->attrs[MGCAP_A_DEV_HWTSTAMP_RX];
	struct nlattr *tx = info->attrs[MGCAP_A_DEV_HWTSTAMP_TX];
	bool user = nla_get_flag(info->attrs[MGCAP_A_DEV_HWTSTAMP_USER]);
	struct hwtstamp_config cfg = {};
	struct net_device *dev;
	int err;

	if (!rx && !tx) {
		NL_SET_ERR_MSG_MOD(info->extack,
				   "nothing to set (hwtstamp-rx or hwtstamp-tx)");
		return -EINVAL;
	}
	err = mgcap_nl_hwts_check_user(info, user);
	if (err)
		return err;
	rtnl_lock();
	if (mgcap_nl_closing) {
		NL_SET_ERR_MSG_MOD(info->extack, "module is unloading");
		err = -ENODEV;
		goto out;
	}
	dev = mgcap_nl_dev(info);
	if (IS_ERR(dev)) {
		err = PTR_ERR(dev);
		goto out;
	}
	if (user) {
		err = mgcap_nl_hwts_record(info, dev, &cfg);
		if (err)
			NL_SET_BAD_ATTR(info->extack,
					info->attrs[MGCAP_A_DEV_HWTSTAMP_USER]);
		else
			err = mgcap_nl_reply_hwts(info, dev, &cfg);
		goto out;
	}
	err = mgcap_hwtstamp_get(dev, &cfg, info->extack);
	if (err) {
		NL_SET_BAD_ATTR(info->extack, mgcap_nl_dev_attr(info));
		goto out;
	}
	if (rx)
		cfg.rx_filter = nla_get_u32(rx);
	if (tx)
		cfg.tx_type = nla_get_u32(tx);
	err = mgcap_hwtstamp_set(dev, &cfg, info->extack);
	if (err) {
		if (err == -ERANGE && rx)
			NL_SET_BAD_ATTR(info->extack, rx);
		goto out;
	}
	err = mgcap_nl_reply_hwts(info, dev, &cfg);
out:
	rtnl_unlock();
	return err;
}

static const struct genl_ops mgcap_nl_ops[] = {
	{
		.cmd = MGCAP_CMD_DEV_START,
		.doit = mgcap_nl_dev_start_doit,
		.policy = mgcap_dev_start_policy,
		.maxattr = ARRAY_SIZE(mgcap_dev_start_policy) - 1,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = MGCAP_CMD_DEV_STOP,
		.doit = mgcap_nl_dev_stop_doit,
		.policy = mgcap_dev_select_policy,
		.maxattr = ARRAY_SIZE(mgcap_dev_select_policy) - 1,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = MGCAP_CMD_DEV_SET,
		.doit = mgcap_nl_dev_set_doit,
		.policy = mgcap_dev_set_policy,
		.maxattr = ARRAY_SIZE(mgcap_dev_set_policy) - 1,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = MGCAP_CMD_DEV_GET,
		.doit = mgcap_nl_dev_get_doit,
		.start = mgcap_nl_dev_get_start,
		.dumpit = mgcap_nl_dev_get_dumpit,
		.policy = mgcap_dev_select_policy,
		.maxattr = ARRAY_SIZE(mgcap_dev_select_policy) - 1,
	},
	{
		.cmd = MGCAP_CMD_HWTSTAMP_GET,
		.doit = mgcap_nl_hwtstamp_get_doit,
		.policy = mgcap_dev_select_policy,
		.maxattr = ARRAY_SIZE(mgcap_dev_select_policy) - 1,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = MGCAP_CMD_HWTSTAMP_SET,
		.doit = mgcap_nl_hwtstamp_set_doit,
		.policy = mgcap_hwtstamp_set_policy,
		.maxattr = ARRAY_SIZE(mgcap_hwtstamp_set_policy) - 1,
		.flags = GENL_UNS_ADMIN_PERM,
	},
};

static const struct genl_multicast_group mgcap_nl_mcgrps[] = {
	[MGCAP_NLGRP_MONITOR] = { .name = MGCAP_MCGRP_MONITOR },
};

static struct genl_family mgcap_nl_family __ro_after_init = {
	.name = MGCAP_FAMILY_NAME,
	.version = MGCAP_FAMILY_VERSION,
	.netnsok = true,
	.module = THIS_MODULE,
	.ops = mgcap_nl_ops,
	.n_ops = ARRAY_SIZE(mgcap_nl_ops),
	.resv_start_op = MGCAP_CMD_DEV_START,
	.mcgrps = mgcap_nl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(mgcap_nl_mcgrps),
};

int __init mgcap_nl_init(void)
{
	int err;

	err = genl_register_family(&mgcap_nl_family);
	if (!err) {
		rtnl_lock();
		mgcap_nl_registered = true;
		rtnl_unlock();
	}
	return err;
}

/* refuse new captures; the caller then stops the running ones */
void mgcap_nl_close(void)
{
	ASSERT_RTNL();
	mgcap_nl_closing = true;
}

void mgcap_nl_exit(void)
{
	rtnl_lock();
	mgcap_nl_registered = false;
	rtnl_unlock();
	genl_unregister_family(&mgcap_nl_family);
}

MODULE_ALIAS_GENL_FAMILY(MGCAP_FAMILY_NAME);

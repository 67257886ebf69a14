/* SPDX-License-Identifier: GPL-2.0 */
/* mgcap: objects shared by the module's files */
#ifndef _MGCAP_H
#define _MGCAP_H

#include <linux/cdev.h>
#include <linux/filter.h>
#include <linux/device.h>
#include <linux/hrtimer.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/u64_stats_sync.h>
#include <linux/wait.h>

#include "compat.h"
#include "uapi/mgcap.h"

struct mgcap_capture;
struct mgcap_filter;

/* "mgcap/netns-4026531840/" + IFNAMSIZ */
#define MGCAP_CHARDEV_NAME_MAX	48

enum mgcap_nl_groups {
	MGCAP_NLGRP_MONITOR,
};

/* what a capture starts with when the request does not say */
struct mgcap_params {
	u32 mode;
	u32 snaplen;
	u32 ring_size;
};

extern struct mgcap_params mgcap_default_params;

/*
 * One ring per CPU and device.  The producer is the receive softirq of that
 * CPU, the consumer is one reader at a time (serialised by consumer_lock, or
 * a user space mmap reader owning the ring through a binding).
 */
struct mgcap_ring {
	/* read-mostly */
	struct mgcap_capture *cap;
	u8 *data;			/* ring data, mapped twice in a row */
	struct mgcap_consumer_page *cons;
	struct mgcap_producer_page *prod;
	struct page **pages;		/* consumer, producer, data pages */
	void *area;			/* vmap of pages, data twice */
	unsigned int nr_pages;		/* distinct pages */
	u32 mask;			/* ring_size - 1 */
	unsigned int cpu;

	/* producer side */
	struct u64_stats_sync syncp;
	struct hrtimer wakeup_timer;
	bool timer_armed;		/* on the ring's CPU only: hook.c, mgcap_cpu_online() */

	/* consumer side */
	struct mutex consumer_lock;
	struct file *owner;		/* bound file, or NULL */
	wait_queue_head_t wq;		/* readers bound to this ring */
} ____cacheline_aligned_in_smp;

struct mgcap_capture {
	struct net_device *dev;		/* valid while capturing, under RTNL */
	netdevice_tracker dev_tracker;
	struct list_head list;		/* in mgcap_captures, under RTNL */
	struct hlist_node cpuhp_node;	/* CPU hotplug instance while capturing */
	struct kref ref;

	/* read per packet */
	u32 mode;			/* MGCAP_MODE_* */
	u32 snaplen;
	u32 ifid;			/* PCAP-NG interface id in records */
	u32 watermark;			/* bytes that wake a reader at once */
	u64 wakeup_ns;
	struct mgcap_filter __rcu *filter;	/* capture filter, or NULL */

	bool stopped;			/* no producer runs any more */
	u32 ring_size;
	unsigned int nr_rings;		/* nr_cpu_ids */
	struct mgcap_ring **rings;	/* by CPU; NULL for impossible CPUs */
	wait_queue_head_t wq_any;	/* unbound readers */

	int ifindex;
	u32 link_type;
	bool link_header;		/* records start at the link-layer header,
					 * else at skb->data (the network header)
					 */
	/* what the capture reserved (budget.c), given back at the last put */
	u64 budget_bytes;
	struct user_namespace *budget_ns;	/* charged, counted, or NULL */
	/* the netlink socket the capture is tied to (socket-owner): port id
	 * (0: none) and netns, compared only; set before the start
	 */
	u32 owner_portid;
	const struct net *owner_net;
	struct list_head owned_node;	/* in owner.c's list, while capturing */
	bool owner_gone;		/* that socket was released */
	/* written under RTNL and name_lock (rename), read under either */
	spinlock_t name_lock;
	char ifname[IFNAMSIZ];
	char chardev_name[MGCAP_CHARDEV_NAME_MAX];	/* under /dev */
	struct net *net;		/* not counted: captures stop before
					 * their netns goes away; use only
					 * while capturing
					 */
	struct user_namespace *user_ns;	/* of net, counted: for open files */
	unsigned int netns_inum;

	/* character device */
	int minor;
	struct cdev *cdev;
	struct device *cdevice;
};

/* ring.c */
struct mgcap_ring *mgcap_ring_create(struct mgcap_capture *cap,
				     unsigned int cpu, u32 ring_size);
void mgcap_ring_destroy(struct mgcap_ring *ring);
void mgcap_ring_stats_add(struct mgcap_ring *ring, struct mgcap_stats *sum);
void mgcap_ring_wake(struct mgcap_ring *ring);
u64 mgcap_ring_used(struct mgcap_ring *ring, u64 *cons_pos);
bool mgcap_ring_empty(struct mgcap_ring *ring);

/* hook.c */
rx_handler_result_t mgcap_rx_handler(struct sk_buff **pskb);

/* capture.c */
extern struct list_head mgcap_captures;
extern u32 mgcap_generation;
int mgcap_validate_ring_size(u32 ring_size, u32 snaplen,
			     struct netlink_ext_ack *extack);
int mgcap_capture_check(struct net_device *dev, struct netlink_ext_ack *extack);
struct mgcap_capture *mgcap_capture_alloc(u32 mode, u32 snaplen, u32 ring_size,
					  struct netlink_ext_ack *extack);
int mgcap_capture_alloc_rings(struct mgcap_capture *cap,
			      struct netlink_ext_ack *extack);
int mgcap_capture_start(struct net_device *dev, struct mgcap_capture *cap,
			struct mgcap_filter *flt, struct netlink_ext_ack *extack);
void mgcap_capture_rename(struct mgcap_capture *cap);
void mgcap_capture_names(struct mgcap_capture *cap, char *ifname,
			 char *chardev_name);
int mgcap_cpuhp_init(void);
void mgcap_cpuhp_exit(void);
int mgcap_capture_set(struct mgcap_capture *cap, u32 mode, u32 snaplen,
		      struct mgcap_filter *flt, bool clear_filter,
		      struct netlink_ext_ack *extack);
void mgcap_capture_stop(struct mgcap_capture *cap);
struct mgcap_capture *mgcap_capture_of(const struct net_device *dev);
void mgcap_capture_put(struct mgcap_capture *cap);
bool mgcap_capture_get(struct mgcap_capture *cap);
void mgcap_capture_stats(struct mgcap_capture *cap, struct mgcap_stats *sum);

/* budget.c */
int mgcap_budget_reserve(struct mgcap_capture *cap, struct user_namespace *ns,
			 bool limited, struct netlink_ext_ack *extack);
void mgcap_budget_release(struct mgcap_capture *cap);

/* chardev.c */
int mgcap_chardev_init(void);
void mgcap_chardev_exit(void);
int mgcap_chardev_add(struct mgcap_capture *cap);
void mgcap_chardev_del(struct mgcap_capture *cap);
int mgcap_chardev_node_add(struct mgcap_capture *cap);
void mgcap_chardev_node_del(struct mgcap_capture *cap);

/* netlink.c */
int mgcap_nl_init(void);
void mgcap_nl_close(void);
void mgcap_nl_exit(void);
void mgcap_nl_notify(struct mgcap_capture *cap, u8 cmd);

/* hwtstamp.c */
struct hwtstamp_config;
int mgcap_hwtstamp_get(struct net_device *dev, struct hwtstamp_config *cfg,
		       struct netlink_ext_ack *extack);
int mgcap_hwtstamp_set(struct net_device *dev, struct hwtstamp_config *cfg,
		       struct netlink_ext_ack *extack);
bool mgcap_hwtstamp_legacy(struct net_device *dev);
int mgcap_hwtstamp_record(struct net_device *dev,
			  const struct hwtstamp_config *before,
			  const struct hwtstamp_config *applied,
			  struct netlink_ext_ack *extack);
int mgcap_hwtstamp_report(struct net_device *dev, struct hwtstamp_config *cfg);
bool mgcap_hwtstamp_pending(struct net_device *dev, struct hwtstamp_config *cfg);
void mgcap_hwtstamp_restore(struct net_device *dev);
void mgcap_hwtstamp_orphaned(struct net_device *dev);
void mgcap_hwtstamp_restore_all(void);
void mgcap_hwtstamp_forget(struct net_device *dev);
void mgcap_hwtstamp_unregister(struct net_device *dev);

/* filter.c */
struct mgcap_filter {
	struct bpf_prog *prog;
	struct rcu_head rcu;
	unsigned int len;		/* instructions */
	char *expr;			/* the text it came from, or NULL */
	struct sock_filter insns[];	/* as given, for dev-get */
};

struct mgcap_filter *mgcap_filter_create(const struct nlattr *prog,
					 const struct nlattr *expr,
					 struct netlink_ext_ack *extack);
void mgcap_filter_free(struct mgcap_filter *flt);
bool mgcap_filter_swap(struct mgcap_capture *cap, struct mgcap_filter *flt);
unsigned int mgcap_filter_run(const struct mgcap_filter *flt,
			      struct sk_buff *skb, int mac_off);

/* owner.c */
int mgcap_owner_init(void);
void mgcap_owner_exit(void);
void mgcap_owner_add(struct mgcap_capture *cap);
void mgcap_owner_del(struct mgcap_capture *cap);

/* sysfs.c */
extern const struct attribute_group *mgcap_dev_groups[];

#endif /* _MGCAP_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: what captures may take, reserved before their rings are allocated
 * and given back with the capture's last reference.
 *
 * Two bounds.  The rings of all captures, running or kept alive after their
 * stop by open files and mappings, stay below half of the memory.  And the
 * root of a user namespace (a container, unshare -Urn), capturing without
 * CAP_NET_ADMIN over the initial user namespace, may hold
 * userns_max_captures captures and userns_max_ring_mb MiB of rings: charged,
 * as ucounts are, to the user namespace that owns the device's netns and to
 * each of its ancestors below the initial one, so a nested namespace gets no
 * more than its parent, and sibling containers do not share one budget.
 *
 * A start reserves before it allocates, under mgcap_budget_lock: concurrent
 * starts never pass the check together.  What a capture reserved stays
 * counted until its last reference goes (mgcap_capture_release()).  A mutex:
 * the last reference is put in process context.
 */
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/user_namespace.h>

#include "mgcap.h"

static unsigned int mgcap_userns_max_captures = 64;
module_param_named(userns_max_captures, mgcap_userns_max_captures, uint, 0644);
MODULE_PARM_DESC(userns_max_captures,
		 "Captures the admins of each user namespace other than the initial one (with its descendants) may hold (default 64)");

static unsigned int mgcap_userns_max_ring_mb = 256;
module_param_named(userns_max_ring_mb, mgcap_userns_max_ring_mb, uint, 0644);
MODULE_PARM_DESC(userns_max_ring_mb,
		 "Ring memory in MiB the admins of each user namespace other than the initial one (with its descendants) may hold (default 256)");

/* what the captures charged to one user namespace hold */
struct mgcap_budget_ns {
	struct list_head list;
	struct user_namespace *ns;	/* counted */
	unsigned int captures;
	u64 bytes;
};

static DEFINE_MUTEX(mgcap_budget_lock);
/* under mgcap_budget_lock */
static LIST_HEAD(mgcap_budget_list);
static u64 mgcap_budget_all;		/* bytes reserved by every capture */

/* the data pages and the two control pages of each possible CPU */
static u64 mgcap_rings_bytes(u32 ring_size)
{
	return ((u64)ring_size + 2 * PAGE_SIZE) * num_possible_cpus();
}

static struct mgcap_budget_ns *mgcap_budget_of(struct user_namespace *ns)
{
	struct mgcap_budget_ns *b;

	lockdep_assert_held(&mgcap_budget_lock);
	list_for_each_entry(b, &mgcap_budget_list, list)
		if (b->ns == ns)
			return b;
	return NULL;
}

/* entries nothing is charged to any more */
static void mgcap_budget_prune(void)
{
	struct mgcap_budget_ns *b, *tmp;

	lockdep_assert_held(&mgcap_budget_lock);
	list_for_each_entry_safe(b, tmp, &mgcap_budget_list, list) {
		if (b->captures)
			continue;
		list_del(&b->list);
		put_user_ns(b->ns);
		kfree(b);
	}
}

/* an entry for ns and each ancestor below the initial namespace */
static int mgcap_budget_entries(struct user_namespace *ns)
{
	struct mgcap_budget_ns *b;

	lockdep_assert_held(&mgcap_budget_lock);
	for (; ns != &init_user_ns; ns = ns->parent) {
		if (mgcap_budget_of(ns))
			continue;
		b = kzalloc(sizeof(*b), GFP_KERNEL);
		if (!b)
			return -ENOMEM;
		b->ns = get_user_ns(ns);
		list_add_tail(&b->list, &mgcap_budget_list);
	}
	return 0;
}

/*
 * Reserve what cap's rings will take.  ns: the user namespace that owns the
 * device's netns; limited: the caller lacks CAP_NET_ADMIN over the initial
 * one.  On success cap holds the reservation until its release.
 */
int mgcap_budget_reserve(struct mgcap_capture *cap, struct user_namespace *ns,
			 bool limited, struct netlink_ext_ack *extack)
{
	u64 max_bytes = (u64)READ_ONCE(mgcap_userns_max_ring_mb) << 20;
	unsigned int max_captures = READ_ONCE(mgcap_userns_max_captures);
	u64 want = mgcap_rings_bytes(cap->ring_size);
	struct user_namespace *iter;
	struct mgcap_budget_ns *b;
	int err = 0;

	mutex_lock(&mgcap_budget_lock);
	if (limited) {
		err = mgcap_budget_entries(ns);
		if (err) {
			NL_SET_ERR_MSG_MOD(extack, "out of memory");
			goto out;
		}
		for (iter = ns; iter != &init_user_ns; iter = iter->parent) {
			b = mgcap_budget_of(iter);
			if (b->captures >= max_captures) {
				NL_SET_ERR_MSG_MOD(extack,
						   "the user namespace holds all the captures it may (module parameter userns_max_captures)");
				err = -ENOSPC;
				goto out;
			}
			if (b->bytes + want > max_bytes) {
				NL_SET_ERR_MSG_MOD(extack,
						   "the rings exceed what the user namespace may take (module parameter userns_max_ring_mb)");
				err = -ENOMEM;
				goto out;
			}
		}
	}
	if (mgcap_budget_all + want > ((u64)totalram_pages() << PAGE_SHIFT) / 2) {
		NL_SET_ERR_MSG_MOD(extack,
				   "the rings of all captures would take more than half of the memory");
		err = -ENOMEM;
		goto out;
	}
	mgcap_budget_all += want;
	cap->budget_bytes = want;
	if (limited) {
		for (iter = ns; iter != &init_user_ns; iter = iter->parent) {
			b = mgcap_budget_of(iter);
			b->captures++;
			b->bytes += want;
		}
		cap->budget_ns = get_user_ns(ns);
	}
out:
	mgcap_budget_prune();
	mutex_unlock(&mgcap_budget_lock);
	return err;
}

/* the capture's last reference: what it reserved is free again */
void mgcap_budget_release(struct mgcap_capture *cap)
{
	struct user_namespace *iter;
	struct mgcap_budget_ns *b;

	if (!cap->budget_bytes)
		return;
	mutex_lock(&mgcap_budget_lock);
	mgcap_budget_all -= cap->budget_bytes;
	for (iter = cap->budget_ns; iter && iter != &init_user_ns;
	     iter = iter->parent) {
		b = mgcap_budget_of(iter);
		if (WARN_ON_ONCE(!b))
			break;
		b->captures--;
		b->bytes -= cap->budget_bytes;
	}
	mgcap_budget_prune();
	mutex_unlock(&mgcap_budget_lock);
	if (cap->budget_ns)
		put_user_ns(cap->budget_ns);
	cap->budget_ns = NULL;
	cap->budget_bytes = 0;
}

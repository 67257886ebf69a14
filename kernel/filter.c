// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: capture filters.
 *
 * A capture filter is a classic BPF program (struct sock_filter[], as
 * libpcap's pcap_compile() produces it), created with bpf_prog_create() like
 * SO_ATTACH_FILTER's: checked by bpf_check_classic(), converted and
 * JIT-compiled where the JIT is on.  The hook runs it on each frame from the
 * frame's link-layer header before anything is copied.
 *
 * The capture holds its filter through an RCU pointer: a change publishes the
 * new filter with rcu_assign_pointer() and frees the old one after a grace
 * period, so every frame sees one whole program, the old or the new.  Changes
 * run under RTNL.
 */
#include <linux/filter.h>
#include <linux/rcupdate.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "mgcap.h"

/* offsets below 0 that are neither SKF_NET_OFF nor SKF_LL_OFF based */
static bool mgcap_filter_bad_neg_load(const struct sock_filter *i)
{
	s32 k = (s32)i->k;

	if (BPF_CLASS(i->code) != BPF_LD || BPF_MODE(i->code) != BPF_ABS)
		return false;
	/* SKF_AD_OFF + n: ancillary data; bpf_check_classic() knows which */
	return k < 0 && k >= SKF_AD_OFF + SKF_AD_MAX;
}

/*
 * The faults a user makes most often, each with its own message; whatever
 * else bpf_check_classic() refuses gets a general one.  Never stricter than
 * the kernel's checker.
 */
static int mgcap_filter_check(const struct sock_filter *f, unsigned int len,
			      const struct nlattr *attr,
			      struct netlink_ext_ack *extack)
{
	unsigned int pc;

	if (!len) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "filter program is empty (filter-clear removes a filter)");
		return -EINVAL;
	}
	if (len > BPF_MAXINSNS) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "filter program longer than 4096 instructions (BPF_MAXINSNS)");
		return -E2BIG;
	}
	for (pc = 0; pc < len; pc++) {
		const struct sock_filter *i = &f[pc];
		unsigned int left = len - pc - 1;

		if (BPF_CLASS(i->code) == BPF_JMP &&
		    (i->code == (BPF_JMP | BPF_JA) ? i->k >= left :
		     i->jt >= left || i->jf >= left)) {
			NL_SET_ERR_MSG_ATTR(extack, attr,
					    "filter program has a jump past its end");
			return -EINVAL;
		}
		if (mgcap_filter_bad_neg_load(i)) {
			NL_SET_ERR_MSG_ATTR(extack, attr,
					    "filter program loads at a negative offset that is no ancillary field");
			return -EINVAL;
		}
	}
	if (BPF_CLASS(f[len - 1].code) != BPF_RET) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "filter program does not end with a return");
		return -EINVAL;
	}
	return 0;
}

/*
 * A filter from the attributes of a request: prog is a struct sock_filter
 * array, expr (may be NULL) its source text.  Runs without RTNL.
 */
struct mgcap_filter *mgcap_filter_create(const struct nlattr *prog,
					 const struct nlattr *expr,
					 struct netlink_ext_ack *extack)
{
	unsigned int size = nla_len(prog);
	unsigned int len = size / sizeof(struct sock_filter);
	struct sock_fprog_kern fprog;
	struct mgcap_filter *flt;
	int err;

	if (size % sizeof(struct sock_filter)) {
		NL_SET_ERR_MSG_ATTR(extack, prog,
				    "filter program is not a whole number of 8-byte instructions");
		return ERR_PTR(-EINVAL);
	}
	err = mgcap_filter_check(nla_data(prog), len, prog, extack);
	if (err)
		return ERR_PTR(err);

	flt = kzalloc(struct_size(flt, insns, len), GFP_KERNEL_ACCOUNT);
	if (!flt)
		return ERR_PTR(-ENOMEM);
	flt->len = len;
	memcpy(flt->insns, nla_data(prog), size);
	if (expr) {
		flt->expr = nla_strdup(expr, GFP_KERNEL_ACCOUNT);
		if (!flt->expr) {
			err = -ENOMEM;
			goto err_free;
		}
	}

	/* bpf_prog_create() copies the instructions it is given */
	fprog.len = len;
	fprog.filter = flt->insns;
	err = bpf_prog_create(&flt->prog, &fprog);
	if (err) {
		if (err == -ENOMEM)
			NL_SET_ERR_MSG_MOD(extack, "out of memory for the filter");
		else
			NL_SET_ERR_MSG_ATTR(extack, prog,
					    "the kernel's classic BPF checker refused the filter program (unknown instruction, division by zero, scratch memory index or ancillary field out of range)");
		goto err_free;
	}
	return flt;

err_free:
	kfree(flt->expr);
	kfree(flt);
	return ERR_PTR(err);
}

void mgcap_filter_free(struct mgcap_filter *flt)
{
	if (!flt)
		return;
	bpf_prog_destroy(flt->prog);
	kfree(flt->expr);
	kfree(flt);
}

static void mgcap_filter_free_rcu(struct rcu_head *head)
{
	mgcap_filter_free(container_of(head, struct mgcap_filter, rcu));
}

/*
 * Install flt (NULL: no filter) on a capture, under RTNL.  The old filter
 * goes after a grace period: a hook still running it keeps it until then.
 * Returns whether the program or its text changed.
 */
bool mgcap_filter_swap(struct mgcap_capture *cap, struct mgcap_filter *flt)
{
	struct mgcap_filter *old = rtnl_dereference(cap->filter);
	bool changed;

	ASSERT_RTNL();
	changed = !!old != !!flt ||
		  (old && (old->len != flt->len ||
			   memcmp(old->insns, flt->insns,
				  flt->len * sizeof(*flt->insns)) ||
			   strcmp(old->expr ?: "", flt->expr ?: "")));
	rcu_assign_pointer(cap->filter, flt);
	if (old)
		call_rcu(&old->rcu, mgcap_filter_free_rcu);
	return changed;
}

/*
 * Run the filter on a frame from its link-layer header: the return value is
 * the number of bytes to keep, 0 to reject.  libpcap's programs address the
 * frame from its first byte, so skb->data moves back to the MAC header for
 * the run and is put back before anything else sees the skb, as af_packet's
 * packet_rcv() does with the (shared) skbs it is given; no byte of the skb
 * is written.  A VLAN tag in metadata stays there and is seen through the
 * SKF_AD_VLAN_TAG ancillary loads libpcap emits for `vlan` on Linux.
 */
unsigned int mgcap_filter_run(const struct mgcap_filter *flt,
			      struct sk_buff *skb, int mac_off)
{
	unsigned int len = skb->len;
	u8 *data = skb->data;
	unsigned int res;

	if (mac_off < 0)
		__skb_push(skb, -mac_off);
	/* a classic program never touches skb->cb */
	res = bpf_prog_run(flt->prog, skb);
	skb->data = data;
	skb->len = len;
	return res;
}

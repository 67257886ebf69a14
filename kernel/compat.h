/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mgcap: differences between the kernels mgcap builds on.  Each gate is
 * named after a feature and set by a probe of the kernel headers in Kbuild,
 * never by a version number.
 */
#ifndef _MGCAP_COMPAT_H
#define _MGCAP_COMPAT_H

#include <linux/mm.h>

/* 6.2+: struct class callbacks take a const struct device */
#ifdef MGCAP_HAVE_CONST_DEVNODE
#define MGCAP_DEVNODE_CONST const
#else
#define MGCAP_DEVNODE_CONST
#endif

/* 6.3+: vma->vm_flags may only change through vm_flags_set/clear */
#ifdef MGCAP_HAVE_VM_FLAGS_SET
static inline void mgcap_vm_flags_set(struct vm_area_struct *vma,
				      vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

static inline void mgcap_vm_flags_clear(struct vm_area_struct *vma,
					vm_flags_t flags)
{
	vm_flags_clear(vma, flags);
}
#else
static inline void mgcap_vm_flags_set(struct vm_area_struct *vma,
				      vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline void mgcap_vm_flags_clear(struct vm_area_struct *vma,
					vm_flags_t flags)
{
	vma->vm_flags &= ~flags;
}
#endif

/*
 * MGCAP_HAVE_HWTSTAMP_LOWER (6.6+): drivers may implement ndo_hwtstamp_get/set
 * with struct kernel_hwtstamp_config, and generic_hwtstamp_get/set_lower()
 * reach converted and legacy drivers alike; older kernels have only
 * SIOC[GS]HWTSTAMP through ndo_eth_ioctl.  Used in hwtstamp.c.
 *
 * MGCAP_HAVE_HWTSTAMP_NETDEV (5.18+): a driver may set SKBTX_HW_TSTAMP_NETDEV
 * and keep a cookie (netdev_data) in skb_hwtstamps() for its ndo_get_tstamp()
 * instead of the stamp.  Used in hook.c.
 */

#endif /* _MGCAP_COMPAT_H */

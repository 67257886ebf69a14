// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: sysfs attributes of /sys/class/mgcap/<name>/: the capture's
 * settings and statistics/ with one counter per file (sums over all CPUs,
 * like a net device's statistics/).  Per ring counters are in each ring's
 * producer page and in the netlink cpu-stats, not here: one value per file,
 * and a file per CPU and counter would be thousands on a large machine.
 * Counters are monotonic; reading never resets them.
 */
#include <linux/device.h>
#include <linux/sysfs.h>

#include "mgcap.h"

static struct mgcap_capture *to_cap(struct device *d)
{
	return dev_get_drvdata(d);
}

static ssize_t ifname_show(struct device *d, struct device_attribute *attr,
			   char *buf)
{
	char name[IFNAMSIZ];

	mgcap_capture_names(to_cap(d), name, NULL);
	return sysfs_emit(buf, "%s\n", name);
}
static DEVICE_ATTR_RO(ifname);

static ssize_t ifindex_show(struct device *d, struct device_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%d\n", to_cap(d)->ifindex);
}
static DEVICE_ATTR_RO(ifindex);

static ssize_t mode_show(struct device *d, struct device_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  READ_ONCE(to_cap(d)->mode) == MGCAP_MODE_DROP ?
			  "drop" : "mirror");
}
static DEVICE_ATTR_RO(mode);

static ssize_t snaplen_show(struct device *d, struct device_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(to_cap(d)->snaplen));
}
static DEVICE_ATTR_RO(snaplen);

static ssize_t ring_size_show(struct device *d, struct device_attribute *attr,
			      char *buf)
{
	return sysfs_emit(buf, "%u\n", to_cap(d)->ring_size);
}
static DEVICE_ATTR_RO(ring_size);

/* the capture filter's expression; empty without a filter */
static ssize_t filter_show(struct device *d, struct device_attribute *attr,
			   char *buf)
{
	struct mgcap_filter *flt;
	ssize_t len;

	rcu_read_lock();
	flt = rcu_dereference(to_cap(d)->filter);
	if (!flt)
		len = sysfs_emit(buf, "\n");
	else if (flt->expr)
		len = sysfs_emit(buf, "%s\n", flt->expr);
	else
		len = sysfs_emit(buf, "(%u instructions, no expression)\n",
				 flt->len);
	rcu_read_unlock();
	return len;
}
static DEVICE_ATTR_RO(filter);

static struct attribute *mgcap_dev_attrs[] = {
	&dev_attr_ifname.attr,
	&dev_attr_ifindex.attr,
	&dev_attr_mode.attr,
	&dev_attr_snaplen.attr,
	&dev_attr_ring_size.attr,
	&dev_attr_filter.attr,
	NULL,
};

static const struct attribute_group mgcap_dev_group = {
	.attrs = mgcap_dev_attrs,
};

/* field names a member of struct mgcap_stats; used twice, never evaluated */
#define MGCAP_STAT_ATTR(field)						\
static ssize_t field##_show(struct device *d,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	struct mgcap_stats s;						\
									\
	mgcap_capture_stats(to_cap(d), &s);				\
	return sysfs_emit(buf, "%llu\n", s.field);			\
}									\
static DEVICE_ATTR_RO(field)

MGCAP_STAT_ATTR(seen_packets);
MGCAP_STAT_ATTR(seen_bytes);
MGCAP_STAT_ATTR(captured_packets);
MGCAP_STAT_ATTR(captured_bytes);
MGCAP_STAT_ATTR(ring_full_drops);
MGCAP_STAT_ATTR(consumed_packets);
MGCAP_STAT_ATTR(copy_errors);
MGCAP_STAT_ATTR(hw_stamped_packets);
MGCAP_STAT_ATTR(filtered_packets);

static struct attribute *mgcap_stat_attrs[] = {
	&dev_attr_seen_packets.attr,
	&dev_attr_seen_bytes.attr,
	&dev_attr_captured_packets.attr,
	&dev_attr_captured_bytes.attr,
	&dev_attr_ring_full_drops.attr,
	&dev_attr_consumed_packets.attr,
	&dev_attr_copy_errors.attr,
	&dev_attr_hw_stamped_packets.attr,
	&dev_attr_filtered_packets.attr,
	NULL,
};

static const struct attribute_group mgcap_stat_group = {
	.name = "statistics",
	.attrs = mgcap_stat_attrs,
};

const struct attribute_group *mgcap_dev_groups[] = {
	&mgcap_dev_group,
	&mgcap_stat_group,
	NULL,
};

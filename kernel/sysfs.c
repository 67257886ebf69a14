// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: sysfs attributes of /sys/class/mgcap/<name>/: the capture's
 * settings, statistics/ with one counter per file (sums over all CPUs, like
 * a net device's statistics/), and per_cpu_stats with one line per ring.
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
	return sysfs_emit(buf, "%s\n", to_cap(d)->ifname);
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

static ssize_t per_cpu_stats_show(struct device *d,
				  struct device_attribute *attr, char *buf)
{
	struct mgcap_capture *cap = to_cap(d);
	unsigned int cpu;
	int len;

	len = sysfs_emit(buf,
			 "cpu seen_packets seen_bytes captured_packets captured_bytes ring_full_drops consumed_packets copy_errors hw_stamped_packets filtered_packets\n");
	for (cpu = 0; cpu < cap->nr_rings; cpu++) {
		struct mgcap_stats s = {};

		if (!cap->rings[cpu])
			continue;
		mgcap_ring_stats_add(cap->rings[cpu], &s);
		len += sysfs_emit_at(buf, len,
				     "%u %llu %llu %llu %llu %llu %llu %llu %llu %llu\n",
				     cpu, s.seen_packets, s.seen_bytes,
				     s.captured_packets, s.captured_bytes,
				     s.ring_full_drops, s.consumed_packets,
				     s.copy_errors, s.hw_stamped_packets,
				     s.filtered_packets);
	}
	return len;
}
static DEVICE_ATTR_RO(per_cpu_stats);

static struct attribute *mgcap_dev_attrs[] = {
	&dev_attr_ifname.attr,
	&dev_attr_ifindex.attr,
	&dev_attr_mode.attr,
	&dev_attr_snaplen.attr,
	&dev_attr_ring_size.attr,
	&dev_attr_filter.attr,
	&dev_attr_per_cpu_stats.attr,
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

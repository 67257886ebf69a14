// SPDX-License-Identifier: GPL-2.0
/*
 * mgcap: the character devices /dev/mgcap/<ifname>.
 *
 * Minor numbers map to captures through an IDR, handed out cyclically, so
 * a minor comes back only after all the others (module parameter minors,
 * 65,536 by default) have been used.  A stale node, one devtmpfs removed at
 * the capture's stop but kept alive (a bind mount of an old
 * /dev/mgcap/<name>, an O_PATH descriptor), opens nothing, however often the
 * minors have gone round: open() refuses an inode with no link left, since
 * once the old cdev is gone such an inode would be bound afresh to whatever
 * capture holds its minor now, in any netns.  open() takes a reference on the
 * capture, so a file outlives the capture's stop and the device's removal:
 * it reads what is left, then gets EOF.  The cdev is allocated on
 * its own (cdev_alloc) because open files keep it alive after cdev_del(),
 * and its owner pins the module while a file is open.
 */
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "mgcap.h"

#define MGCAP_MINORS	BIT(16)

static unsigned int mgcap_minors_nr = MGCAP_MINORS;
module_param_named(minors, mgcap_minors_nr, uint, 0444);
MODULE_PARM_DESC(minors,
		 "Device minors: the most captures at once, and the starts before a minor is used again (1 to 65536, default 65536)");

/*
 * read(), poll() and epoll wait on the file's own queue, poll_wq; a relay
 * entry on the queue of whatever the file reads (its ring's, or the capture's
 * for an unbound file), queued from open() on, passes the ring's wakeups on.
 * A rebind moves the relay and wakes poll_wq, so a read() asleep or an epoll
 * registration made before the rebind follows it.
 */
struct mgcap_file {
	struct mgcap_capture *cap;
	struct mgcap_ring *ring;	/* bound ring, or NULL */
	unsigned int next_ring;		/* where an unbound read starts */
	atomic_t maps;			/* mappings of the ring: stays bound */
	struct mutex bind_lock;		/* one MGCAP_IOC_BIND_RING at a time */
	struct mutex lock;		/* mf->ring, mapping, the relay */
	wait_queue_head_t poll_wq;
	struct wait_queue_entry relay;
	wait_queue_head_t *relay_on;	/* where relay is queued, or NULL */
};

static dev_t mgcap_devt;
static DEFINE_IDR(mgcap_minors);
static DEFINE_MUTEX(mgcap_minors_lock);

static char *mgcap_devnode(MGCAP_DEVNODE_CONST struct device *dev,
			   umode_t *mode)
{
	struct mgcap_capture *cap = dev_get_drvdata(dev);
	char name[MGCAP_CHARDEV_NAME_MAX];

	if (!cap)
		return NULL;
	mgcap_capture_names(cap, NULL, name);
	return kstrdup(name, GFP_KERNEL);
}

/*
 * /sys/class/mgcap/<name> carries its capture's netns as a tag, as a net
 * device's directory does: a sysfs mounted in another netns (a container's,
 * ip netns exec's) does not list it, so the filter and the counters of a
 * capture stay with its netns.  The device exists only while the capture
 * runs, so cap->net is valid whenever sysfs asks.
 */
static const void *mgcap_namespace(MGCAP_DEVNODE_CONST struct device *dev)
{
	struct mgcap_capture *cap = dev_get_drvdata(dev);

	return cap->net;
}

static struct class mgcap_class = {
	.name = "mgcap",
	.devnode = mgcap_devnode,
	.dev_groups = mgcap_dev_groups,
	.ns_type = &net_ns_type_operations,
	.namespace = mgcap_namespace,
};

/*
 * The ring the file is bound to, or NULL.  mf->ring changes under mf->lock
 * (mgcap_bind()) but is read without it: load it once.  A ring lives as long
 * as its capture, which the file holds.
 */
static struct mgcap_ring *mgcap_file_ring(struct mgcap_file *mf)
{
	return READ_ONCE(mf->ring);
}

/* the queue the file's wakeups come from */
static wait_queue_head_t *mgcap_file_wq(struct mgcap_file *mf)
{
	struct mgcap_ring *ring = mgcap_file_ring(mf);

	return ring ? &ring->wq : &mf->cap->wq_any;
}

/* is there a record this file may read? */
static bool mgcap_file_readable(struct mgcap_file *mf)
{
	struct mgcap_ring *bound = mgcap_file_ring(mf);
	struct mgcap_capture *cap = mf->cap;
	unsigned int cpu;

	if (bound)
		return !mgcap_ring_empty(bound);
	for (cpu = 0; cpu < cap->nr_rings; cpu++) {
		struct mgcap_ring *ring = cap->rings[cpu];

		if (ring && !READ_ONCE(ring->owner) && !mgcap_ring_empty(ring))
			return true;
	}
	return false;
}

/* a record's block length, with @left bytes of records from it on */
static bool mgcap_record_len_ok(u32 len, u64 left)
{
	return len >= MGCAP_RECORD_LEN(0) && len <= left && !(len & 3);
}

/*
 * The bytes from @cons to the producer position are whole records, one after
 * the other.  A mmap reader may have written any consumer position: beyond
 * the ring, or inside it but not at a record.  Walks every record (at unbind
 * only); the producer writes none of these bytes.  Under the consumer lock.
 */
static bool mgcap_ring_chain_ok(struct mgcap_ring *ring, u64 cons, u64 used)
{
	unsigned int steps = 0;
	u64 n = 0;

	lockdep_assert_held(&ring->consumer_lock);
	if (used > ring->mask + 1)
		return false;
	while (n < used) {
		const struct mgcap_epb *epb =
			(const void *)(ring->data + ((cons + n) & ring->mask));
		u32 len = READ_ONCE(epb->block_len);

		if (!mgcap_record_len_ok(len, used - n))
			return false;
		n += len;
		if (!(++steps % 4096))
			cond_resched();
	}
	return true;
}

/*
 * Copy whole records of one ring, at most @count bytes.  Returns the bytes
 * copied, -EMSGSIZE if the next record alone is larger than @count, or
 * another negative error.
 */
static ssize_t mgcap_read_ring(struct mgcap_ring *ring, struct file *file,
			       char __user *buf, size_t count)
{
	u32 size = ring->mask + 1;
	ssize_t ret;
	u64 used, cons, n = 0;

	mutex_lock(&ring->consumer_lock);
	if (ring->owner && ring->owner != file) {
		ret = 0;
		goto out;
	}
	used = mgcap_ring_used(ring, &cons);
	if (used > size) {
		/* a mmap reader wrote a consumer position that cannot be */
		ret = -EIO;
		goto out;
	}
	while (n < used) {
		const struct mgcap_epb *epb =
			(const void *)(ring->data + ((cons + n) & ring->mask));
		u32 len = READ_ONCE(epb->block_len);

		if (!mgcap_record_len_ok(len, used - n)) {
			ret = -EIO;
			goto out;
		}
		if (n + len > count)
			break;
		n += len;
	}
	if (!n) {
		ret = used ? -EMSGSIZE : 0;
		goto out;
	}
	if (copy_to_user(buf, ring->data + (cons & ring->mask), n)) {
		ret = -EFAULT;
		goto out;
	}
	/* the producer may reuse the bytes only after they are copied */
	smp_store_release(&ring->cons->consumer_pos, cons + n);
	ret = n;
out:
	mutex_unlock(&ring->consumer_lock);
	return ret;
}

/* unbound: every ring gets an equal share first, then the rest fills up */
static ssize_t mgcap_read_all(struct mgcap_file *mf, struct file *file,
			      char __user *buf, size_t count)
{
	struct mgcap_capture *cap = mf->cap;
	unsigned int nr = cap->nr_rings, start = mf->next_ring, i, pass;
	size_t share = max_t(size_t, count / num_online_cpus(),
			     MGCAP_RECORD_LEN(0));
	bool too_small = false;
	size_t done = 0;

	mf->next_ring = (start + 1) % nr;
	for (pass = 0; pass < 2 && done < count; pass++) {
		for (i = 0; i < nr && done < count; i++) {
			struct mgcap_ring *ring = cap->rings[(start + i) % nr];
			size_t room = count - done;
			ssize_t n;

			if (!ring)
				continue;
			if (pass == 0)
				room = min(room, share);
			n = mgcap_read_ring(ring, file, buf + done, room);
			if (n == -EMSGSIZE) {
				too_small |= room == count - done;
				continue;
			}
			if (n < 0)
				return done ? done : n;
			done += n;
		}
	}
	if (!done && too_small)
		return -EINVAL;
	return done;
}

static ssize_t mgcap_read_once(struct mgcap_file *mf, struct file *file,
			       char __user *buf, size_t count)
{
	struct mgcap_ring *ring = mgcap_file_ring(mf);
	ssize_t n;

	if (!ring)
		return mgcap_read_all(mf, file, buf, count);
	n = mgcap_read_ring(ring, file, buf, count);
	return n == -EMSGSIZE ? -EINVAL : n;
}

static int mgcap_relay_wake(struct wait_queue_entry *wait, unsigned int mode,
			    int sync, void *key)
{
	struct mgcap_file *mf = container_of(wait, struct mgcap_file, relay);

	wake_up_interruptible(&mf->poll_wq);
	return 0;
}

/*
 * Queue the relay where the file's wakeups come from: from open() on, so
 * read() and poll() wait on poll_wq without taking a lock; a rebind moves it.
 * Under mf->lock.
 */
static void mgcap_relay_move(struct mgcap_file *mf)
{
	wait_queue_head_t *to = mgcap_file_wq(mf);

	lockdep_assert_held(&mf->lock);
	if (mf->relay_on == to)
		return;
	if (mf->relay_on)
		remove_wait_queue(mf->relay_on, &mf->relay);
	add_wait_queue(to, &mf->relay);
	mf->relay_on = to;
}

static ssize_t mgcap_read(struct file *file, char __user *buf, size_t count,
			  loff_t *ppos)
{
	struct mgcap_file *mf = file->private_data;
	struct mgcap_capture *cap = mf->cap;
	ssize_t n;
	int err;

	if (!count)
		return 0;
	for (;;) {
		n = mgcap_read_once(mf, file, buf, count);
		if (n)
			return n;
		/* pairs with the release in mgcap_capture_stop(): once stopped is
		 * seen, every record is published and one more pass gets them all
		 */
		if (smp_load_acquire(&cap->stopped))
			return mgcap_read_once(mf, file, buf, count);
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		/* the file's own queue, as poll() does: the relay follows a
		 * rebind by another thread, and the rebind wakes it
		 */
		err = wait_event_interruptible(mf->poll_wq,
					       mgcap_file_readable(mf) ||
					       READ_ONCE(cap->stopped));
		if (err)
			return err;
	}
}

static __poll_t mgcap_poll(struct file *file, poll_table *wait)
{
	struct mgcap_file *mf = file->private_data;
	struct mgcap_capture *cap = mf->cap;
	__poll_t mask = 0;

	poll_wait(file, &mf->poll_wq, wait);
	/* order the wait queue entry before the ring checks; pairs with the
	 * producer's smp_mb() before its waitqueue_active()
	 */
	smp_mb();
	/* pairs with the release in mgcap_capture_stop() */
	if (smp_load_acquire(&cap->stopped))
		mask |= EPOLLHUP;
	if (mgcap_file_readable(mf))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

/*
 * Give a ring this file owned back.  A consumer position that a mmap reader
 * left impossible (more than a ring ahead of or behind the producer) would
 * make every later reader fail with EIO and the producer drop everything: the
 * ring is emptied instead.
 */
static void mgcap_unbind(struct mgcap_ring *ring)
{
	char name[IFNAMSIZ];
	u64 cons, prod, used;

	mutex_lock(&ring->consumer_lock);
	used = mgcap_ring_used(ring, &cons);
	if (!mgcap_ring_chain_ok(ring, cons, used)) {
		mgcap_capture_names(ring->cap, name, NULL);
		pr_warn_ratelimited("mgcap: %s: ring %u: the reader left consumer_pos %llu, not at a record; ring emptied\n",
				    name, ring->cpu, cons);
		/* the records up to prod are written */
		prod = smp_load_acquire(&ring->prod->producer_pos);
		/* the producer may reuse them, as after a read */
		smp_store_release(&ring->cons->consumer_pos, prod);
	}
	WRITE_ONCE(ring->owner, NULL);
	mutex_unlock(&ring->consumer_lock);
	/* unbound readers may now read it */
	mgcap_ring_wake(ring);
}

/*
 * Lock order: mmap_lock -> mf->lock (mmap), ring->consumer_lock -> mmap_lock
 * (read() copies to user space under the consumer lock, and may fault), so a
 * ring's consumer lock is never taken under mf->lock: the new ring is claimed
 * before, the old one given back after, mf->ring switched in between.
 */
static int mgcap_bind(struct mgcap_file *mf, struct file *file, u32 cpu)
{
	struct mgcap_capture *cap = mf->cap;
	struct mgcap_ring *ring = NULL, *old;
	int err = 0;

	if (cpu != MGCAP_RING_UNBOUND) {
		if (cpu >= cap->nr_rings || !cap->rings[cpu])
			return -EINVAL;
		ring = cap->rings[cpu];
	}

	mutex_lock(&mf->bind_lock);
	if (ring == mf->ring)
		goto out;
	if (ring) {
		mutex_lock(&ring->consumer_lock);
		if (ring->owner)
			err = -EBUSY;
		else
			WRITE_ONCE(ring->owner, file);
		mutex_unlock(&ring->consumer_lock);
		if (err)
			goto out;
	}
	mutex_lock(&mf->lock);
	/* a mapping keeps the file bound to what it maps */
	if (atomic_read(&mf->maps)) {
		mutex_unlock(&mf->lock);
		if (ring)
			mgcap_unbind(ring);
		err = -EBUSY;
		goto out;
	}
	old = mf->ring;
	WRITE_ONCE(mf->ring, ring);
	mgcap_relay_move(mf);
	/* pollers look again, at the new ring */
	wake_up_interruptible(&mf->poll_wq);
	mutex_unlock(&mf->lock);
	if (old)
		mgcap_unbind(old);
out:
	mutex_unlock(&mf->bind_lock);
	return err;
}

/* MGCAP_IOC_GET_STATS before hw_stamped_packets, then filtered_packets */
#define MGCAP_STATS_V1_SIZE	offsetofend(struct mgcap_stats, copy_errors)
#define MGCAP_IOC_GET_STATS_V1	_IOR(MGCAP_IOC_MAGIC, 3, u8[MGCAP_STATS_V1_SIZE])
#define MGCAP_STATS_V2_SIZE	offsetofend(struct mgcap_stats, hw_stamped_packets)
#define MGCAP_IOC_GET_STATS_V2	_IOR(MGCAP_IOC_MAGIC, 3, u8[MGCAP_STATS_V2_SIZE])

static long mgcap_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct mgcap_file *mf = file->private_data;
	struct mgcap_capture *cap = mf->cap;
	struct mgcap_ring *bound;
	void __user *uarg = (void __user *)arg;
	struct mgcap_stats stats;
	struct mgcap_info info;
	u32 val;

	switch (cmd) {
	case MGCAP_IOC_BIND_RING:
		if (get_user(val, (u32 __user *)uarg))
			return -EFAULT;
		return mgcap_bind(mf, file, val);
	case MGCAP_IOC_GET_INFO:
		memset(&info, 0, sizeof(info));
		mgcap_capture_names(cap, info.ifname, NULL);
		info.ifindex = cap->ifindex;
		info.mode = READ_ONCE(cap->mode);
		info.snaplen = READ_ONCE(cap->snaplen);
		info.ring_size = cap->ring_size;
		info.nr_rings = cap->nr_rings;
		bound = mgcap_file_ring(mf);
		info.bound_ring = bound ? bound->cpu : MGCAP_RING_UNBOUND;
		info.interface_id = READ_ONCE(cap->ifid);
		info.link_type = cap->link_type;
		return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
	case MGCAP_IOC_GET_STATS:
	case MGCAP_IOC_GET_STATS_V1:
	case MGCAP_IOC_GET_STATS_V2:
		mgcap_capture_stats(cap, &stats);
		return copy_to_user(uarg, &stats, _IOC_SIZE(cmd)) ? -EFAULT : 0;
	case MGCAP_IOC_SET_IFID:
		/* the opener's right, over the capture's netns, as sockets do */
		if (!file_ns_capable(file, cap->user_ns, CAP_NET_ADMIN))
			return -EPERM;
		if (get_user(val, (u32 __user *)uarg))
			return -EFAULT;
		WRITE_ONCE(cap->ifid, val);
		return 0;
	}
	return -ENOTTY;
}

static void mgcap_vm_open(struct vm_area_struct *vma)
{
	struct mgcap_file *mf = vma->vm_private_data;

	atomic_inc(&mf->maps);
}

static void mgcap_vm_close(struct vm_area_struct *vma)
{
	struct mgcap_file *mf = vma->vm_private_data;

	atomic_dec(&mf->maps);
}

/* counts the file's mappings (split, fork and mremap included) */
static const struct vm_operations_struct mgcap_vm_ops = {
	.open = mgcap_vm_open,
	.close = mgcap_vm_close,
};

/*
 * Map the bound ring: page 0 is the consumer page (the only writable one,
 * shared mappings only: a private copy would take the reader's writes away
 * from the producer), page 1 the producer page, then the data twice.
 */
static int mgcap_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct mgcap_file *mf = file->private_data;
	unsigned long pages = vma_pages(vma);
	unsigned long total;
	int err;

	mutex_lock(&mf->lock);
	if (!mf->ring) {
		err = -EINVAL;
		goto out;
	}
	total = 2 + 2 * ((unsigned long)mf->cap->ring_size >> PAGE_SHIFT);
	if (vma->vm_pgoff >= total || pages > total - vma->vm_pgoff) {
		err = -EINVAL;
		goto out;
	}
	if (vma->vm_pgoff == 0 && !(vma->vm_flags & VM_SHARED)) {
		err = -EINVAL;
		goto out;
	}
	if (vma->vm_pgoff + pages > 1) {
		if (vma->vm_flags & VM_WRITE) {
			err = -EPERM;
			goto out;
		}
		mgcap_vm_flags_clear(vma, VM_MAYWRITE);
	}
	mgcap_vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	err = remap_vmalloc_range(vma, mf->ring->area, vma->vm_pgoff);
	if (!err) {
		vma->vm_ops = &mgcap_vm_ops;
		vma->vm_private_data = mf;
		mgcap_vm_open(vma);
	}
out:
	mutex_unlock(&mf->lock);
	return err;
}

static int mgcap_open(struct inode *inode, struct file *file)
{
	struct mgcap_capture *cap;
	struct mgcap_file *mf;

	mf = kzalloc(sizeof(*mf), GFP_KERNEL);
	if (!mf)
		return -ENOMEM;

	/* devtmpfs unlinked it when its capture stopped: a stale node */
	if (!inode->i_nlink) {
		kfree(mf);
		return -ENODEV;
	}
	mutex_lock(&mgcap_minors_lock);
	cap = idr_find(&mgcap_minors, iminor(inode));
	/* the capture that holds the minor now, through the cdev it opened */
	if (cap && (cap->cdev != inode->i_cdev || !mgcap_capture_get(cap)))
		cap = NULL;
	mutex_unlock(&mgcap_minors_lock);
	if (!cap) {
		kfree(mf);
		return -ENODEV;
	}

	mf->cap = cap;
	mutex_init(&mf->bind_lock);
	mutex_init(&mf->lock);
	init_waitqueue_head(&mf->poll_wq);
	init_waitqueue_func_entry(&mf->relay, mgcap_relay_wake);
	mutex_lock(&mf->lock);
	mgcap_relay_move(mf);
	mutex_unlock(&mf->lock);
	file->private_data = mf;
	return stream_open(inode, file);
}

static int mgcap_release(struct inode *inode, struct file *file)
{
	struct mgcap_file *mf = file->private_data;

	/* epoll let go of poll_wq before this (eventpoll_release) */
	if (mf->relay_on)
		remove_wait_queue(mf->relay_on, &mf->relay);
	/* no mapping is left: each holds the file */
	if (mf->ring)
		mgcap_unbind(mf->ring);
	mgcap_capture_put(mf->cap);
	mutex_destroy(&mf->lock);
	mutex_destroy(&mf->bind_lock);
	kfree(mf);
	return 0;
}

static const struct file_operations mgcap_fops = {
	.owner = THIS_MODULE,
	.open = mgcap_open,
	.release = mgcap_release,
	.read = mgcap_read,
	.poll = mgcap_poll,
	.unlocked_ioctl = mgcap_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = mgcap_mmap,
};

/* /dev/mgcap/<name> and /sys/class/mgcap/<name>; under RTNL */
int mgcap_chardev_node_add(struct mgcap_capture *cap)
{
	dev_t devt = MKDEV(MAJOR(mgcap_devt), cap->minor);
	struct device *d;

	ASSERT_RTNL();

	if (net_eq(cap->net, &init_net))
		d = device_create(&mgcap_class, NULL, devt, cap, "%s",
				  cap->ifname);
	else
		d = device_create(&mgcap_class, NULL, devt, cap, "netns-%u:%s",
				  cap->netns_inum, cap->ifname);
	if (IS_ERR(d))
		return PTR_ERR(d);
	cap->cdevice = d;
	return 0;
}

void mgcap_chardev_node_del(struct mgcap_capture *cap)
{
	if (!cap->cdevice)
		return;
	device_unregister(cap->cdevice);
	cap->cdevice = NULL;
}

int mgcap_chardev_add(struct mgcap_capture *cap)
{
	int minor, err;

	mutex_lock(&mgcap_minors_lock);
	minor = idr_alloc_cyclic(&mgcap_minors, cap, 0, mgcap_minors_nr,
				 GFP_KERNEL);
	mutex_unlock(&mgcap_minors_lock);
	if (minor < 0)
		return minor;
	cap->minor = minor;

	cap->cdev = cdev_alloc();
	if (!cap->cdev) {
		err = -ENOMEM;
		goto err_idr;
	}
	cap->cdev->owner = THIS_MODULE;
	cap->cdev->ops = &mgcap_fops;
	err = cdev_add(cap->cdev, MKDEV(MAJOR(mgcap_devt), minor), 1);
	if (err)
		goto err_cdev;
	err = mgcap_chardev_node_add(cap);
	if (err)
		goto err_cdev;
	return 0;

err_cdev:
	cdev_del(cap->cdev);
	cap->cdev = NULL;
err_idr:
	mutex_lock(&mgcap_minors_lock);
	idr_remove(&mgcap_minors, minor);
	mutex_unlock(&mgcap_minors_lock);
	cap->minor = -1;
	return err;
}

void mgcap_chardev_del(struct mgcap_capture *cap)
{
	if (cap->minor < 0)
		return;
	/* no new open from here on; open files keep their reference */
	mutex_lock(&mgcap_minors_lock);
	idr_remove(&mgcap_minors, cap->minor);
	mutex_unlock(&mgcap_minors_lock);
	mgcap_chardev_node_del(cap);
	cdev_del(cap->cdev);
	cap->cdev = NULL;
	cap->minor = -1;
}

int mgcap_chardev_init(void)
{
	int err;

	if (!mgcap_minors_nr || mgcap_minors_nr > MGCAP_MINORS) {
		pr_err("mgcap: minors must be 1 to %lu\n", MGCAP_MINORS);
		return -EINVAL;
	}
	err = alloc_chrdev_region(&mgcap_devt, 0, mgcap_minors_nr, "mgcap");
	if (err)
		return err;
	err = class_register(&mgcap_class);
	if (err)
		unregister_chrdev_region(mgcap_devt, mgcap_minors_nr);
	return err;
}

void mgcap_chardev_exit(void)
{
	class_unregister(&mgcap_class);
	unregister_chrdev_region(mgcap_devt, mgcap_minors_nr);
	idr_destroy(&mgcap_minors);
}

/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * mgcap: user-space contract of the capture data path.
 *
 * mgcap hooks the receive path of a network device and copies the first
 * <snaplen> bytes of every frame, with a timestamp, into one ring per CPU.
 * Each capturing device has a character device, /dev/mgcap/<ifname> (in the
 * initial network namespace) or /dev/mgcap/netns-<inum>/<ifname> (in any
 * other network namespace, <inum> being the namespace's inode number).
 *
 * RECORDS
 *
 * Every record is a complete PCAP-NG Enhanced Packet Block (block type 6) in
 * the host's byte order, so a reader can write records to a PCAP-NG file
 * without touching them (after a Section Header Block and one Interface
 * Description Block per device):
 *
 *   offset size
 *        0    4  block_type        MGCAP_EPB_TYPE (6)
 *        4    4  block_len         total length of this record, a multiple of 4
 *        8    4  interface_id      the device's PCAP-NG interface id (default
 *                                  0; MGCAP_IOC_SET_IFID changes it)
 *       12    4  ts_high           upper 32 bits of the timestamp
 *       16    4  ts_low            lower 32 bits of the timestamp
 *       20    4  caplen            bytes of frame in this record
 *       24    4  origlen           length of the frame on the wire
 *       28    n  frame             caplen bytes from the link-layer header,
 *                                  zero padded to a multiple of 4
 *   28+pad    4  block_len         again
 *
 * The timestamp counts nanoseconds since the Unix epoch (if_tsresol = 9): the
 * NIC's hardware stamp when the frame carries one, else the kernel's real
 * time clock when the frame reached mgcap; hw_stamped_packets counts the
 * records of the first kind.  caplen = min(snaplen, origlen), and no more
 * than a capture filter's program returned for the frame.
 * A VLAN tag that was stripped into packet metadata by the NIC or the stack
 * is put back into the frame (and counted in origlen), so the frame is what
 * was on the wire.  Records carry no options, so a record is
 * MGCAP_RECORD_LEN(caplen) bytes: 128 bytes for a 96-byte snapshot.
 *
 * COUNTERS
 *
 * Every frame that reaches mgcap is counted once in seen_packets and once in
 * exactly one of captured_packets, filtered_packets (rejected by the capture
 * filter), ring_full_drops and copy_errors, per ring:
 *   seen = captured + filtered + ring_full_drops + copy_errors.
 * consumed_packets counts the frames drop mode took from the stack, whatever
 * became of them.
 *
 * READ
 *
 * read() returns whole records only, never a part of one; a buffer smaller
 * than the next record fails with EINVAL (MGCAP_RECORD_LEN(snaplen) always
 * suffices; MGCAP_RECORD_MAX always does).  Without a ring binding a read
 * takes records from every CPU's ring in turn, each ring getting an equal
 * share of the buffer; records of one ring are in arrival order, records of
 * different rings are not ordered among each other.  read() blocks until
 * records are there unless the file is O_NONBLOCK (then EAGAIN).  When the
 * capture stops (by request or because the device went away) the remaining
 * records are still delivered; then read() returns 0 and poll() reports
 * POLLHUP.
 *
 * Wakeups are batched: a sleeping reader is woken when its ring holds
 * <wakeup watermark> bytes, or <wakeup_usecs> after the first record it has
 * not seen, whichever is first, never once per packet.
 *
 * RING BINDING AND MMAP
 *
 * MGCAP_IOC_BIND_RING binds a file to the ring of one CPU, exclusively: one
 * file per ring, so that one reader thread drains one ring.  Unbound readers
 * skip rings that are bound.  A bound file can mmap() its ring:
 *
 *   offset 0                        consumer page, read-write, one page
 *   offset page size                producer page, read-only, one page
 *   offset 2 * page size            ring data, read-only, mapped twice in a
 *                                   row (2 * ring_size bytes), so a record
 *                                   that wraps is contiguous in memory
 *
 * A zero-copy reader loads producer_pos with acquire semantics, processes
 * the records between consumer_pos and producer_pos at data offset
 * (pos & (ring_size - 1)), then stores the new consumer_pos with release
 * semantics.  Positions are byte counts since the ring was created; they only
 * grow.
 */
#ifndef _UAPI_LINUX_MGCAP_DATAPATH_H
#define _UAPI_LINUX_MGCAP_DATAPATH_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* enum mgcap_mode (MGCAP_MODE_DROP, MGCAP_MODE_MIRROR) and the netlink family */
#include "mgcap_netlink.h"

#define MGCAP_EPB_TYPE		6
#define MGCAP_EPB_HDR_LEN	28	/* block_type .. origlen */
#define MGCAP_EPB_TRAILER_LEN	4	/* trailing block_len */
#define MGCAP_SNAPLEN_DEFAULT	96
#define MGCAP_SNAPLEN_MIN	1
#define MGCAP_SNAPLEN_MAX	262144	/* tcpdump's MAXIMUM_SNAPLEN: "the whole frame" */

/* bytes taken by a record carrying caplen bytes of frame */
#define MGCAP_RECORD_LEN(caplen) \
	(MGCAP_EPB_HDR_LEN + (((caplen) + 3U) & ~3U) + MGCAP_EPB_TRAILER_LEN)
#define MGCAP_RECORD_MAX	MGCAP_RECORD_LEN(MGCAP_SNAPLEN_MAX)

/* ring size per CPU, in bytes: a power of two within these bounds */
#define MGCAP_RING_SIZE_DEFAULT	(4U << 20)
#define MGCAP_RING_SIZE_MIN	(64U << 10)
#define MGCAP_RING_SIZE_MAX	(1024U << 20)

/* the record as laid out in the ring; frame[] is padded to 4 bytes and
 * followed by block_len_trailer
 */
struct mgcap_epb {
	__u32 block_type;
	__u32 block_len;
	__u32 interface_id;
	__u32 ts_high;
	__u32 ts_low;
	__u32 caplen;
	__u32 origlen;
	__u8 frame[];
};

/* written by the reader only */
struct mgcap_consumer_page {
	__u64 consumer_pos;
};

/* written by the producer only; counters are monotonic */
struct mgcap_producer_page {
	__u64 producer_pos;
	__u32 ring_size;	/* bytes of ring data */
	__u32 data_offset;	/* mmap offset of the ring data */
	__u32 cpu;		/* CPU whose ring this is */
	__u32 reserved;
	__u64 seen_packets;	/* frames that reached mgcap on this CPU */
	__u64 seen_bytes;	/* their origlen */
	__u64 captured_packets;	/* records written to the ring */
	__u64 captured_bytes;	/* their origlen */
	__u64 ring_full_drops;	/* frames lost because the ring was full */
	__u64 consumed_packets;	/* frames consumed in drop mode */
	__u64 copy_errors;	/* frames that could not be copied */
	__u64 hw_stamped_packets; /* records stamped by the NIC's clock */
	__u64 filtered_packets;	/* frames the capture filter rejected */
};

/* MGCAP_IOC_GET_INFO fills this */
struct mgcap_info {
	__u32 ifindex;
	__u32 mode;		/* MGCAP_MODE_* */
	__u32 snaplen;
	__u32 ring_size;	/* bytes per ring */
	__u32 nr_rings;		/* rings are numbered 0 .. nr_rings - 1 */
	__u32 bound_ring;	/* ring this file is bound to, or ~0U */
	__u32 interface_id;
	__u32 link_type;	/* ARPHRD_* of the device */
	char ifname[16];
};

/* MGCAP_IOC_GET_STATS fills this: the sum over all rings */
struct mgcap_stats {
	__u64 seen_packets;
	__u64 seen_bytes;
	__u64 captured_packets;
	__u64 captured_bytes;
	__u64 ring_full_drops;
	__u64 consumed_packets;
	__u64 copy_errors;
	__u64 hw_stamped_packets;	/* records stamped by the NIC's clock */
	__u64 filtered_packets;		/* frames the capture filter rejected */
};

#define MGCAP_RING_UNBOUND	(~0U)

#define MGCAP_IOC_MAGIC		0xe6
/* bind this file to one ring (a CPU number); MGCAP_RING_UNBOUND unbinds */
#define MGCAP_IOC_BIND_RING	_IOW(MGCAP_IOC_MAGIC, 1, __u32)
#define MGCAP_IOC_GET_INFO	_IOR(MGCAP_IOC_MAGIC, 2, struct mgcap_info)
/* (the size, and so the number, grew with hw_stamped_packets and then with
 * filtered_packets; the numbers of the older, shorter structs still work and
 * fill the fields they had)
 */
#define MGCAP_IOC_GET_STATS	_IOR(MGCAP_IOC_MAGIC, 3, struct mgcap_stats)
/* set the interface_id written into records from now on */
#define MGCAP_IOC_SET_IFID	_IOW(MGCAP_IOC_MAGIC, 4, __u32)

#endif /* _UAPI_LINUX_MGCAP_DATAPATH_H */

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// ethertap's XDP and TC programs. One loaded instance of this object per interface, so `xsks`
// is that interface's own map and two interfaces can both use queue 0 (facts.md).
//
// The XDP program hands every frame of a served queue to the AF_XDP socket bound to it, except
// while the engine has set this interface's kernel-path flag (`kpath_cfg`, docs/kernel-path.md):
// nothing in user space wants the frame then, so the program keeps the worker's statistics
// itself, marks the frame in its XDP metadata and passes it to the stack, where the TC ingress
// program redirects every marked frame to the other port. The mark, not a second look at the
// flag, decides in TC, so a flag change between the two programs cannot strand a frame.
//
// With the tap flag also set, a tap wants the frame: the program copies it into `ktap_ring` first
// (the kernel tap, src/ixdp/ktap.rs). When the ring is full, the frame goes to the AF_XDP
// socket instead, where the worker forwards and taps it: the tap never loses a frame to a ring.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define ETHERTAP_MAX_QUEUES 64

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, ETHERTAP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Per-CPU counters, summed by the engine: what the engine cannot see from user space.
enum {
	CNT_SEEN = 0,       // frames the program ran on
	CNT_REDIRECTED = 1, // handed to a socket
	CNT_PASSED = 2,     // no socket on this queue: left to the kernel stack
	CNT_KERNEL = 3,     // forwarded on the kernel path
	CNT_KTAP = 4,       // of those, copied into ktap_ring for the taps
	CNT_KTAP_FULL = 5,  // wanted by the kernel tap, but the ring was full: given to the socket
	CNT_MAX = 6,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// Written by the engine's control side only (src/ixdp/kpath.rs).
struct kpath_cfg {
	__u32 forward;     // 1: frames of served queues take the kernel path
	__u32 out_ifindex; // the other port
	__u32 generic;     // 1: attached in generic (skb) mode: redirect from XDP, no TC
	__u32 tap;         // 1: copy every kernel-path frame into ktap_ring for the taps
};


struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kpath_cfg);
} kpath_cfg SEC(".maps");

// The statistics of kernel-path frames, merged by the engine with the workers' own
// (src/ixdp/stats.rs): per queue, frames and bytes received (each of them also forwarded), then
// the two table overflow counts of the interface.
#define KP_QUEUE_RX(q) ((q) * 2)
#define KP_QUEUE_RX_BYTES(q) ((q) * 2 + 1)
#define KP_MAC_OVERFLOW (ETHERTAP_MAX_QUEUES * 2)
#define KP_ETYPE_OVERFLOW (ETHERTAP_MAX_QUEUES * 2 + 1)
#define KP_COUNTERS (ETHERTAP_MAX_QUEUES * 2 + 2)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KP_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} kpath_counters SEC(".maps");

// Source MAC (as a big-endian 48-bit number) -> frames; as many MACs as a worker's table.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} kpath_macs SEC(".maps");

struct etype_row {
	__u64 frames;
	__u64 last_src;
};

// (VLAN level << 16 | Ethertype, 0 for an 802.3 length) -> frames and the last source MAC.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, struct etype_row);
} kpath_etypes SEC(".maps");

// The 4096-bit overflow sketch of stats.rs, as 64 words.
#define SKETCH_WORDS 64

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SKETCH_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} kpath_sketch SEC(".maps");

// The kernel tap's records: a header, then the frame whole (src/ixdp/ktap.rs reads them).
struct ktap_hdr {
	__u64 mono_ns; // bpf_ktime_get_ns() at the copy
	__u32 len;     // the frame's length, every buffer
	__u32 queue;   // the receive queue
};

// The longest frame the kernel tap copies (longer ones take the worker path): a 9000-byte MTU
// with four VLAN tags fits.
#define KTAP_MAX_FRAME 9216

// The verifier bounds a length by a mask more reliably than by comparisons (the compiler may
// check one register and pass another): a copy is (len - 1) & KTAP_MASK plus one bytes.
#define KTAP_MASK 0x3fff

struct ktap_scratch {
	struct ktap_hdr hdr;
	__u8 data[KTAP_MASK + 1];
};

// Where a record is put together: a ring record is reserved with a size known to the verifier,
// and a frame's length is not.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ktap_scratch);
} ktap_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} ktap_ring SEC(".maps");

#define KPATH_MARK 0x65746b70 // "etkp"
#define MAX_VLAN_TAGS 4

static __always_inline void add(void *map, __u32 key, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(map, &key);
	if (c)
		*c += n;
}

// stats.rs sketch_hash: the same bit in both, so that the two sketches merge by OR.
static __always_inline __u64 sketch_hash(__u64 x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static __always_inline void count_mac(__u64 src)
{
	__u64 one = 1, *frames = bpf_map_lookup_elem(&kpath_macs, &src);
	if (frames) {
		*frames += 1;
		return;
	}
	if (!bpf_map_update_elem(&kpath_macs, &src, &one, BPF_NOEXIST))
		return;
	// Another CPU may have inserted it meanwhile; only a full table is overflow.
	frames = bpf_map_lookup_elem(&kpath_macs, &src);
	if (frames) {
		*frames += 1;
		return;
	}
	add(&kpath_counters, KP_MAC_OVERFLOW, 1);
	__u32 bit = sketch_hash(src) >> 52;
	__u32 word = bit / 64;
	__u64 *w = bpf_map_lookup_elem(&kpath_sketch, &word);
	if (w)
		*w |= 1ULL << (bit % 64);
}

static __always_inline void count_etype(__u32 level, __u16 type, __u64 src)
{
	__u32 key = level << 16 | (type < 0x600 ? 0 : type);
	struct etype_row first = { 1, src }, *row = bpf_map_lookup_elem(&kpath_etypes, &key);
	if (!row && bpf_map_update_elem(&kpath_etypes, &key, &first, BPF_NOEXIST) == 0)
		return;
	if (!row)
		row = bpf_map_lookup_elem(&kpath_etypes, &key);
	if (row) {
		row->frames += 1;
		row->last_src = src;
	} else {
		add(&kpath_counters, KP_ETYPE_OVERFLOW, 1);
	}
}

// The worker's QueueStats::on_rx, for a frame that never reaches it.
static __always_inline void kpath_count(struct xdp_md *ctx, __u32 queue)
{
	unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u64 src = 0;
	__u32 at = 12;

	add(&kpath_counters, KP_QUEUE_RX(queue), 1);
	add(&kpath_counters, KP_QUEUE_RX_BYTES(queue), bpf_xdp_get_buff_len(ctx));
	if (data + 12 > end)
		return;
	for (int i = 0; i < 6; i++)
		src = src << 8 | data[6 + i];
	count_mac(src);
	for (__u32 level = 0; level <= MAX_VLAN_TAGS; level++) {
		if (data + at + 2 > end)
			break;
		__u16 type = (__u16)data[at] << 8 | data[at + 1];
		count_etype(level, type, src);
		if ((type != 0x8100 && type != 0x88a8) || level == MAX_VLAN_TAGS)
			break;
		at += 4;
	}
}

// Marks the frame for the TC program; false if the driver keeps no metadata.
static __always_inline int kpath_mark(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(__u32)))
		return 0;
	__u32 *meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > (void *)(long)ctx->data)
		return 0;
	*meta = KPATH_MARK;
	return 1;
}

// Copies the frame into ktap_ring; false (nothing written) when it is too long or the ring
// is full.
static __always_inline int ktap_copy(struct xdp_md *ctx, __u32 queue)
{
	__u32 zero = 0, len = bpf_xdp_get_buff_len(ctx);
	struct ktap_scratch *s = bpf_map_lookup_elem(&ktap_scratch, &zero);

	if (!s || len < 14 || len > KTAP_MAX_FRAME)
		return 0;
	len = ((len - 1) & KTAP_MASK) + 1; // the same value, in bounds the verifier sees
	if (bpf_xdp_load_bytes(ctx, 0, s->data, len))
		return 0;
	s->hdr.mono_ns = bpf_ktime_get_ns();
	s->hdr.len = len;
	s->hdr.queue = queue;
	return bpf_ringbuf_output(&ktap_ring, s, sizeof(s->hdr) + len, 0) == 0;
}

// The tap copy of a kernel-path frame when the tap flag asks for it; false: the frame must go to
// the socket instead.
static __always_inline int ktap(struct xdp_md *ctx, struct kpath_cfg *cfg, __u32 queue)
{
	if (!cfg->tap)
		return 1;
	if (ktap_copy(ctx, queue)) {
		add(&counters, CNT_KTAP, 1);
		return 1;
	}
	add(&counters, CNT_KTAP_FULL, 1);
	return 0;
}

// xdp.frags: the program reads past the first buffer only through bpf_xdp_load_bytes, so it may
// see frames in several buffers (multi-buffer XDP). veth refuses a native program that is not frags-aware once the
// MTU is too large for one page, and only a frags-aware program hands long frames to a socket.
SEC("xdp.frags")
int ethertap_xdp(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index, zero = 0;
	struct kpath_cfg *cfg = bpf_map_lookup_elem(&kpath_cfg, &zero);
	long action;

	add(&counters, CNT_SEEN, 1);
	if (cfg && cfg->generic) {
		// Generic XDP transmits a redirected skb on the output itself, whatever the
		// output's driver, and TC ingress would not see the frame's Ethernet header
		// here (docs/kernel-path.md): the frame goes out from XDP.
		if (cfg->forward && cfg->out_ifindex && queue < ETHERTAP_MAX_QUEUES &&
		    bpf_map_lookup_elem(&xsks, &queue) && ktap(ctx, cfg, queue)) {
			kpath_count(ctx, queue);
			add(&counters, CNT_KERNEL, 1);
			return bpf_redirect(cfg->out_ifindex, 0);
		}
	} else if (cfg && cfg->forward && queue < ETHERTAP_MAX_QUEUES &&
		   bpf_map_lookup_elem(&xsks, &queue) && kpath_mark(ctx)) {
		// Marked first: a driver without metadata must not have the frame tapped here and
		// again by the worker.
		if (ktap(ctx, cfg, queue)) {
			kpath_count(ctx, queue);
			add(&counters, CNT_KERNEL, 1);
			return XDP_PASS;
		}
		bpf_xdp_adjust_meta(ctx, (int)sizeof(__u32));
	}
	// XDP_PASS as the fallback keeps queues the engine does not serve usable by the host.
	action = bpf_redirect_map(&xsks, queue, XDP_PASS);
	add(&counters, action == XDP_REDIRECT ? CNT_REDIRECTED : CNT_PASSED, 1);
	return action;
}

// TC ingress (a tcx link): forwards what the XDP program marked, and nothing else.
SEC("tcx/ingress")
int ethertap_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	__u32 *meta = (void *)(long)skb->data_meta, zero = 0;
	struct kpath_cfg *cfg;

	cfg = bpf_map_lookup_elem(&kpath_cfg, &zero);
	if (!cfg || !cfg->out_ifindex)
		return -1; // TCX_NEXT: not ours
	if ((void *)(meta + 1) > data || *meta != KPATH_MARK)
		return -1;
	return bpf_redirect(cfg->out_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

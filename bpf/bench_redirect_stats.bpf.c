// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// What a kernel path that keeps ethertap's statistics would cost (bench/engine-lab.sh, system
// xdp-redirect-stats; BENCHMARKS.md, issue 18): bench_redirect.bpf.c plus the per-frame
// statistics ethertap's worker keeps (src/ixdp/stats.rs): frames and bytes received, the
// source-MAC table (1024 MACs, then an overflow count), and the Ethertype table at every VLAN
// level through up to four tags (128 rows, each with the last source MAC). Per-CPU tables, so
// that receive queues on several CPUs never share a line. A measurement, not a product part:
// nothing reads the tables back.
// Self-contained (no libbpf headers): the benchmark compiles it with plain clang -g (BTF-defined
// maps, which iproute2's libbpf loads).

#include <linux/bpf.h>

#ifndef OUT_IFINDEX
#error "compile with -DOUT_IFINDEX=<ifindex of the output interface>"
#endif

// -DPASS_TO_TC: hand each frame on to the stack (XDP_PASS) after counting it, for a TC ingress
// redirect to forward (systems kpath-drv and kpath-skb, with bench_tc_redirect.bpf.c).
#ifdef PASS_TO_TC
#define FORWARD() XDP_PASS
#else
#define FORWARD() bpf_redirect(OUT_IFINDEX, 0)
#endif

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define INLINE static inline __attribute__((always_inline))

static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
				   __u64 flags) = (void *)BPF_FUNC_map_update_elem;

enum { RX = 0, RX_BYTES = 1, MAC_OVERFLOW = 2, ETYPE_OVERFLOW = 3, N_COUNTERS = 4 };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, N_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} macs SEC(".maps");

struct etype_row {
	__u64 frames;
	__u64 last_src;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, struct etype_row);
} etypes SEC(".maps");

INLINE void add(__u32 which, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += n;
}

INLINE void count_mac(__u64 src)
{
	__u64 one = 1, *frames = bpf_map_lookup_elem(&macs, &src);
	if (frames)
		*frames += 1;
	else if (bpf_map_update_elem(&macs, &src, &one, BPF_NOEXIST))
		add(MAC_OVERFLOW, 1);
}

INLINE void count_etype(__u32 level, __u16 type, __u64 src)
{
	__u32 key = level << 16 | (type < 0x600 ? 0 : type);
	struct etype_row first = { 1, src }, *row = bpf_map_lookup_elem(&etypes, &key);
	if (row) {
		row->frames += 1;
		row->last_src = src;
	} else if (bpf_map_update_elem(&etypes, &key, &first, BPF_NOEXIST)) {
		add(ETYPE_OVERFLOW, 1);
	}
}

SEC("xdp")
int bench_redirect_stats(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u64 src = 0;
	__u32 at = 12;

	add(RX, 1);
	add(RX_BYTES, end - data);
	if (data + 14 > end)
		return FORWARD();
	for (int i = 0; i < 6; i++)
		src = src << 8 | data[6 + i];
	count_mac(src);
	for (__u32 level = 0; level < 5; level++) {
		if (data + at + 2 > end)
			break;
		__u16 type = (__u16)data[at] << 8 | data[at + 1];
		count_etype(level, type, src);
		if ((type != 0x8100 && type != 0x88a8) || level == 4)
			break;
		at += 4;
	}
	return FORWARD();
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

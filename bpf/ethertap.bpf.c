// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// ethertap's XDP program: hand every frame of a queue to the AF_XDP socket bound to that
// queue. One instance of this object is loaded per interface, so `xsks` is that interface's
// own map and two interfaces can both use queue 0 (facts.md).

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
	CNT_MAX = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += 1;
}

// xdp.frags: the program reads nothing past the first buffer, so it may see frames in several
// buffers (multi-buffer XDP). veth refuses a native program that is not frags-aware once the
// MTU is too large for one page, and only a frags-aware program hands long frames to a socket.
SEC("xdp.frags")
int ethertap_xdp(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	long action;

	count(CNT_SEEN);
	// XDP_PASS as the fallback keeps queues the engine does not serve usable by the host.
	action = bpf_redirect_map(&xsks, queue, XDP_PASS);
	count(action == XDP_REDIRECT ? CNT_REDIRECTED : CNT_PASSED);
	return action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

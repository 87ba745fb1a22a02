// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// The benchmark's in-kernel ceiling (bench/engine-lab.sh): an XDP program that sends every
// frame straight out of one other interface, chosen when the object is compiled
// (-DOUT_IFINDEX=N), so iproute2 can load it with no map to fill. bpf_redirect to an ifindex
// goes through the kernel's device bulk queue, the same path as a device-map redirect.
// Self-contained (no libbpf headers): the benchmark compiles it with plain clang.

#include <linux/bpf.h>

#ifndef OUT_IFINDEX
#error "compile with -DOUT_IFINDEX=<ifindex of the output interface>"
#endif

#define SEC(name) __attribute__((section(name), used))

static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;

SEC("xdp")
int bench_redirect(struct xdp_md *ctx)
{
	return bpf_redirect(OUT_IFINDEX, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

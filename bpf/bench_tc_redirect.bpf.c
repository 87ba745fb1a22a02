// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// A TC (clsact ingress) redirect of every frame to one other interface, chosen when the object is
// compiled (-DOUT_IFINDEX=N): bench/engine-lab.sh system tc-redirect. Unlike a native-mode XDP
// redirect it hands the frame's own skb to the output device's transmit, so a veth output works
// whether or not its peer has NAPI: the cost of a kernel path that works on every veth.
// Self-contained (no libbpf headers): the benchmark compiles it with plain clang.

#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#ifndef OUT_IFINDEX
#error "compile with -DOUT_IFINDEX=<ifindex of the output interface>"
#endif

#define SEC(name) __attribute__((section(name), used))

static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;

SEC("tc")
int bench_tc_redirect(struct __sk_buff *skb)
{
	return bpf_redirect(OUT_IFINDEX, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

//! RPCL VM speed: the 10-million-iteration counted loop of BENCHMARKS.md (an addition and a
//! comparison per iteration), a variant without literal operands, VM start-up (core words and
//! the standard library) and compilation. The side-by-side comparison with gforth is
//! bench/vm-vs-gforth.sh.

use criterion::{criterion_group, criterion_main, Criterion};
use ethertap::rpcl::Vm;
use std::time::Duration;

fn run(vm: &mut Vm, line: &str) {
    let mut out = Vec::new();
    vm.eval_line(line, &mut out).expect("benchmark line runs");
    assert!(!out.is_empty());
}

fn loops(c: &mut Criterion) {
    let mut g = c.benchmark_group("rpcl_loop_10m");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    let mut vm = Vm::new();
    g.bench_function("1 + dup 5 <", |b| {
        b.iter(|| run(&mut vm, "0 10000000 0 do 1 + dup 5 < drop loop ."))
    });
    g.bench_function("i + dup dup <", |b| {
        b.iter(|| run(&mut vm, "0 10000000 0 do i + dup dup < drop loop ."))
    });
    g.finish();
}

fn startup(c: &mut Criterion) {
    let mut g = c.benchmark_group("rpcl_startup");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("Vm::new", |b| b.iter(Vm::new));
    g.bench_function("Vm::new + 1 2 + .", |b| {
        b.iter(|| {
            let mut vm = Vm::new();
            run(&mut vm, "1 2 + .");
        })
    });
    let script = std::fs::read_to_string("tests/rpcl/control.lines.rpcl").expect("script");
    g.bench_function("check control.lines.rpcl", |b| {
        b.iter(|| ethertap::rpcl::check("control.lines.rpcl", &script).ok())
    });
    g.finish();
}

criterion_group!(benches, loops, startup);
criterion_main!(benches);

//! Compiles `bpf/*.bpf.c` to BPF objects in OUT_DIR; the engine embeds them.

use libbpf_cargo::SkeletonBuilder;
use std::path::PathBuf;

pub fn compile_xdp_programs() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=bpf");
    let source = PathBuf::from("bpf/ethertap.bpf.c");
    println!("cargo:rerun-if-changed={}", source.display());
    let obj = out_dir.join("ethertap.bpf.o");
    let arch_include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    if let Err(e) = SkeletonBuilder::new()
        .source(&source)
        .obj(&obj)
        .clang_args(["-O2", "-g", "-Wall", arch_include.as_str()])
        .build()
    {
        panic!("compiling {}: {e:#}", source.display());
    }
    // Tests attach the object the way an old or crashed run would have.
    println!("cargo:rustc-env=ETHERTAP_BPF_OBJ={}", obj.display());
}

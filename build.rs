//! Build steps, one line each; the work lives in `build/`.

#[path = "build/bpf.rs"]
mod bpf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    bpf::compile_xdp_programs();
}

//! Build steps, one line each; the work lives in `build/`.

#[path = "build/bpf.rs"]
mod bpf;
#[path = "build/oui.rs"]
mod oui;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    bpf::compile_xdp_programs();
    oui::generate(std::path::Path::new(
        &std::env::var("OUT_DIR").expect("OUT_DIR"),
    ));
}

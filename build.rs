#[path = "build/oui.rs"]
mod oui;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    oui::generate(std::path::Path::new(
        &std::env::var("OUT_DIR").expect("OUT_DIR"),
    ));
}

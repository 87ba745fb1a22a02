//! `control` (under construction).
fn main() {
    eprintln!("control: not built yet");
    std::process::exit(1);
}

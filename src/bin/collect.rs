//! `collect` (under construction).
fn main() {
    eprintln!("collect: not built yet");
    std::process::exit(1);
}

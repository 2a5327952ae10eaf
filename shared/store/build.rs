// The migrations are embedded at compile time; a new or edited file must
// rebuild this crate, which cargo does not notice on its own.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}

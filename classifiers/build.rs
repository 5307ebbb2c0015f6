//! With the `train` feature, records libtorch's library folder as a run-time search path, so the
//! trainer and the parity test run without LD_LIBRARY_PATH (torch-sys links but sets no rpath).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TRAIN").is_some() {
        if let Some(lt) = std::env::var_os("LIBTORCH") {
            let lib = std::path::Path::new(&lt).join("lib");
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
}

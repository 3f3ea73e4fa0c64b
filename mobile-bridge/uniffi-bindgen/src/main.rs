//! `uniffi-bindgen`, pinned to the UniFFI version the mobile bridge is built with.

fn main() {
    uniffi::uniffi_bindgen_main()
}

//! The standard library: words written in RPCL (`rpcl/*.rpcl`), compiled into the binary and
//! run when a VM starts. Its `#: NAME HELP` lines give its words their help.

use super::dict::Entry;
use super::vm::State;

const LIBRARY: &[(&str, &str)] = &[("rpcl/stack.rpcl", include_str!("../../rpcl/stack.rpcl"))];

/// Run the standard library into a fresh VM; its words become immutable.
pub(crate) fn load(st: &mut State) {
    st.loading_library = true;
    for (file, text) in LIBRARY {
        let r = st.run_source(Some(file), text, &mut std::io::sink());
        debug_assert!(r.is_ok(), "standard library: {r:?}");
        for line in text.lines() {
            let Some(doc) = line.strip_prefix("#:") else {
                continue;
            };
            let doc = doc.trim_start();
            let (name, help) = doc.split_once(' ').unwrap_or((doc, ""));
            if let Some(sym) = st.dict.lookup(name) {
                if let Entry::Word { help: h, .. } = &mut st.dict.entries[sym as usize] {
                    *h = Some(help.trim().to_string());
                }
            }
        }
    }
    st.stack.clear();
    debug_assert!(
        st.warnings.is_empty(),
        "library warnings: {:?}",
        st.warnings
    );
    st.warnings.clear();
    st.loading_library = false;
}

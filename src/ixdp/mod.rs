//! ixdp (under construction)

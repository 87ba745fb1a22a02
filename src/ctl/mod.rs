//! ctl (under construction)

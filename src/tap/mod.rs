//! tap (under construction)

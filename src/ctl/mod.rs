//! Control plane: pid files and background processes (the console server comes with the
//! daemon).

pub mod pidfile;

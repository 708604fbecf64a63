//! controllers (in progress)

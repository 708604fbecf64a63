//! apiserver (in progress)

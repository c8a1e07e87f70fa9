//! Paths of the built guest components (work in progress).

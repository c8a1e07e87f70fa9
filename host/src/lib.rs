//! The edgenlu host (work in progress).

//! edgenlu-models (work in progress).

//! Skill data for edgenlu: datastores of embedded examples (the nearest-neighbour index, its
//! softmax heads and slot tagger), how they are trained from labelled examples, and the
//! scores an evaluation reports. Built on the runtime's [`edgenlu::Skill`] embeddings.

pub mod datastore;
pub mod eval;
pub mod slots;
pub mod training;

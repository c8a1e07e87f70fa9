//! The edgenlu device pipeline: a router over the skills a device has (bundled or installed),
//! the vendor's policy, phrasing, the owner's uplink, and installed skills that swap to a new
//! version between requests. Usable without the CLI: the `edgenlu` binary and the HTTP
//! daemon assemble it from these parts.

pub mod builder;
mod decoder_use;
mod flow;
pub mod installed;
pub mod pipeline;
pub mod reply_check;
pub mod router;
pub mod uplink;

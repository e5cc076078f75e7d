//! The sealing of values written to Redis lives with the other session cryptography.

pub use crate::session::sealing::Sealer;

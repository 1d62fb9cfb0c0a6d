//! Turning raw log records into rows: validation and transform ([`transform`]), the commit,
//! counting and telling both processors share ([`core`]), the embedded run loop that reads the
//! log ([`processor`]); re-processing dead letters after a fix ([`redrive`]).

pub mod core;
pub mod processor;
pub mod redrive;
pub mod transform;

pub use core::ProcessingCore;
pub use processor::{Processor, ProcessorConfig};
pub use transform::{Invalid, transform};

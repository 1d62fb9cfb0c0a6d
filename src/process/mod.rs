//! Turning raw log records into rows: validation and transform ([`transform`]) and the run loop
//! that reads the log and commits to a sink ([`processor`]); re-processing dead letters after a
//! fix ([`redrive`]).

pub mod processor;
pub mod redrive;
pub mod transform;

pub use processor::{Processor, ProcessorConfig, ProcessorStats};
pub use transform::{Invalid, transform};

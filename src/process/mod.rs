//! Turning raw log records into rows: validation and transform ([`transform`]) and the run loop
//! that reads the log and commits to a sink ([`processor`]).

pub mod processor;
pub mod transform;

pub use processor::{Processor, ProcessorConfig, ProcessorStats};
pub use transform::{Invalid, transform};

//! `userstream serve-api`: see [`crate::source::serve_api`].

use super::{runtime, shutdown_on_signal};
use crate::cli::ServeApiArgs;
use crate::source::serve_api;

pub fn execute(args: ServeApiArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let listener = crate::http::bind(args.addr, "serve-api").await?;
        let addr = listener.local_addr()?;
        tracing::info!("serving a randomuser.me-compatible API at http://{addr}/api/");
        crate::http::serve(listener, serve_api::router(), shutdown_on_signal()).await
    })
}

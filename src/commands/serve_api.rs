//! `userstream serve-api`: see [`crate::source::serve_api`].

use super::{runtime, shutdown_on_signal};
use crate::cli::ServeApiArgs;
use crate::source::serve_api;

pub fn execute(args: ServeApiArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let listener = serve_api::bind(args.addr).await?;
        let addr = listener.local_addr()?;
        tracing::info!("serving a randomuser.me-compatible API at http://{addr}/api/");
        let cancel = shutdown_on_signal();
        serve_api::serve(listener, async move { cancel.cancelled().await }).await?;
        Ok(())
    })
}

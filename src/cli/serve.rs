//! `berth serve`: run the registry until SIGINT or SIGTERM.

use std::net::SocketAddr;

use super::ConfigArgs;
use super::log::{Batched, Flush};
use crate::config::LogFormat;
use crate::error::{Error, Result};
use crate::server::{Server, shutdown_signal};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    config: ConfigArgs,
}

pub async fn run(args: Args) -> Result<()> {
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    // Held until the server stops: dropping it flushes the log.
    let _log = init_tracing(&config.log, config.log_format)?;
    if !config.ignored_env.is_empty() {
        tracing::warn!(
            variables = %config.ignored_env.join(" "),
            "BERTH_* environment variables that name no configuration key are ignored"
        );
    }
    let server = Server::bind(&config).await?;
    tracing::info!(
        addr = %server.local_addr()?,
        data_dir = %config.data_dir.display(),
        "berth serving"
    );
    server.run(shutdown_signal()).await
}

/// Logs to standard error: as text, or as one JSON object a line whose
/// `span` holds the request id, written out in batches ([`Batched`]).
fn init_tracing(filter: &str, format: LogFormat) -> Result<Flush> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| Error::Config(format!("log filter {filter:?}: {e}")))?;
    let (writer, guard) = Batched::start();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let set = match format {
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
    set.map_err(|e| Error::Internal(e.to_string()))?;
    Ok(guard)
}

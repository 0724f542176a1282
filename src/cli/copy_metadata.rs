//! `berth copy-metadata --to postgres://...`: moves a registry that started
//! on one box to PostgreSQL, keeping its tags, history, lineage and events.
//! Run with the registry stopped, then point the config at PostgreSQL and
//! run `berth fsck` against it.

use super::ConfigArgs;
use crate::error::Result;
use crate::meta::DATABASE_FILE;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The PostgreSQL database to fill (empty; migrated first). Defaults to
    /// the configured metadata.url.
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

pub async fn run(args: Args) -> Result<()> {
    let config = args.config.load()?;
    let to = match args.to {
        Some(url) => url,
        None => config
            .metadata
            .url
            .as_ref()
            .map(|u| u.expose().to_owned())
            .ok_or_else(|| {
                crate::Error::Config("copy-metadata needs --to or metadata.url".into())
            })?,
    };
    let from = config.data_dir.join(DATABASE_FILE);
    let report = crate::meta::copy::sqlite_to_postgres(&from, &to).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    eprintln!(
        "copied {} into {}; now run `berth fsck` with metadata.backend = \"postgres\"",
        from.display(),
        crate::meta::postgres::redact(&to)
    );
    Ok(())
}

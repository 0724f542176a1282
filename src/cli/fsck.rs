//! `berth fsck [--repair]`: check a data directory: re-hash every blob and
//! manifest, check references and the database, find orphans. Exits non-zero
//! when anything is wrong (and, with `--repair`, was not repaired).

use std::io::{IsTerminal, Write};

use super::ConfigArgs;
use crate::error::{Error, Result};
use crate::server::open_registry;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove orphans and mark corrupt content so that it is not served.
    #[arg(long)]
    repair: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

pub async fn run(args: Args) -> Result<()> {
    let config = args.config.load()?;
    if !config.data_dir.is_dir() {
        return Err(Error::Config(format!(
            "no data directory at {}",
            config.data_dir.display()
        )));
    }
    let registry = open_registry(&config).await?;
    let tty = std::io::stderr().is_terminal();
    let progress = move |done: u64, total: u64| {
        if tty && (done.is_multiple_of(64) || done == total) {
            const WIDTH: u64 = 40;
            let filled = (done * WIDTH)
                .checked_div(total)
                .unwrap_or(WIDTH)
                .min(WIDTH);
            let (filled, empty) = (filled as usize, (WIDTH - filled) as usize);
            eprint!(
                "\rfsck [{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(empty)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let report = registry.fsck(args.repair, &progress).await?;
    if tty {
        eprintln!();
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    let fixed = args.repair
        && report.missing.is_empty()
        && report.dangling.is_empty()
        && report.database.is_empty();
    if report.is_clean() || fixed {
        Ok(())
    } else {
        Err(Error::Internal(
            "fsck found problems (see the report above)".into(),
        ))
    }
}

use clap::Parser;

/// Threads for blocking work (metadata queries, file I/O); bounded so that a
/// burst of requests queues instead of growing memory with threads.
const MAX_BLOCKING_THREADS: usize = 64;

fn main() -> std::process::ExitCode {
    berth::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(berth::cli::Cli::parse().run()),
        Err(e) => Err(berth::Error::Io(e)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

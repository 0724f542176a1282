use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match berth::cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

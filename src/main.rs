//! The `pushlog` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use pushlog::config::{Cli, Command, Config, TokenArgs};
use pushlog::startup::{self, Application};

fn main() -> ExitCode {
    let cli = Cli::parse();
    pushlog::telemetry::init(cli.config.log_format);
    let result = match cli.command {
        Some(Command::Token(args)) => mint(&cli.config, &args),
        None | Some(Command::Serve) => serve(cli.config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("pushlog: {message}");
            ExitCode::FAILURE
        }
    }
}

fn mint(config: &Config, args: &TokenArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (auth, generated) = startup::authenticator(config)?;
    if generated {
        return Err(
            "set PUSHLOG_JWT_SECRET (or --jwt-secret): a token signed with a \
                    throwaway secret would be useless"
                .into(),
        );
    }
    let token = auth.mint(
        &args.sub,
        &args.roles,
        args.topics.as_deref(),
        args.ttl.as_secs(),
    )?;
    println!("{token}");
    Ok(())
}

fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (auth, development) = startup::authenticator(&config)?;
        if development {
            announce_development_mode(&auth, &config.addr)?;
        }
        let app = Application::build(&config, auth).await?;
        let handle = app.handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            handle.shutdown.trigger();
        });
        app.run_until_stopped().await?;
        Ok(())
    })
}

fn announce_development_mode(
    auth: &pushlog::auth::Authenticator,
    addr: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    const DAY: u64 = 24 * 3600;
    let publisher = auth.mint("dev-publisher", &["publisher".into()], None, DAY)?;
    let reader = auth.mint("dev-reader", &[], None, DAY)?;
    tracing::warn!(
        "DEVELOPMENT MODE: no PUSHLOG_JWT_SECRET or PUSHLOG_JWT_PUBLIC_KEY is set, so this run \
         signs tokens with a random secret that dies with the process. Never run like this in \
         production."
    );
    println!("pushlog development tokens (valid 24h, for this run only):");
    println!("  publisher: {publisher}");
    println!("  reader:    {reader}");
    let port = addr.rsplit(':').next().unwrap_or("8080");
    println!("  dashboard: http://localhost:{port}/?token={reader}");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! The `pushlog` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use pushlog::auth::{Authenticator, KeyError};
use pushlog::config::{Cli, Command, Config, TokenArgs};
use pushlog::startup::{self, Application, StartupError};

fn main() -> ExitCode {
    let (cli, origins) = Cli::parse_named();
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
                // sqlx's errors repeat their source in their own words.
                let cause_text = cause.to_string();
                if !message.ends_with(&cause_text) {
                    message.push_str(&format!(": {cause_text}"));
                }
                source = cause.source();
            }
            if let Some(setting) = setting_behind(&*error) {
                message.push_str(&format!(" (check {})", origins.name(setting)));
            }
            eprintln!("pushlog: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The setting (its field name) whose value made startup fail, so the
/// message names what to fix.
fn setting_behind(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    match error.downcast_ref::<StartupError>()? {
        StartupError::Bind { .. } => Some("addr"),
        StartupError::Store(_) => Some("database_url"),
        StartupError::Key(KeyError::ShortSecret(_)) => Some("jwt_secret"),
        StartupError::Key(KeyError::BadPublicKey(_) | KeyError::UnknownKeyType)
        | StartupError::KeyFile { .. } => Some("jwt_public_key"),
        _ => None,
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
        let tokens = development
            .then(|| DevelopmentTokens::mint(&auth))
            .transpose()?;
        // Everything a bad setting can fail (the address, the database) is
        // tried before the development tokens are printed: an error must
        // not scroll by above a banner that reads like success.
        let app = Application::build(&config, auth).await?;
        if let Some(tokens) = tokens {
            tokens.announce(app.port());
        }
        let handle = app.handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            handle.shutdown.trigger();
        });
        app.run_until_stopped().await?;
        Ok(())
    })
}

/// Tokens for a development run, signed with its throwaway secret.
struct DevelopmentTokens {
    publisher: String,
    reader: String,
}

impl DevelopmentTokens {
    fn mint(auth: &Authenticator) -> Result<DevelopmentTokens, KeyError> {
        const DAY: u64 = 24 * 3600;
        Ok(DevelopmentTokens {
            publisher: auth.mint("dev-publisher", &["publisher".into()], None, DAY)?,
            reader: auth.mint("dev-reader", &[], None, DAY)?,
        })
    }

    /// The loud warning, the tokens, and a dashboard link that carries both:
    /// the reader token to watch, and in the fragment the publisher token for
    /// the page's publish form. A fragment never leaves the browser (no
    /// request, log or `Referer` carries it) and the page drops it from the
    /// address bar at once; the link goes only to this terminal, next to the
    /// same token printed in full. The server hands the page no token itself,
    /// so nothing of this exists outside development mode.
    fn announce(&self, port: u16) {
        tracing::warn!(
            "DEVELOPMENT MODE: no PUSHLOG_JWT_SECRET or PUSHLOG_JWT_PUBLIC_KEY is set, so this \
             run signs tokens with a random secret that dies with the process. Never run like \
             this in production."
        );
        let DevelopmentTokens { publisher, reader } = self;
        println!("pushlog development tokens (valid 24h, for this run only):");
        println!("  publisher: {publisher}");
        println!("  reader:    {reader}");
        println!("  dashboard: http://localhost:{port}/?token={reader}#publisher={publisher}");
    }
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

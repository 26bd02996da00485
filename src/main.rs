//! The `rapport` binary: parses the command line and configuration, then hands over to the
//! library. `rapport` alone (or `rapport serve`) runs the service.

use clap::{Parser, Subcommand};
use rapport::auth::Scope;
use rapport::clients::store::PreparedCredentials;
use rapport::config::Settings;
use rapport::db::BoxError;

#[derive(Parser)]
#[command(name = "rapport", version, about = "Working-alliance measurement service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Create the database when missing and apply the embedded migrations, then exit.
    Migrate,
    /// Print the OpenAPI document (regenerate openapi/openapi.json with `rapport openapi > openapi/openapi.json`).
    Openapi,
    /// Organisations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// API clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organisation and its administrator client; prints both as JSON.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Create an API client in an organisation; prints its credentials as JSON.
    Create {
        /// The organisation's slug.
        #[arg(long)]
        org: String,
        /// Comma- or space-separated scopes.
        #[arg(long)]
        scopes: String,
        #[arg(long, default_value = "cli client")]
        name: String,
    },
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("rapport: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BoxError> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", rapport::openapi::document_json());
        return Ok(());
    }
    let settings = Settings::from_env()?;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            rapport::db::ensure_database(&settings.database_url).await?;
            rapport::db::run_migrations(&settings.database_url).await?;
            let engine = rapport::db::citus::prepare(&settings.database_url, settings.citus).await?;
            println!("migrations applied ({})", engine.as_str());
            Ok(())
        }
        Command::Openapi => Ok(()),
        Command::Org {
            command: OrgCommand::Create { slug, name },
        } => {
            let body = rapport::organizations::model::NewOrganization { slug, name };
            rapport::organizations::validate_new_organization(&body).map_err(|e| format!("{:?}", e.problem()))?;
            let pool = rapport::startup::cli_pool(&settings).await?;
            let mut conn = pool.get().await?;
            let credentials = PreparedCredentials::prepare(None)?;
            let created = rapport::organizations::service::create(
                &mut conn,
                rapport::audit::Actor::Cli,
                (&body.slug, &body.name),
                &Scope::all_but_platform(),
                credentials,
                rapport::audit::AuditAction::OrganizationCreated,
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            Ok(())
        }
        Command::Client {
            command: ClientCommand::Create { org, scopes, name },
        } => {
            let scopes = Scope::parse_list(&scopes.replace(',', " ")).map_err(|s| format!("unknown scope `{s}`"))?;
            let pool = rapport::startup::cli_pool(&settings).await?;
            let mut conn = pool.get().await?;
            let org = rapport::organizations::store::find_by_slug(&mut conn, &org)
                .await?
                .ok_or_else(|| format!("no organisation `{org}`"))?;
            let credentials = PreparedCredentials::prepare(None)?;
            let created = rapport::clients::service::create(
                &mut conn,
                rapport::audit::Actor::Cli,
                org.id,
                &name,
                &scopes,
                credentials,
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> Result<(), BoxError> {
    let app = rapport::Application::build(settings.clone()).await?;
    if let (Some(created), true) = (&app.bootstrap, app.bootstrap_generated) {
        println!("rapport: first start; created organisation `default` and its administrator client.");
        println!("rapport: these credentials are shown once; keep them safe:");
        println!("RAPPORT_CLIENT_ID={}", created.admin_client.client_id);
        println!("RAPPORT_CLIENT_SECRET={}", created.admin_client.client_secret);
    }
    let host = settings.bind.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
    println!("rapport: listening on http://{host}:{}", app.port());
    log::info!("listening on {host}:{}", app.port());
    app.run_until_stopped().await?;
    log::info!("stopped");
    Ok(())
}

//! `warrenctl`: rabbitmqctl's commands for Warren, over its management API. Exit codes as
//! rabbitmqctl's: 0 ok, 64 usage, 65 data error, 69 unavailable, 70 internal, 75 timeout,
//! 77 access refused.

mod cli;
mod client;
mod commands;
mod error;
mod output;
mod settings;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command};
use client::Api;
use commands::{admin, diagnostics, list, node};
use error::{CtlError, CtlResult};
use output::Style;
use settings::Settings;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 64,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: &Cli) -> CtlResult<()> {
    if let Command::Completion { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "warrenctl",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    let settings = Settings::resolve(&cli.global)?;
    let api = Api::new(&settings)?;
    let style = Style::of(&cli.global);
    let vhost = settings.vhost.as_str();
    dispatch(&cli.command, &api, &style, vhost, &settings)
}

fn dispatch(
    command: &Command,
    api: &Api,
    style: &Style,
    vhost: &str,
    settings: &Settings,
) -> CtlResult<()> {
    use Command::*;
    match command {
        ListQueues(i) => list::run(api, style, &list::QUEUES, vhost, &i.items),
        ListExchanges(i) => list::run(api, style, &list::EXCHANGES, vhost, &i.items),
        ListBindings(i) => list::run(api, style, &list::BINDINGS, vhost, &i.items),
        ListConnections(i) => list::run(api, style, &list::CONNECTIONS, vhost, &i.items),
        ListChannels(i) => list::run(api, style, &list::CHANNELS, vhost, &i.items),
        ListConsumers(i) => list::run(api, style, &list::CONSUMERS, vhost, &i.items),
        ListUsers(i) => list::run(api, style, &list::USERS, vhost, &i.items),
        ListVhosts(i) => list::run(api, style, &list::VHOSTS, vhost, &i.items),
        ListFeatureFlags(i) => list::run(api, style, &list::FEATURE_FLAGS, vhost, &i.items),
        ListPermissions => list::fixed(
            api,
            style,
            &format!("Listing permissions for vhost \"{vhost}\" ..."),
            &format!("/api/vhosts/{}/permissions", client::segment(vhost)),
            &["user", "configure", "write", "read"],
            |_| true,
        ),
        ListUserPermissions { user } => list::fixed(
            api,
            style,
            &format!("Listing permissions for user \"{user}\" ..."),
            &format!("/api/users/{}/permissions", client::segment(user)),
            &["vhost", "configure", "write", "read"],
            |_| true,
        ),
        ListTopicPermissions => list::fixed(
            api,
            style,
            &format!("Listing topic permissions for vhost \"{vhost}\" ..."),
            &format!("/api/vhosts/{}/topic-permissions", client::segment(vhost)),
            &["user", "exchange", "write", "read"],
            |_| true,
        ),
        ListPolicies | ListOperatorPolicies => {
            let (what, base) = match command {
                ListPolicies => ("policies", "policies"),
                _ => ("operator policies", "operator-policies"),
            };
            list::fixed(
                api,
                style,
                &format!("Listing {what} for vhost \"{vhost}\" ..."),
                &format!("/api/{base}/{}", client::segment(vhost)),
                &[
                    "vhost",
                    "name",
                    "pattern",
                    "apply-to",
                    "definition",
                    "priority",
                ],
                |_| true,
            )
        }
        ListParameters => list::fixed(
            api,
            style,
            &format!("Listing runtime parameters for vhost \"{vhost}\" ..."),
            "/api/parameters",
            &["component", "name", "value"],
            |p| p["vhost"] == vhost,
        ),
        ListGlobalParameters => list::fixed(
            api,
            style,
            "Listing global runtime parameters ...",
            "/api/global-parameters",
            &["name", "value"],
            |_| true,
        ),
        ListVhostLimits { global: true } => list::fixed(
            api,
            style,
            "Listing limits for all vhosts ...",
            "/api/vhost-limits",
            &["vhost", "value"],
            |_| true,
        ),
        ListVhostLimits { global: false } => list::limits(
            api,
            style,
            &format!("Listing limits for vhost \"{vhost}\" ..."),
            &format!("/api/vhost-limits/{}", client::segment(vhost)),
        ),
        ListUserLimits {
            user: Some(user),
            global: false,
        } => list::limits(
            api,
            style,
            &format!("Listing limits for user \"{user}\" ..."),
            &format!("/api/user-limits/{}", client::segment(user)),
        ),
        ListUserLimits { .. } => list::fixed(
            api,
            style,
            "Listing limits for all users ...",
            "/api/user-limits",
            &["user", "value"],
            |_| true,
        ),
        AddUser { user, password } => admin::add_user(api, style, user, password),
        DeleteUser { user } => admin::delete_user(api, style, user),
        ChangePassword { user, password } => admin::change_password(api, style, user, password),
        AuthenticateUser { user, password } => admin::authenticate_user(api, style, user, password),
        SetUserTags { user, tags } => admin::set_user_tags(api, style, user, tags),
        AddVhost {
            vhost,
            description,
            tags,
            default_queue_type,
        } => admin::add_vhost(
            api,
            style,
            vhost,
            description.as_deref(),
            tags.as_deref(),
            default_queue_type.as_deref(),
        ),
        DeleteVhost { vhost } => admin::delete_vhost(api, style, vhost),
        SetPermissions {
            user,
            configure,
            write,
            read,
        } => admin::set_permissions(api, style, vhost, user, [configure, write, read]),
        ClearPermissions { user } => admin::clear_permissions(api, style, vhost, user),
        SetTopicPermissions {
            user,
            exchange,
            write,
            read,
        } => admin::set_topic_permissions(api, style, vhost, user, exchange, write, read),
        ClearTopicPermissions { user, exchange } => {
            admin::clear_topic_permissions(api, style, vhost, user, exchange.as_deref())
        }
        SetVhostLimits { definition } => admin::set_vhost_limits(api, style, vhost, definition),
        ClearVhostLimits => admin::clear_vhost_limits(api, style, vhost),
        SetUserLimits { user, definition } => admin::set_user_limits(api, style, user, definition),
        ClearUserLimits { user, limit } => admin::clear_user_limits(api, style, user, limit),
        SetPolicy(args) => admin::set_policy(api, style, vhost, false, args),
        ClearPolicy { name } => admin::clear_policy(api, style, vhost, false, name),
        SetOperatorPolicy(args) => admin::set_policy(api, style, vhost, true, args),
        ClearOperatorPolicy { name } => admin::clear_policy(api, style, vhost, true, name),
        PurgeQueue { queue } => node::purge_queue(api, style, vhost, queue),
        DeleteQueue {
            queue,
            if_empty,
            if_unused,
        } => node::delete_queue(api, style, vhost, queue, *if_empty, *if_unused),
        CloseConnection { name, explanation } => {
            node::close_connection(api, style, name, explanation)
        }
        CloseAllConnections {
            explanation,
            global,
        } => node::close_all_connections(api, style, vhost, *global, explanation),
        ExportDefinitions { path } => node::export_definitions(api, style, path),
        ImportDefinitions { path } => node::import_definitions(api, style, path),
        Status => node::status(api, style),
        ClusterStatus => node::cluster_status(api, style),
        Version => node::version(api),
        Environment => node::environment(api, style),
        AwaitStartup => node::await_startup(api, style, settings.timeout),
        SetClusterName { name } => node::set_cluster_name(api, style, name),
        TraceOn => node::trace(api, style, vhost, true),
        TraceOff => node::trace(api, style, vhost, false),
        Diagnostics(d) | Direct(d) => diagnostics::run(api, style, d, settings.timeout),
        Completion { .. } => Err(CtlError::Internal("handled before connecting".into())),
    }
}

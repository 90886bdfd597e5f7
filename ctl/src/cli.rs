//! The command line: rabbitmqctl's commands, arguments and flags, and rabbitmq-diagnostics'
//! under `diagnostics` (or by their own names).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "warrenctl",
    version,
    about = "Manage a Warren broker the way rabbitmqctl manages RabbitMQ, over its management API",
    after_help = "Examples:\n  warrenctl list_queues name messages consumers\n  \
                  warrenctl -p orders add_user app s3cret\n  warrenctl diagnostics ping"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The broker's host.
    #[arg(short = 'n', long, env = "WARRENCTL_HOST", global = true)]
    pub host: Option<String>,
    /// The management API's port.
    #[arg(long, env = "WARRENCTL_PORT", global = true)]
    pub port: Option<u16>,
    #[arg(short = 'u', long, env = "WARRENCTL_USERNAME", global = true)]
    pub username: Option<String>,
    #[arg(
        long,
        env = "WARRENCTL_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// The vhost commands act in.
    #[arg(short = 'p', long, env = "WARRENCTL_VHOST", global = true)]
    pub vhost: Option<String>,
    /// Use HTTPS (the management API's https_port, 15671).
    #[arg(long, env = "WARRENCTL_TLS", global = true)]
    pub tls: bool,
    /// With --tls: trust the authorities in this PEM file instead of the public roots.
    #[arg(long, env = "WARRENCTL_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Settings file (default ~/.config/warrenctl.toml).
    #[arg(long, env = "WARRENCTL_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// No banner.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// No banner and no table headers.
    #[arg(short = 's', long, global = true)]
    pub silent: bool,
    #[arg(long, global = true)]
    pub no_table_headers: bool,
    #[arg(long, value_enum, default_value_t = Formatter::Table, global = true)]
    pub formatter: Formatter,
    /// Seconds to wait for the broker.
    #[arg(short = 't', long, global = true)]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Formatter {
    Table,
    Json,
    Csv,
    PrettyTable,
}

/// Info items of a list command (its default columns when none are given).
#[derive(Debug, Args)]
pub struct Items {
    pub items: Vec<String>,
}

#[derive(Debug, Subcommand)]
#[command(rename_all = "snake_case")]
pub enum Command {
    /// List queues: name messages (or the info items given). Example: list_queues name consumers
    ListQueues(Items),
    /// List exchanges: name type.
    ListExchanges(Items),
    /// List bindings.
    ListBindings(Items),
    /// List connections: user peer_host peer_port state.
    ListConnections(Items),
    /// List channels.
    ListChannels(Items),
    /// List consumers.
    ListConsumers(Items),
    /// List users and their tags.
    ListUsers(Items),
    /// List vhosts.
    ListVhosts(Items),
    /// List the permissions in a vhost.
    ListPermissions,
    /// List a user's permissions in every vhost. Example: list_user_permissions guest
    ListUserPermissions {
        user: String,
    },
    /// List the topic permissions in a vhost.
    ListTopicPermissions,
    /// List a vhost's policies.
    ListPolicies,
    /// List a vhost's operator policies.
    ListOperatorPolicies,
    /// List a vhost's runtime parameters.
    ListParameters,
    /// List the global parameters.
    ListGlobalParameters,
    /// List a vhost's limits (--global: every vhost's).
    ListVhostLimits {
        #[arg(long)]
        global: bool,
    },
    /// List a user's limits (--global: every user's). Example: list_user_limits --user app
    ListUserLimits {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        global: bool,
    },
    /// List the feature flags.
    ListFeatureFlags(Items),
    /// Add a user (no tags, no permissions). Example: add_user app s3cret
    AddUser {
        user: String,
        #[arg(id = "user_password", value_name = "PASSWORD")]
        password: String,
    },
    DeleteUser {
        user: String,
    },
    ChangePassword {
        user: String,
        #[arg(id = "user_password", value_name = "PASSWORD")]
        password: String,
    },
    /// Check a user's password.
    AuthenticateUser {
        user: String,
        #[arg(id = "user_password", value_name = "PASSWORD")]
        password: String,
    },
    /// Replace a user's tags. Example: set_user_tags ops monitoring policymaker
    SetUserTags {
        user: String,
        tags: Vec<String>,
    },
    /// Add a vhost. Example: add_vhost orders --description "order processing"
    AddVhost {
        #[arg(id = "vhost_name", value_name = "VHOST")]
        vhost: String,
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated.
        #[arg(long)]
        tags: Option<String>,
        #[arg(long)]
        default_queue_type: Option<String>,
    },
    DeleteVhost {
        #[arg(id = "vhost_name", value_name = "VHOST")]
        vhost: String,
    },
    /// Set a user's configure, write and read patterns. Example: set_permissions -p / app ".*" ".*" ".*"
    SetPermissions {
        user: String,
        #[arg(allow_hyphen_values = true)]
        configure: String,
        #[arg(allow_hyphen_values = true)]
        write: String,
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    ClearPermissions {
        user: String,
    },
    /// Example: set_topic_permissions app amq.topic "^orders" ".*"
    SetTopicPermissions {
        user: String,
        exchange: String,
        #[arg(allow_hyphen_values = true)]
        write: String,
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    ClearTopicPermissions {
        user: String,
        exchange: Option<String>,
    },
    /// Example: set_vhost_limits -p orders '{"max-queues": 100}'
    SetVhostLimits {
        definition: String,
    },
    ClearVhostLimits,
    /// Example: set_user_limits app '{"max-connections": 10}'
    SetUserLimits {
        user: String,
        definition: String,
    },
    /// Example: clear_user_limits app max-connections
    ClearUserLimits {
        user: String,
        limit: String,
    },
    /// Example: set_policy -p / ttl "^ttl\." '{"message-ttl":60000}' --apply-to queues
    SetPolicy(PolicyArgs),
    ClearPolicy {
        name: String,
    },
    SetOperatorPolicy(PolicyArgs),
    ClearOperatorPolicy {
        name: String,
    },
    PurgeQueue {
        queue: String,
    },
    DeleteQueue {
        queue: String,
        #[arg(long)]
        if_empty: bool,
        #[arg(long)]
        if_unused: bool,
    },
    /// Example: close_connection "127.0.0.1:5000 -> 127.0.0.1:5672" "maintenance"
    CloseConnection {
        name: String,
        explanation: String,
    },
    /// Close every connection of a vhost (--global: of every vhost).
    CloseAllConnections {
        explanation: String,
        #[arg(long)]
        global: bool,
    },
    /// Write every definition to a file, or to stdout with "-".
    ExportDefinitions {
        path: String,
    },
    /// Import definitions from a file, or from stdin with "-".
    ImportDefinitions {
        path: String,
    },
    /// The node's status.
    Status,
    /// The cluster's nodes (Warren runs as one node).
    ClusterStatus,
    /// The broker's version.
    Version,
    /// The broker's settings, as the API reports them.
    Environment,
    /// Wait until the broker answers (up to --timeout seconds).
    AwaitStartup,
    SetClusterName {
        name: String,
    },
    /// Start firehose tracing in a vhost (copies to amq.rabbitmq.trace). Example: trace_on -p /
    TraceOn,
    /// Stop firehose tracing in a vhost.
    TraceOff,
    /// rabbitmq-diagnostics' commands.
    #[command(subcommand)]
    Diagnostics(Diagnostic),
    #[command(flatten)]
    Direct(Diagnostic),
    /// Print a shell completion script. Example: warrenctl completion bash
    Completion {
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    pub name: String,
    #[arg(allow_hyphen_values = true)]
    pub pattern: String,
    /// The definition, as JSON.
    pub definition: String,
    #[arg(long, default_value_t = 0)]
    pub priority: i64,
    #[arg(long, default_value = "all")]
    pub apply_to: String,
}

#[derive(Debug, Clone, Subcommand)]
#[command(rename_all = "snake_case")]
pub enum Diagnostic {
    /// Check that the broker answers (what container health checks run).
    Ping,
    CheckRunning,
    CheckLocalAlarms,
    CheckAlarms,
    /// Check that every listener accepts TCP connections.
    CheckPortConnectivity,
    CheckVirtualHosts,
    /// The node's listeners.
    Listeners,
}

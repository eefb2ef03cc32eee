//! One module per subcommand, plus what the operator commands share: the control
//! plane client (`client`), the CLI config file (`config`), `-f` input (`source`) and
//! output formatting (`output`).

pub(crate) mod apply;
pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod control_plane;
pub(crate) mod delete;
pub(crate) mod describe;
pub(crate) mod explain;
pub(crate) mod get;
pub(crate) mod inspect;
pub(crate) mod output;
pub(crate) mod proxy;
pub(crate) mod quickstart;
pub(crate) mod redirect;
pub(crate) mod run;
pub(crate) mod source;
pub(crate) mod token;

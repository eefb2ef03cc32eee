//! One module per subcommand, plus what the operator commands share: the control
//! plane client (`client`), the CLI config file (`config`), `-f` input (`source`) and
//! output formatting (`output`). The live views share too: `edges` the stats query of
//! `stat`, `top` the tap stream of `tap`.

pub(crate) mod apply;
pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod control_plane;
pub(crate) mod delete;
pub(crate) mod describe;
pub(crate) mod edges;
pub(crate) mod explain;
pub(crate) mod get;
pub(crate) mod inspect;
pub(crate) mod output;
pub(crate) mod proxy;
pub(crate) mod quickstart;
pub(crate) mod redirect;
pub(crate) mod run;
pub(crate) mod source;
pub(crate) mod stat;
pub(crate) mod tap;
pub(crate) mod token;
pub(crate) mod top;

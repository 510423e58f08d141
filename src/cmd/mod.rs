//! One module per subcommand.

pub mod check;
pub mod disk;
pub mod docs;
pub mod extract;
pub mod history;
pub mod plan;
pub mod report;
pub mod resize;
pub mod scan;
pub mod scan_list;
pub mod source;
pub mod undo;
pub mod verify;
pub mod wim;
pub mod wim_extract;

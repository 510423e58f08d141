//! One module per subcommand.

pub mod disk;
pub mod verify;
pub mod wim;

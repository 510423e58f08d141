//! The adapter from `winre plan`'s [`Plan`] (winre_core::plan) to the [`Action`]s this crate
//! applies. Only an offline verdict is applied; steps this crate cannot carry out (the BCD
//! offset rewrite of an MBR move, creating or deleting partitions) are refused by name.

use winre_core::plan::{Plan, Step, Verdict};

use crate::apply::Action;
use crate::error::{Error, Result};

/// The actions of an offline plan, in the plan's order.
pub fn actions(plan: &Plan) -> Result<Vec<Action>> {
    match &plan.verdict {
        Verdict::NothingNeeded => return Ok(Vec::new()),
        Verdict::Offline => {}
        Verdict::Manual { why, .. } => {
            return Err(Error::Refused(format!("the plan needs manual work: {why}")))
        }
    }
    plan.steps.iter().map(action).collect()
}

fn action(step: &Step) -> Result<Action> {
    Ok(match step {
        Step::ShrinkNtfs { partition, new_size_bytes, .. } => Action::ShrinkNtfs {
            partition: *partition,
            new_size_bytes: *new_size_bytes,
        },
        Step::MovePartition { partition, from_byte, to_byte, len_bytes } => Action::MovePartition {
            partition: *partition,
            from_byte: *from_byte,
            to_byte: *to_byte,
            len_bytes: *len_bytes,
        },
        Step::SetPartitionExtent { partition, start_lba, end_lba } => Action::SetPartitionExtent {
            partition: *partition,
            start_lba: *start_lba,
            end_lba: *end_lba,
        },
        Step::GrowNtfs { partition, new_size_bytes, .. } => Action::GrowNtfs {
            partition: *partition,
            new_size_bytes: *new_size_bytes,
        },
        Step::UpdateReagentOffset { partition, new_offset_bytes, .. } => Action::UpdateReagentOffset {
            partition: *partition,
            new_offset_bytes: *new_offset_bytes,
        },
        Step::UpdateBcdPartitionOffset { .. } => {
            return Err(Error::Unsupported(
                "rewriting the BCD's partition offsets (needed to move a recovery partition on an MBR disk)".into(),
            ))
        }
        other => return Err(Error::Unsupported(format!("plan step {other:?}"))),
    })
}

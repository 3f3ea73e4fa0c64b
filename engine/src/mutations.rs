//! Client mutations pushed over the sync socket, applied through the very operations the
//! HTTP API uses, so every rule and access check is the same.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    ActivityPatch, AdvancePatch, Engine, Error, NewActivity, NewAdvance, NewFile, NewTask, Result, TaskPatch,
    changes::Origin,
    protocol::{Mutation, MutationOp, MutationResult},
};

/// Longest accepted mutation id.
pub const MUTATION_ID_LEN_MAX: usize = 64;

fn fields<T: DeserializeOwned>(m: &Mutation) -> Result<T> {
    let v = if m.fields.is_null() { Value::Object(Default::default()) } else { m.fields.clone() };
    serde_json::from_value(v).map_err(|e| Error::invalid(format!("fields do not fit a {} {:?}: {e}", m.kind, m.op)))
}

fn target(m: &Mutation) -> Result<&str> {
    m.record.as_deref().ok_or_else(|| Error::invalid("record is required to update or delete"))
}

impl Engine {
    /// Applies one mutation of `actor`'s device and answers it. A refusal carries the
    /// engine's code and sentence, which never reveal what the actor may not see.
    pub async fn apply_mutation(&self, actor: &str, event: &str, device: &str, m: &Mutation) -> MutationResult {
        let id = m.id.chars().take(MUTATION_ID_LEN_MAX).collect::<String>();
        if m.id.is_empty() || m.id.len() > MUTATION_ID_LEN_MAX {
            return MutationResult::Rejected {
                mutation: id,
                code: "invalid_input".into(),
                message: format!("a mutation id is 1 to {MUTATION_ID_LEN_MAX} characters"),
            };
        }
        let e = self.for_mutation(Origin { device: device.into(), mutation: m.id.clone() });
        match e.dispatch(actor, event, m).await {
            Ok(record) => MutationResult::Accepted { mutation: id, record, seq: e.last_seq() },
            Err(err) => {
                if let Error::Internal(detail) = &err {
                    tracing::error!(%detail, "mutation failed");
                }
                MutationResult::Rejected { mutation: id, code: err.code().into(), message: err.to_string() }
            }
        }
    }

    async fn dispatch(&self, actor: &str, event: &str, m: &Mutation) -> Result<String> {
        let with_id = |mut v: Value| {
            if let (Some(r), Some(o)) = (&m.record, v.as_object_mut()) {
                o.insert("id".into(), Value::String(r.clone()));
            }
            v
        };
        let create = Mutation { fields: with_id(m.fields.clone()), ..m.clone() };
        match (m.kind.as_str(), m.op) {
            ("task", MutationOp::Create) => Ok(self.create_task(actor, event, fields::<NewTask>(&create)?).await?.id),
            ("task", MutationOp::Update) => {
                Ok(self.update_task(actor, event, target(m)?, fields::<TaskPatch>(m)?).await?.id)
            }
            ("task", MutationOp::Delete) => {
                self.delete_task(actor, event, target(m)?).await.map(|()| target(m).unwrap_or_default().into())
            }
            ("activity", MutationOp::Create) => {
                Ok(self.create_activity(actor, event, fields::<NewActivity>(&create)?).await?.id)
            }
            ("activity", MutationOp::Update) => {
                Ok(self.update_activity(actor, event, target(m)?, fields::<ActivityPatch>(m)?).await?.id)
            }
            ("activity", MutationOp::Delete) => {
                self.delete_activity(actor, event, target(m)?).await.map(|()| target(m).unwrap_or_default().into())
            }
            ("file_meta", MutationOp::Create) => Ok(self.add_file(actor, event, fields::<NewFile>(&create)?).await?.id),
            ("file_meta", MutationOp::Delete) => {
                self.delete_file(actor, event, target(m)?).await.map(|()| target(m).unwrap_or_default().into())
            }
            ("advance", MutationOp::Create) => {
                Ok(self.create_advance(actor, event, fields::<NewAdvance>(&create)?).await?.id)
            }
            ("advance", MutationOp::Update) => {
                Ok(self.update_advance(actor, event, target(m)?, fields::<AdvancePatch>(m)?).await?.id)
            }
            ("advance", MutationOp::Delete) => {
                self.delete_advance(actor, event, target(m)?).await.map(|()| target(m).unwrap_or_default().into())
            }
            (kind, op) => Err(Error::invalid(format!("{op:?} of {kind} is not a mutation this server takes"))),
        }
    }
}

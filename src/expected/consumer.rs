//! The outbox consumer that marks the expected-response models a batch changes: each
//! (organisation, instrument key, rater) of its series, once (one statement each). The
//! refit worker decides when the mark is answered.

use std::collections::{BTreeMap, BTreeSet};

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use crate::error::ApiError;
use crate::ids::OrgId;
use crate::outbox::{Batch, Consumer};

pub struct ExpectedModels;

impl Consumer for ExpectedModels {
    fn name(&self) -> &'static str {
        "expected-response marks"
    }

    fn consume<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let mut keys: BTreeMap<OrgId, BTreeSet<(String, String)>> = BTreeMap::new();
            for s in &batch.series {
                keys.entry(s.org)
                    .or_default()
                    .insert((s.instrument.clone(), s.rater.clone()));
            }
            for (org, keys) in keys {
                let keys: Vec<(String, String)> = keys.into_iter().collect();
                super::store::mark_changed(conn, org, &keys).await?;
            }
            Ok(())
        })
    }
}

//! The outbox consumer that keeps `clinician_series` (the all-clinicians list reads one row
//! per series instead of every response) true to `responses` for the series of a batch.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use crate::error::ApiError;
use crate::outbox::{Batch, Consumer};
use crate::series::SeriesArrays;

/// Registered first: the facts of a series are kept before anything reads them.
pub struct KeptSeries;

impl Consumer for KeptSeries {
    fn name(&self) -> &'static str {
        "kept clinician series"
    }

    fn consume<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            super::store::refresh_clinician_series(conn, &SeriesArrays::of(&batch.series)).await?;
            Ok(())
        })
    }
}

//! The `/__sim/*` control routes every emulator serves beside the provider's API, so a process
//! that does not own the emulator (the binary's demo, a load harness) can set faults and read
//! what was received.
//!
//! - `GET /__sim/faults`, `PUT /__sim/faults` (JSON [`Faults`]; answers the faults in force)
//! - `GET /__sim/requests` (JSON list of received sends), `DELETE /__sim/requests`

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::faults::{FaultInjector, Faults};
use crate::journal::Journal;

struct AdminState<T> {
    faults: Arc<FaultInjector>,
    journal: Journal<T>,
}

impl<T> Clone for AdminState<T> {
    fn clone(&self) -> Self {
        AdminState { faults: Arc::clone(&self.faults), journal: self.journal.clone() }
    }
}

/// The control routes for one emulator's faults and journal.
pub(crate) fn routes<T>(faults: Arc<FaultInjector>, journal: Journal<T>) -> Router
where
    T: Serialize + Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/__sim/faults", get(get_faults).put(put_faults))
        .route("/__sim/requests", get(get_requests::<T>).delete(delete_requests::<T>))
        .with_state(AdminState { faults, journal })
}

async fn get_faults<T>(State(state): State<AdminState<T>>) -> Json<Faults> {
    Json(state.faults.get())
}

async fn put_faults<T>(State(state): State<AdminState<T>>, Json(faults): Json<Faults>) -> Response {
    if let Err(reason) = faults.check() {
        return (StatusCode::BAD_REQUEST, reason).into_response();
    }
    state.faults.set(faults);
    Json(state.faults.get()).into_response()
}

async fn get_requests<T: Serialize + Clone>(State(state): State<AdminState<T>>) -> Json<Vec<T>> {
    Json(state.journal.snapshot())
}

async fn delete_requests<T: Clone>(State(state): State<AdminState<T>>) -> StatusCode {
    state.journal.clear();
    StatusCode::NO_CONTENT
}

//! Appointment bookings as the built-in tools see them: a [`BookingStore`] trait
//! that the durable store implements (SPEC §6.2: bookings survive restarts, a
//! slot is never booked twice).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One booked slot. At most one per slot id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub slot_id: String,
    /// The customer key (E.164 number or web id) the slot is booked for.
    pub customer: String,
    /// The name the caller gave, if any.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookOutcome {
    Booked,
    /// The slot was already taken; by whom.
    AlreadyBooked(Booking),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled(Booking),
    NotBooked,
    /// Booked by another customer: left alone.
    NotYours,
}

/// The store could not answer; the message is for logs, not for the model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("booking store failed: {0}")]
pub struct BookingStoreError(pub String);

/// Durable, atomic bookings. Implementations must make `try_book` and `cancel`
/// atomic per slot (no double booking under concurrency) and durable before
/// they return, since their answer is what the caller is told.
pub trait BookingStore {
    /// Books `booking.slot_id` if it is free.
    fn try_book(&self, booking: &Booking) -> Result<BookOutcome, BookingStoreError>;
    /// Frees `slot_id` if it is booked by `customer`.
    fn cancel(&self, slot_id: &str, customer: &str) -> Result<CancelOutcome, BookingStoreError>;
    fn booking(&self, slot_id: &str) -> Result<Option<Booking>, BookingStoreError>;
    fn customer_bookings(&self, customer: &str) -> Result<Vec<Booking>, BookingStoreError>;
}

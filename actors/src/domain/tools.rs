//! The built-in tools of SPEC §6.2 as pure functions over the catalog and the
//! bookings.
//!
//! Tools split in two: *pure* tools answer from data ([`run_builtin`]); *effect*
//! tools change the call or talk to Twilio: `escalate_to_human` and
//! `transfer_to_<agent>` are decided by [`super::effects`] for every channel, and
//! `send_sms` is run by the `ToolExecutor` with arguments read by
//! [`super::effects::SendSmsArgs`].
//! A tool error is not a failure of the call: its message goes back to the model
//! as `{"error": ...}` (SPEC §12), so messages are written for the model to relay.

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use thiserror::Error;

use super::bookings::{BookOutcome, Booking, BookingStore, BookingStoreError, CancelOutcome};
use super::catalog::{parse_date, Catalog, OpenHours, Order, OrderStatus, Product, Slot, Week};
use super::template::and_list;

pub const LOOKUP_ORDER: &str = "lookup_order";
pub const SEARCH_PRODUCTS: &str = "search_products";
pub const STORE_HOURS: &str = "store_hours";
pub const FAQ: &str = "faq";
pub const LIST_SLOTS: &str = "list_slots";
pub const BOOK_APPOINTMENT: &str = "book_appointment";
pub const CANCEL_APPOINTMENT: &str = "cancel_appointment";
pub const SEND_SMS: &str = "send_sms";
pub const ESCALATE_TO_HUMAN: &str = "escalate_to_human";
/// Numbers and identity: a one-time code sent with Twilio Verify, and its check.
pub const VERIFY_SEND: &str = "verify_send";
pub const VERIFY_CHECK: &str = "verify_check";
/// Promises the customer a call back (`when`, `reason`): kept, then placed at its time.
pub const SCHEDULE_CALLBACK: &str = "schedule_callback";
/// Ends the call's conversation for `<Record>`: the caller leaves a message, transcribed
/// onto their record (offered on calls only).
pub const TAKE_VOICEMAIL: &str = "take_voicemail";
/// Prefix of the handoff tools, `transfer_to_<agent>`.
pub const TRANSFER_PREFIX: &str = "transfer_to_";

/// Tools answered by [`run_builtin`].
pub const PURE_TOOLS: [&str; 7] = [
    LOOKUP_ORDER,
    SEARCH_PRODUCTS,
    STORE_HOURS,
    FAQ,
    LIST_SLOTS,
    BOOK_APPOINTMENT,
    CANCEL_APPOINTMENT,
];

/// Every built-in tool name a `kind = "builtin"` tool may have.
pub const BUILTIN_TOOLS: [&str; 13] = [
    LOOKUP_ORDER,
    SEARCH_PRODUCTS,
    STORE_HOURS,
    FAQ,
    LIST_SLOTS,
    BOOK_APPOINTMENT,
    CANCEL_APPOINTMENT,
    SEND_SMS,
    ESCALATE_TO_HUMAN,
    VERIFY_SEND,
    VERIFY_CHECK,
    SCHEDULE_CALLBACK,
    TAKE_VOICEMAIL,
];

const MAX_PRODUCTS: usize = 10;
const DEFAULT_PRODUCTS: usize = 5;
const MAX_SLOTS: usize = 8;

/// Tools that act rather than answer from data: they change the call (handoff,
/// escalation) or send a message, so they never reach [`run_builtin`].
pub fn is_effect_tool(name: &str) -> bool {
    matches!(
        name,
        SEND_SMS | VERIFY_SEND | VERIFY_CHECK | SCHEDULE_CALLBACK
    ) || super::effects::is_effect(name)
}

pub fn is_builtin(name: &str) -> bool {
    BUILTIN_TOOLS.contains(&name)
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ToolError {
    #[error("`{0}` is not a tool that can be run here")]
    NotBuiltin(String),
    #[error("bad arguments: {0}")]
    BadArguments(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    /// The store failed; the detail stays in the source, for logs.
    #[error("the booking system is unavailable right now, please try again later")]
    Unavailable(#[source] BookingStoreError),
}

impl ToolError {
    /// What the model receives.
    pub fn to_output(&self) -> Value {
        json!({ "error": self.to_string() })
    }
}

impl From<BookingStoreError> for ToolError {
    fn from(err: BookingStoreError) -> Self {
        ToolError::Unavailable(err)
    }
}

/// What a built-in tool may read: the catalog, who is asking, and the bookings.
pub struct ToolContext<'a> {
    pub catalog: &'a Catalog,
    /// The customer key (E.164 number or web id), when known.
    pub customer: Option<&'a str>,
    pub bookings: &'a dyn BookingStore,
    /// Numbers the customer recently proved to own (Verify): orders placed from them are
    /// theirs to discuss.
    pub verified: &'a [String],
    /// Whether codes can be sent (`TWILIO_VERIFY_SERVICE_SID` and credentials set).
    pub verification: bool,
}

/// Whether built-in tool `name` reads or writes the bookings — which may wait for the disk
/// or the database, so it must not run on an actor's thread. The others only read the
/// catalog in memory.
pub fn uses_bookings(name: &str) -> bool {
    matches!(name, LIST_SLOTS | BOOK_APPOINTMENT | CANCEL_APPOINTMENT)
}

/// Runs a pure built-in tool with the model's arguments (a JSON object; `null`
/// reads as `{}`).
pub fn run_builtin(name: &str, args: &Value, ctx: &mut ToolContext) -> Result<Value, ToolError> {
    match name {
        LOOKUP_ORDER => lookup_order(parse_args(name, args)?, ctx),
        SEARCH_PRODUCTS => Ok(search_products(parse_args(name, args)?, ctx.catalog)),
        STORE_HOURS => store_hours(parse_args(name, args)?, ctx.catalog),
        FAQ => faq(parse_args(name, args)?, ctx.catalog),
        LIST_SLOTS => list_slots(parse_args(name, args)?, ctx),
        BOOK_APPOINTMENT => book_appointment(parse_args(name, args)?, ctx),
        CANCEL_APPOINTMENT => cancel_appointment(parse_args(name, args)?, ctx),
        _ => Err(ToolError::NotBuiltin(name.to_owned())),
    }
}

fn parse_args<T: DeserializeOwned>(tool: &str, args: &Value) -> Result<T, ToolError> {
    let empty = Value::Object(Map::new());
    let args = if args.is_null() { &empty } else { args };
    if !args.is_object() {
        return Err(ToolError::BadArguments(format!(
            "{tool} takes a JSON object of arguments"
        )));
    }
    T::deserialize(args).map_err(|e| ToolError::BadArguments(format!("{tool}: {e}")))
}

/// An id the model may send as a string or a number (`"1001"`, `1001`, `"#1001"`).
fn flexible_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let id = match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected an id as a string, got {other}"
            )))
        }
    };
    let id = id.trim().trim_start_matches('#').trim();
    Ok((!id.is_empty()).then(|| id.to_owned()))
}

fn required(tool: &str, field: &str, value: Option<String>) -> Result<String, ToolError> {
    value.ok_or_else(|| ToolError::BadArguments(format!("{tool}: missing field `{field}`")))
}

fn customer<'a>(ctx: &ToolContext<'a>, what: &str) -> Result<&'a str, ToolError> {
    ctx.customer.ok_or_else(|| {
        ToolError::Refused(format!(
            "I can't {what} without knowing who the customer is; please call from your own phone"
        ))
    })
}

fn money(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[derive(Deserialize)]
struct LookupOrderArgs {
    #[serde(default, deserialize_with = "flexible_id")]
    order_id: Option<String>,
}

/// Whether running tool `name` with `args` for `customer` reads the numbers the customer
/// verified ([`ToolContext::verified`]): only a `lookup_order` naming an order of the
/// catalog placed from a phone number other than the one the customer is identified by.
/// Any other call answers the same without them, so the executor need not read the
/// customer's record for it.
pub fn needs_verified_numbers(
    name: &str,
    args: &Value,
    catalog: &Catalog,
    customer: Option<&str>,
) -> bool {
    name == LOOKUP_ORDER
        && parse_args::<LookupOrderArgs>(name, args)
            .ok()
            .and_then(|args| args.order_id)
            .and_then(|id| catalog.order(&id))
            .is_some_and(|order| placed_elsewhere(order, customer))
}

/// The customer's phone number, when they are identified by one (a web chat's id is not).
fn caller_phone(customer: Option<&str>) -> Option<&str> {
    customer.filter(|c| c.starts_with('+'))
}

/// Whether `order` was placed from a number other than the phone `customer` is identified
/// by: such an order is disclosed only once they proved to own that number.
fn placed_elsewhere(order: &Order, customer: Option<&str>) -> bool {
    caller_phone(customer).is_some_and(|phone| phone != order.customer)
}

/// One order by id, or the caller's recent orders when no id is given. An order
/// placed from another phone number is not disclosed to a caller identified by
/// number.
fn lookup_order(args: LookupOrderArgs, ctx: &ToolContext) -> Result<Value, ToolError> {
    let caller_phone = caller_phone(ctx.customer);
    let Some(id) = args.order_id else {
        let phone = caller_phone.ok_or_else(|| {
            ToolError::BadArguments(format!("{LOOKUP_ORDER}: missing field `order_id`"))
        })?;
        let orders: Vec<&Order> = ctx.catalog.orders_for(phone).into_iter().take(5).collect();
        if orders.is_empty() {
            return Err(ToolError::NotFound(
                "there are no orders for the number the customer is calling from".into(),
            ));
        }
        let sentences: Vec<String> = orders.iter().copied().map(order_summary).collect();
        let summary = match orders.len() {
            1 => sentences.concat(),
            n => format!("You have {n} recent orders. {}", sentences.join(" ")),
        };
        let orders: Vec<Value> = orders.into_iter().map(order_json).collect();
        return Ok(json!({ "count": orders.len(), "orders": orders, "summary": summary }));
    };
    let order = ctx
        .catalog
        .order(&id)
        .ok_or_else(|| ToolError::NotFound(format!("no order with number {id} exists")))?;
    let verified = ctx.verified.contains(&order.customer);
    if placed_elsewhere(order, ctx.customer) && !verified {
        if ctx.verification {
            return Err(ToolError::Refused(format!(
                "order {id} was placed from a different phone number. It can be discussed once \
                 the customer proves they own that number: offer to text a verification code to \
                 it ({VERIFY_SEND} with order_id {id}), then check the code they read back \
                 ({VERIFY_CHECK})"
            )));
        }
        return Err(ToolError::Refused(format!(
            "order {id} was placed from a different phone number; for privacy it can only be \
             discussed from that number"
        )));
    }
    Ok(order_json(order))
}

fn order_json(order: &Order) -> Value {
    let mut out = json!({
        "summary": order_summary(order),
        "order_id": order.id,
        "status": status_words(order.status),
        "placed_on": order.placed_on,
        "items": order.items.iter().map(|i| json!({
            "name": i.name, "quantity": i.quantity, "price": money(i.price_cents),
        })).collect::<Vec<_>>(),
        "total": money(order.total_cents),
    });
    if let Some(map) = out.as_object_mut() {
        for (key, value) in [
            ("carrier", &order.carrier),
            ("tracking", &order.tracking),
            ("eta", &order.eta),
        ] {
            if let Some(value) = value {
                map.insert(key.to_owned(), json!(value));
            }
        }
    }
    out
}

/// One sentence a voice agent can read out as is.
fn order_summary(order: &Order) -> String {
    let items: Vec<&str> = order.items.iter().map(|i| i.name.as_str()).collect();
    let mut s = format!(
        "Order {} ({}) is {}",
        order.id,
        and_list(&items),
        status_words(order.status)
    );
    let in_transit = matches!(
        order.status,
        OrderStatus::Shipped | OrderStatus::OutForDelivery
    );
    if in_transit {
        if let Some(carrier) = &order.carrier {
            s.push_str(&format!(" with {carrier}"));
        }
        if let Some(tracking) = &order.tracking {
            s.push_str(&format!(", tracking number {tracking}"));
        }
    }
    match (order.status, &order.eta) {
        (OrderStatus::Delivered, Some(date)) => s.push_str(&format!(", delivered on {date}")),
        (OrderStatus::Cancelled | OrderStatus::Returned, _) | (_, None) => {}
        (_, Some(date)) => s.push_str(&format!(", expected delivery {date}")),
    }
    s.push('.');
    s
}

fn status_words(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Processing => "being prepared",
        OrderStatus::Shipped => "shipped",
        OrderStatus::OutForDelivery => "out for delivery",
        OrderStatus::Delivered => "delivered",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Returned => "returned",
    }
}

#[derive(Deserialize)]
struct SearchProductsArgs {
    query: String,
    #[serde(default)]
    max_results: Option<usize>,
}

/// Products ranked by how many query words they match (name counts most).
fn search_products(args: SearchProductsArgs, catalog: &Catalog) -> Value {
    let words = words(&args.query);
    let limit = args
        .max_results
        .unwrap_or(DEFAULT_PRODUCTS)
        .clamp(1, MAX_PRODUCTS);
    let mut scored: Vec<(usize, &Product)> = catalog
        .products()
        .iter()
        .map(|p| {
            let score = words
                .iter()
                .map(|w| {
                    3 * usize::from(mentions(&p.name, w))
                        + 2 * usize::from(mentions(&p.category, w))
                        + 2 * usize::from(p.tags.iter().any(|t| mentions(t, w)))
                        + usize::from(mentions(&p.description, w))
                })
                .sum();
            (score, p)
        })
        .filter(|(score, _)| *score > 0)
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let top: Vec<&Product> = scored.into_iter().take(limit).map(|(_, p)| p).collect();
    let summary = if top.is_empty() {
        format!("No products match \"{}\".", args.query.trim())
    } else {
        let listed: Vec<String> = top
            .iter()
            .map(|p| {
                let stock = if p.in_stock > 0 {
                    "in stock"
                } else {
                    "out of stock"
                };
                format!("{} ({}, {stock})", p.name, money(p.price_cents))
            })
            .collect();
        format!("Found {}: {}.", top.len(), and_list(&listed))
    };
    let products: Vec<Value> = top
        .iter()
        .map(|p| {
            json!({
                "sku": p.sku,
                "name": p.name,
                "price": money(p.price_cents),
                "in_stock": p.in_stock > 0,
                "quantity_available": p.in_stock,
                "description": p.description,
            })
        })
        .collect();
    json!({
        "query": args.query,
        "count": products.len(),
        "products": products,
        "summary": summary,
    })
}

#[derive(Deserialize)]
struct StoreHoursArgs {
    /// A weekday name or a `YYYY-MM-DD` date; absent = the whole week.
    #[serde(default)]
    day: Option<String>,
}

fn store_hours(args: StoreHoursArgs, catalog: &Catalog) -> Result<Value, ToolError> {
    let hours = catalog.hours();
    let Some(day) = args.day.map(|d| d.trim().to_lowercase()) else {
        let week: Map<String, Value> = Week::DAYS
            .iter()
            .map(|d| ((*d).to_owned(), hours_json(hours.week.day(d))))
            .collect();
        let days: Vec<String> = Week::DAYS
            .iter()
            .map(|d| format!("{d} {}", hours_words(hours.week.day(d))))
            .collect();
        let holidays: Vec<Value> = hours
            .holidays
            .iter()
            .map(|h| json!({ "date": h.date, "name": h.name, "hours": hours_json(h.hours.as_ref()) }))
            .collect();
        return Ok(json!({
            "timezone": hours.timezone,
            "address": hours.address,
            "phone": hours.phone,
            "week": week,
            "holidays": holidays,
            "summary": format!("Our hours are: {}.", and_list(&days)),
        }));
    };
    if let Some(weekday) = Week::DAYS.iter().find(|d| **d == day) {
        let open = hours.week.day(weekday);
        return Ok(json!({
            "day": weekday,
            "timezone": hours.timezone,
            "hours": hours_json(open),
            "summary": format!("On {weekday} we are {}.", hours_words(open)),
        }));
    }
    let weekday = weekday_of(&day).ok_or_else(|| {
        ToolError::BadArguments(format!(
            "{STORE_HOURS}: `day` must be a weekday name or a YYYY-MM-DD date, not {day:?}"
        ))
    })?;
    let holiday = hours.holidays.iter().find(|h| h.date == day);
    let (open, occasion) = match holiday {
        Some(h) => (h.hours.as_ref(), format!(" ({})", h.name)),
        None => (hours.week.day(weekday), String::new()),
    };
    Ok(json!({
        "date": day,
        "day": weekday,
        "timezone": hours.timezone,
        "holiday": holiday.map(|h| h.name.as_str()),
        "hours": hours_json(open),
        "summary": format!("On {weekday} {day}{occasion} we are {}.", hours_words(open)),
    }))
}

fn hours_json(hours: Option<&OpenHours>) -> Value {
    match hours {
        Some(h) => json!({ "open": h.open, "close": h.close }),
        None => json!("closed"),
    }
}

fn hours_words(hours: Option<&OpenHours>) -> String {
    match hours {
        Some(h) => format!("open {} to {}", h.open, h.close),
        None => "closed".into(),
    }
}

/// The weekday name of a `YYYY-MM-DD` date (proleptic Gregorian calendar).
fn weekday_of(date: &str) -> Option<&'static str> {
    let (year, month, day) = parse_date(date)?;
    // Howard Hinnant's days_from_civil; 1970-01-01 was a Thursday.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let index = usize::try_from((days + 3).rem_euclid(7)).ok()?;
    Week::DAYS.get(index).copied()
}

#[derive(Deserialize)]
struct FaqArgs {
    question: String,
}

/// The FAQ entry sharing the most words with the question (keywords count double).
fn faq(args: FaqArgs, catalog: &Catalog) -> Result<Value, ToolError> {
    let words = words(&args.question);
    let best = catalog
        .faq()
        .iter()
        .map(|entry| {
            let score: usize = words
                .iter()
                .map(|w| {
                    2 * usize::from(entry.keywords.iter().any(|k| mentions(k, w)))
                        + usize::from(mentions(&entry.question, w))
                })
                .sum();
            (score, entry)
        })
        .filter(|(score, _)| *score > 0)
        .max_by_key(|(score, _)| *score);
    match best {
        Some((_, entry)) => Ok(json!({ "question": entry.question, "answer": entry.answer })),
        None => Err(ToolError::NotFound(
            "the FAQ has no answer to that question".into(),
        )),
    }
}

#[derive(Deserialize)]
struct ListSlotsArgs {
    #[serde(default)]
    service: Option<String>,
    /// `YYYY-MM-DD`
    #[serde(default)]
    date: Option<String>,
}

fn list_slots(args: ListSlotsArgs, ctx: &ToolContext) -> Result<Value, ToolError> {
    let service = args
        .service
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let date = args
        .date
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if let Some(date) = &date {
        if parse_date(date).is_none() {
            return Err(ToolError::BadArguments(format!(
                "{LIST_SLOTS}: `date` must be YYYY-MM-DD, not {date:?}"
            )));
        }
    }
    let mut free = Vec::new();
    for slot in ctx.catalog.slots() {
        let service_matches = service.as_deref().is_none_or(|wanted| {
            let offered = slot.service.to_lowercase();
            offered.contains(wanted) || wanted.contains(&offered)
        });
        let date_matches = date.as_deref().is_none_or(|d| slot.start.starts_with(d));
        if service_matches && date_matches && ctx.bookings.booking(&slot.id)?.is_none() {
            free.push(slot);
            if free.len() == MAX_SLOTS {
                break;
            }
        }
    }
    let listed: Vec<String> = free.iter().copied().map(slot_words).collect();
    let summary = if listed.is_empty() {
        "There are no free appointment slots matching that.".to_owned()
    } else {
        format!("Free slots: {}.", and_list(&listed))
    };
    let slots: Vec<Value> = free.into_iter().map(slot_json).collect();
    Ok(json!({ "count": slots.len(), "slots": slots, "summary": summary }))
}

/// `S101: bike fitting on 2026-09-14 at 10:00`
fn slot_words(slot: &Slot) -> String {
    format!(
        "{}: {} on {}",
        slot.id,
        slot.service,
        slot.start.replacen('T', " at ", 1)
    )
}

fn slot_json(slot: &Slot) -> Value {
    json!({
        "slot_id": slot.id,
        "start": slot.start,
        "duration_min": slot.duration_min,
        "service": slot.service,
    })
}

#[derive(Deserialize)]
struct BookAppointmentArgs {
    #[serde(default, deserialize_with = "flexible_id")]
    slot_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

fn book_appointment(args: BookAppointmentArgs, ctx: &ToolContext) -> Result<Value, ToolError> {
    let slot_id = required(BOOK_APPOINTMENT, "slot_id", args.slot_id)?;
    let customer = customer(ctx, "book an appointment")?;
    let slot = ctx.catalog.slot(&slot_id).ok_or_else(|| {
        ToolError::NotFound(format!(
            "there is no appointment slot {slot_id}; use list_slots to find free ones"
        ))
    })?;
    let booking = Booking {
        slot_id: slot.id.clone(),
        customer: customer.to_owned(),
        name: args
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
    };
    match ctx.bookings.try_book(&booking)? {
        BookOutcome::Booked => {}
        BookOutcome::AlreadyBooked(existing) if existing.customer == customer => {}
        BookOutcome::AlreadyBooked(_) => {
            return Err(ToolError::Refused(format!(
                "slot {} ({}) is already booked by someone else; offer another slot",
                slot.id, slot.start
            )))
        }
    }
    let confirmation = format!("BK-{}", slot.id);
    let mut out = slot_json(slot);
    if let Some(map) = out.as_object_mut() {
        map.insert("booked".into(), json!(true));
        map.insert(
            "summary".into(),
            json!(format!(
                "Booked {}. The confirmation code is {confirmation}.",
                slot_words(slot)
            )),
        );
        map.insert("confirmation".into(), json!(confirmation));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct CancelAppointmentArgs {
    /// Absent: the customer's only booking.
    #[serde(default, deserialize_with = "flexible_id")]
    slot_id: Option<String>,
}

fn cancel_appointment(args: CancelAppointmentArgs, ctx: &ToolContext) -> Result<Value, ToolError> {
    let customer = customer(ctx, "cancel an appointment")?;
    let slot_id = match args.slot_id {
        Some(id) => ctx.catalog.slot(&id).map_or(id, |s| s.id.clone()),
        None => {
            let bookings = ctx.bookings.customer_bookings(customer)?;
            match bookings.as_slice() {
                [] => {
                    return Err(ToolError::NotFound(
                        "the customer has no appointment booked".into(),
                    ))
                }
                [only] => only.slot_id.clone(),
                several => {
                    let ids: Vec<&str> = several.iter().map(|b| b.slot_id.as_str()).collect();
                    return Err(ToolError::BadArguments(format!(
                        "{CANCEL_APPOINTMENT}: the customer has several appointments ({}); \
                         say which `slot_id` to cancel",
                        ids.join(", ")
                    )));
                }
            }
        }
    };
    match ctx.bookings.cancel(&slot_id, customer)? {
        CancelOutcome::Cancelled(booking) => {
            let slot = ctx.catalog.slot(&booking.slot_id);
            let mut out = slot.map_or_else(|| json!({ "slot_id": booking.slot_id }), slot_json);
            let what = slot.map_or_else(|| booking.slot_id.clone(), slot_words);
            if let Some(map) = out.as_object_mut() {
                map.insert("cancelled".into(), json!(true));
                map.insert("summary".into(), json!(format!("Cancelled {what}.")));
            }
            Ok(out)
        }
        CancelOutcome::NotBooked | CancelOutcome::NotYours => Err(ToolError::NotFound(format!(
            "the customer has no booking for slot {slot_id}"
        ))),
    }
}

/// Lower-case words of two or more letters, without filler words.
fn words(text: &str) -> Vec<String> {
    const FILLER: [&str; 24] = [
        "the", "and", "for", "you", "your", "are", "is", "do", "does", "have", "has", "what",
        "when", "how", "can", "any", "my", "me", "of", "to", "in", "an", "it", "with",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 2 && !FILLER.contains(&w.as_str()))
        .collect()
}

/// Whether `text` contains `word` as a word, allowing a plural `s` on either side.
fn mentions(text: &str, word: &str) -> bool {
    let singular = |w: &str| w.strip_suffix('s').unwrap_or(w).to_owned();
    let word = singular(word);
    words(text).iter().any(|w| singular(w) == word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::tests::demo;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Bookings in memory, with the same contract as the store.
    #[derive(Default)]
    struct MemoryBookings(Mutex<BTreeMap<String, Booking>>);

    impl BookingStore for MemoryBookings {
        fn try_book(&self, booking: &Booking) -> Result<BookOutcome, BookingStoreError> {
            let mut map = self.0.lock().unwrap();
            if let Some(existing) = map.get(&booking.slot_id) {
                return Ok(BookOutcome::AlreadyBooked(existing.clone()));
            }
            map.insert(booking.slot_id.clone(), booking.clone());
            Ok(BookOutcome::Booked)
        }
        fn cancel(
            &self,
            slot_id: &str,
            customer: &str,
        ) -> Result<CancelOutcome, BookingStoreError> {
            let mut map = self.0.lock().unwrap();
            match map.get(slot_id) {
                None => Ok(CancelOutcome::NotBooked),
                Some(b) if b.customer != customer => Ok(CancelOutcome::NotYours),
                Some(_) => Ok(CancelOutcome::Cancelled(map.remove(slot_id).unwrap())),
            }
        }
        fn booking(&self, slot_id: &str) -> Result<Option<Booking>, BookingStoreError> {
            Ok(self.0.lock().unwrap().get(slot_id).cloned())
        }
        fn customer_bookings(&self, customer: &str) -> Result<Vec<Booking>, BookingStoreError> {
            let map = self.0.lock().unwrap();
            Ok(map
                .values()
                .filter(|b| b.customer == customer)
                .cloned()
                .collect())
        }
    }

    struct Broken;

    impl BookingStore for Broken {
        fn try_book(&self, _: &Booking) -> Result<BookOutcome, BookingStoreError> {
            Err(BookingStoreError("disk on fire".into()))
        }
        fn cancel(&self, _: &str, _: &str) -> Result<CancelOutcome, BookingStoreError> {
            Err(BookingStoreError("disk on fire".into()))
        }
        fn booking(&self, _: &str) -> Result<Option<Booking>, BookingStoreError> {
            Err(BookingStoreError("disk on fire".into()))
        }
        fn customer_bookings(&self, _: &str) -> Result<Vec<Booking>, BookingStoreError> {
            Err(BookingStoreError("disk on fire".into()))
        }
    }

    fn run(
        catalog: &Catalog,
        bookings: &dyn BookingStore,
        customer: Option<&str>,
        name: &str,
        args: Value,
    ) -> Result<Value, ToolError> {
        let mut ctx = ToolContext {
            catalog,
            customer,
            bookings,
            verified: &[],
            verification: false,
        };
        run_builtin(name, &args, &mut ctx)
    }

    #[test]
    fn an_order_from_another_number_offers_verification_then_is_given_once_verified() {
        let c = demo();
        let b = MemoryBookings::default();
        let owner = owner_of(&c, "1001");
        let mut ctx = ToolContext {
            catalog: &c,
            customer: Some("+19995550000"),
            bookings: &b,
            verified: &[],
            verification: true,
        };
        let args = json!({"order_id": "1001"});
        let offer = run_builtin(LOOKUP_ORDER, &args, &mut ctx).unwrap_err();
        assert!(
            matches!(&offer, ToolError::Refused(m) if m.contains(VERIFY_SEND) && m.contains("1001")),
            "{offer:?}"
        );
        let proved = [owner];
        ctx.verified = &proved;
        let order = run_builtin(LOOKUP_ORDER, &args, &mut ctx).unwrap();
        assert_eq!(order["order_id"], "1001");
        // Another number proved is no key to this order.
        let other = ["+19995550001".to_owned()];
        ctx.verified = &other;
        assert!(run_builtin(LOOKUP_ORDER, &args, &mut ctx).is_err());
    }

    #[test]
    fn verified_numbers_are_needed_only_for_an_order_placed_from_another_number() {
        let c = demo();
        let owner = owner_of(&c, "1001");
        let stranger = "+19995550000";
        let needs = |name: &str, args: Value, customer: Option<&str>| {
            needs_verified_numbers(name, &args, &c, customer)
        };
        // The order was placed from the caller's own number: theirs without proof.
        assert!(!needs(
            LOOKUP_ORDER,
            json!({"order_id": "1001"}),
            Some(&owner)
        ));
        // From another number: proof of owning it would open it, in any spelling of the id.
        for id in [json!("1001"), json!(1001), json!(" #1001 ")] {
            assert!(needs(
                LOOKUP_ORDER,
                json!({ "order_id": id }),
                Some(stranger)
            ));
        }
        // No order named (the caller's own orders), an unknown one, arguments that are not
        // an order's: the answer does not depend on verified numbers.
        assert!(!needs(LOOKUP_ORDER, json!({}), Some(stranger)));
        assert!(!needs(LOOKUP_ORDER, Value::Null, Some(stranger)));
        assert!(!needs(
            LOOKUP_ORDER,
            json!({"order_id": "999999"}),
            Some(stranger)
        ));
        assert!(!needs(
            LOOKUP_ORDER,
            json!({"order_id": {"x": 1}}),
            Some(stranger)
        ));
        assert!(!needs(LOOKUP_ORDER, json!([1001]), Some(stranger)));
        // Nobody known, or a web chat's id rather than a phone: nothing to prove.
        assert!(!needs(LOOKUP_ORDER, json!({"order_id": "1001"}), None));
        assert!(!needs(
            LOOKUP_ORDER,
            json!({"order_id": "1001"}),
            Some("web-42")
        ));
        // Other tools never read them.
        for tool in [SEARCH_PRODUCTS, STORE_HOURS, LIST_SLOTS, VERIFY_CHECK] {
            assert!(!needs(tool, json!({"order_id": "1001"}), Some(stranger)));
        }
    }

    #[test]
    fn needs_verified_numbers_agrees_with_what_lookup_order_answers() {
        // Whenever it says no, the lookup answers the same with or without proof.
        let c = demo();
        let b = MemoryBookings::default();
        let owner = owner_of(&c, "1001");
        let proved = [owner.clone(), "+19995550001".to_owned()];
        for customer in [
            None,
            Some(owner.as_str()),
            Some("+19995550000"),
            Some("web-1"),
        ] {
            for args in [
                json!({"order_id": "1001"}),
                json!({"order_id": "999999"}),
                json!({}),
            ] {
                let answer = |verified: &[String]| {
                    let mut ctx = ToolContext {
                        catalog: &c,
                        customer,
                        bookings: &b,
                        verified,
                        verification: true,
                    };
                    run_builtin(LOOKUP_ORDER, &args, &mut ctx)
                };
                if !needs_verified_numbers(LOOKUP_ORDER, &args, &c, customer) {
                    assert_eq!(answer(&[]), answer(&proved), "{customer:?} {args}");
                } else {
                    assert_ne!(answer(&[]), answer(&proved), "{customer:?} {args}");
                }
            }
        }
    }

    fn owner_of(catalog: &Catalog, order: &str) -> String {
        catalog.order(order).unwrap().customer.clone()
    }

    #[test]
    fn lookup_order_by_id_as_string_or_number() {
        let c = demo();
        let b = MemoryBookings::default();
        let owner = owner_of(&c, "1001");
        for args in [
            json!({"order_id": "1001"}),
            json!({"order_id": 1001}),
            json!({"order_id": " #1001 "}),
        ] {
            let out = run(&c, &b, Some(&owner), LOOKUP_ORDER, args).unwrap();
            assert_eq!(out["order_id"], "1001");
            assert!(out["status"].is_string() && out["total"].as_str().unwrap().starts_with('$'));
        }
        // Unknown callers (web chat) may look an order up by number.
        assert!(run(&c, &b, None, LOOKUP_ORDER, json!({"order_id": "1001"})).is_ok());
    }

    #[test]
    fn lookup_order_protects_other_callers_orders() {
        let c = demo();
        let b = MemoryBookings::default();
        let err = run(
            &c,
            &b,
            Some("+19995550000"),
            LOOKUP_ORDER,
            json!({"order_id": "1001"}),
        );
        assert!(matches!(err, Err(ToolError::Refused(_))), "{err:?}");
        let err = run(&c, &b, None, LOOKUP_ORDER, json!({"order_id": "999999"}));
        assert!(matches!(err, Err(ToolError::NotFound(m)) if m.contains("999999")));
    }

    #[test]
    fn lookup_order_without_id_lists_the_callers_orders() {
        let c = demo();
        let b = MemoryBookings::default();
        let owner = owner_of(&c, "1001");
        let out = run(&c, &b, Some(&owner), LOOKUP_ORDER, json!({})).unwrap();
        assert!(out["count"].as_u64().unwrap() >= 1);
        let err = run(&c, &b, None, LOOKUP_ORDER, Value::Null);
        assert!(matches!(err, Err(ToolError::BadArguments(m)) if m.contains("order_id")));
    }

    #[test]
    fn bad_arguments_are_explained() {
        let c = demo();
        let b = MemoryBookings::default();
        let err = run(&c, &b, None, SEARCH_PRODUCTS, json!({})).unwrap_err();
        assert!(
            matches!(&err, ToolError::BadArguments(m) if m.contains("query")),
            "{err}"
        );
        assert_eq!(
            err.to_output(),
            json!({"error": "bad arguments: search_products: missing field `query`"})
        );
        let err = run(&c, &b, None, LOOKUP_ORDER, json!([1, 2])).unwrap_err();
        assert!(matches!(err, ToolError::BadArguments(_)));
        let err = run(&c, &b, None, LOOKUP_ORDER, json!({"order_id": {"x": 1}})).unwrap_err();
        assert!(matches!(err, ToolError::BadArguments(_)));
        let err = run(&c, &b, None, STORE_HOURS, json!({"day": "someday"})).unwrap_err();
        assert!(matches!(err, ToolError::BadArguments(_)));
    }

    #[test]
    fn effect_and_unknown_tools_are_not_run() {
        let c = demo();
        let b = MemoryBookings::default();
        for name in [SEND_SMS, ESCALATE_TO_HUMAN, "transfer_to_billing", "rm_rf"] {
            let err = run(&c, &b, None, name, json!({})).unwrap_err();
            assert_eq!(err, ToolError::NotBuiltin(name.into()));
        }
        assert!(is_effect_tool(SEND_SMS) && is_effect_tool("transfer_to_orders"));
        assert!(!is_effect_tool(LOOKUP_ORDER));
        assert!(PURE_TOOLS
            .iter()
            .all(|t| is_builtin(t) && !is_effect_tool(t)));
    }

    #[test]
    fn search_products_ranks_name_matches_first() {
        let c = demo();
        let b = MemoryBookings::default();
        let out = run(
            &c,
            &b,
            None,
            SEARCH_PRODUCTS,
            json!({"query": "helmets", "max_results": 3}),
        )
        .unwrap();
        let products = out["products"].as_array().unwrap();
        assert!(!products.is_empty() && products.len() <= 3);
        assert!(products[0]["name"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("helmet"));
        let none = run(&c, &b, None, SEARCH_PRODUCTS, json!({"query": "zzzz"})).unwrap();
        assert_eq!(none["count"], 0);
    }

    #[test]
    fn store_hours_by_week_day_and_date() {
        let c = demo();
        let b = MemoryBookings::default();
        let week = run(&c, &b, None, STORE_HOURS, json!({})).unwrap();
        assert_eq!(week["week"].as_object().unwrap().len(), 7);
        let monday = run(&c, &b, None, STORE_HOURS, json!({"day": "Monday"})).unwrap();
        assert!(monday["hours"]["open"].is_string());
        // 2026-12-25 is a Friday and a holiday in the demo data.
        let christmas = run(&c, &b, None, STORE_HOURS, json!({"day": "2026-12-25"})).unwrap();
        assert_eq!(christmas["day"], "friday");
        assert_eq!(christmas["hours"], "closed");
    }

    #[test]
    fn weekdays() {
        assert_eq!(weekday_of("1970-01-01"), Some("thursday"));
        assert_eq!(weekday_of("2000-02-29"), Some("tuesday"));
        assert_eq!(weekday_of("2026-03-01"), Some("sunday"));
        assert_eq!(weekday_of("1600-01-01"), Some("saturday"));
        assert_eq!(weekday_of("nope"), None);
    }

    #[test]
    fn faq_finds_the_best_entry() {
        let c = demo();
        let b = MemoryBookings::default();
        let out = run(
            &c,
            &b,
            None,
            FAQ,
            json!({"question": "What is your return policy?"}),
        )
        .unwrap();
        assert!(out["answer"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("return"));
        let err = run(&c, &b, None, FAQ, json!({"question": "xyzzy"})).unwrap_err();
        assert!(matches!(err, ToolError::NotFound(_)));
    }

    #[test]
    fn booking_flow_refuses_double_booking() {
        let c = demo();
        let b = MemoryBookings::default();
        let slot = c.slots()[0].clone();
        let free = run(&c, &b, None, LIST_SLOTS, json!({})).unwrap();
        assert_eq!(free["slots"][0]["slot_id"], slot.id);

        let alice = Some("+14155550101");
        let bob = Some("+14155550102");
        let out = run(
            &c,
            &b,
            alice,
            BOOK_APPOINTMENT,
            json!({"slot_id": slot.id, "name": "Alice"}),
        )
        .unwrap();
        assert_eq!(out["booked"], true);
        // Booking again is harmless for Alice, refused for Bob.
        assert!(run(&c, &b, alice, BOOK_APPOINTMENT, json!({"slot_id": slot.id})).is_ok());
        let err = run(&c, &b, bob, BOOK_APPOINTMENT, json!({"slot_id": slot.id})).unwrap_err();
        assert!(
            matches!(&err, ToolError::Refused(m) if m.contains("already booked")),
            "{err}"
        );
        // The slot is no longer listed.
        let free = run(&c, &b, None, LIST_SLOTS, json!({})).unwrap();
        assert!(free["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["slot_id"] != slot.id));

        // Bob cannot cancel it; Alice can, without naming it.
        assert!(matches!(
            run(&c, &b, bob, CANCEL_APPOINTMENT, json!({"slot_id": slot.id})),
            Err(ToolError::NotFound(_))
        ));
        let out = run(&c, &b, alice, CANCEL_APPOINTMENT, json!({})).unwrap();
        assert_eq!(out["cancelled"], true);
        assert_eq!(out["slot_id"], slot.id);
        assert!(run(&c, &b, bob, BOOK_APPOINTMENT, json!({"slot_id": slot.id})).is_ok());
    }

    #[test]
    fn booking_needs_a_customer_and_a_real_slot() {
        let c = demo();
        let b = MemoryBookings::default();
        let slot = c.slots()[0].id.clone();
        assert!(matches!(
            run(&c, &b, None, BOOK_APPOINTMENT, json!({"slot_id": slot})),
            Err(ToolError::Refused(_))
        ));
        assert!(matches!(
            run(
                &c,
                &b,
                Some("+14155550101"),
                BOOK_APPOINTMENT,
                json!({"slot_id": "NOPE"})
            ),
            Err(ToolError::NotFound(_))
        ));
        assert!(matches!(
            run(&c, &b, Some("+14155550101"), BOOK_APPOINTMENT, json!({})),
            Err(ToolError::BadArguments(_))
        ));
    }

    #[test]
    fn cancel_without_id_needs_exactly_one_booking() {
        let c = demo();
        let b = MemoryBookings::default();
        let alice = Some("+14155550101");
        assert!(matches!(
            run(&c, &b, alice, CANCEL_APPOINTMENT, json!({})),
            Err(ToolError::NotFound(_))
        ));
        for slot in &c.slots()[..2] {
            run(&c, &b, alice, BOOK_APPOINTMENT, json!({"slot_id": slot.id})).unwrap();
        }
        assert!(matches!(
            run(&c, &b, alice, CANCEL_APPOINTMENT, json!({})),
            Err(ToolError::BadArguments(m)) if m.contains(&c.slots()[1].id)
        ));
    }

    #[test]
    fn list_slots_filters_by_service_and_date() {
        let c = demo();
        let b = MemoryBookings::default();
        let slot = &c.slots()[0];
        let date = &slot.start[..10];
        let out = run(
            &c,
            &b,
            None,
            LIST_SLOTS,
            json!({"service": slot.service.to_uppercase(), "date": date}),
        )
        .unwrap();
        let slots = out["slots"].as_array().unwrap();
        assert!(!slots.is_empty());
        assert!(slots.iter().all(|s| s["service"] == slot.service.as_str()
            && s["start"].as_str().unwrap().starts_with(date)));
        assert!(matches!(
            run(&c, &b, None, LIST_SLOTS, json!({"date": "next week"})),
            Err(ToolError::BadArguments(_))
        ));
    }

    #[test]
    fn store_failures_do_not_leak_details_to_the_model() {
        let c = demo();
        let err = run(&c, &Broken, Some("+14155550101"), LIST_SLOTS, json!({})).unwrap_err();
        assert!(matches!(err, ToolError::Unavailable(_)));
        assert!(!err.to_string().contains("fire"));
    }
}

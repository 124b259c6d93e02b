//! The demo business: orders, products, opening hours, FAQ and appointment slots,
//! read from `config/catalog/*.json` (SPEC §6.2). Read-only once loaded; the
//! built-in tools ([`super::tools`]) answer from it, and bookings of its slots
//! live in the store.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Processing,
    Shipped,
    OutForDelivery,
    Delivered,
    Cancelled,
    Returned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub price_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    /// The customer's E.164 number: only that caller may hear the details.
    pub customer: String,
    pub status: OrderStatus,
    /// `YYYY-MM-DD`.
    pub placed_on: String,
    pub items: Vec<OrderItem>,
    pub total_cents: u64,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub tracking: Option<String>,
    /// Expected (or actual, once delivered) delivery date, `YYYY-MM-DD`.
    #[serde(default)]
    pub eta: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub category: String,
    pub price_cents: u64,
    pub in_stock: u32,
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Opening and closing time of one day, `HH:MM` in the store's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenHours {
    pub open: String,
    pub close: String,
}

/// The regular week; a missing or `null` day is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Week {
    pub monday: Option<OpenHours>,
    pub tuesday: Option<OpenHours>,
    pub wednesday: Option<OpenHours>,
    pub thursday: Option<OpenHours>,
    pub friday: Option<OpenHours>,
    pub saturday: Option<OpenHours>,
    pub sunday: Option<OpenHours>,
}

impl Week {
    pub const DAYS: [&'static str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];

    /// The hours of a lower-case day name; `None` for a closed day or an unknown name.
    pub fn day(&self, name: &str) -> Option<&OpenHours> {
        match name {
            "monday" => self.monday.as_ref(),
            "tuesday" => self.tuesday.as_ref(),
            "wednesday" => self.wednesday.as_ref(),
            "thursday" => self.thursday.as_ref(),
            "friday" => self.friday.as_ref(),
            "saturday" => self.saturday.as_ref(),
            "sunday" => self.sunday.as_ref(),
            _ => None,
        }
    }
}

/// A date with special hours; closed all day when `hours` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub name: String,
    #[serde(default)]
    pub hours: Option<OpenHours>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreHours {
    /// IANA zone name, told to the caller; times are local to it.
    pub timezone: String,
    pub address: String,
    pub phone: String,
    pub week: Week,
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqEntry {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// Words a caller might use for this question, beyond those in it.
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    pub id: String,
    /// Local start time, `YYYY-MM-DDTHH:MM`, in the store's time zone; sorts by time.
    pub start: String,
    pub duration_min: u32,
    pub service: String,
}

/// The demo business's data. Loaded from `config/catalog/*.json` into sled at first start
/// and from sled after that (SPEC §6.2), so it is serialisable as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    orders: Vec<Order>,
    products: Vec<Product>,
    hours: StoreHours,
    faq: Vec<FaqEntry>,
    slots: Vec<Slot>,
}

impl Catalog {
    /// Reads and checks `orders.json`, `products.json`, `hours.json`, `faq.json`
    /// and `slots.json` from `dir`. Errors name the file and the entry.
    pub fn load(dir: &Path) -> Result<Catalog, CatalogError> {
        Catalog::from_files(|name| {
            let path = dir.join(name);
            let text = fs::read_to_string(&path).map_err(|source| CatalogError::Read {
                path: path.clone(),
                source,
            })?;
            Ok((path, text))
        })
        .map_err(|mut errors| errors.swap_remove(0))
    }

    /// The catalog from its five files, each given by `read` (its name → where it came
    /// from, for errors, and its text): a file on disk or one built into the binary. Every
    /// file is read and checked, and every problem is reported (never an empty list).
    pub fn from_files(
        read: impl Fn(&str) -> Result<(PathBuf, String), CatalogError>,
    ) -> Result<Catalog, Vec<CatalogError>> {
        let mut errors = Vec::new();
        let orders: Option<Vec<Order>> = parse(&read, FILES[0], &mut errors, |o: &Vec<Order>| {
            check_orders(o)
        });
        let products: Option<Vec<Product>> =
            parse(&read, FILES[1], &mut errors, |p: &Vec<Product>| {
                unique("sku", p.iter().map(|p| p.sku.as_str()))
            });
        let hours: Option<StoreHours> = parse(&read, FILES[2], &mut errors, check_hours);
        let faq: Option<Vec<FaqEntry>> =
            parse(&read, FILES[3], &mut errors, |f: &Vec<FaqEntry>| {
                unique("id", f.iter().map(|f| f.id.as_str()))
            });
        let slots: Option<Vec<Slot>> =
            parse(&read, FILES[4], &mut errors, |s: &Vec<Slot>| check_slots(s));
        match (orders, products, hours, faq, slots) {
            (Some(orders), Some(products), Some(hours), Some(faq), Some(mut slots))
                if errors.is_empty() =>
            {
                slots.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
                Ok(Catalog {
                    orders,
                    products,
                    hours,
                    faq,
                    slots,
                })
            }
            _ => Err(errors),
        }
    }

    pub fn order(&self, id: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.id == id)
    }

    /// The customer's orders, newest first.
    pub fn orders_for(&self, customer: &str) -> Vec<&Order> {
        let mut orders: Vec<&Order> = self
            .orders
            .iter()
            .filter(|o| o.customer == customer)
            .collect();
        orders.sort_by(|a, b| b.placed_on.cmp(&a.placed_on));
        orders
    }

    pub fn products(&self) -> &[Product] {
        &self.products
    }

    pub fn hours(&self) -> &StoreHours {
        &self.hours
    }

    pub fn faq(&self) -> &[FaqEntry] {
        &self.faq
    }

    /// All slots, booked or not, by start time.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    pub fn slot(&self, id: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }
}

/// The files a catalog is made of, in the order they are read.
pub const FILES: [&str; 5] = [
    "orders.json",
    "products.json",
    "hours.json",
    "faq.json",
    "slots.json",
];

/// Reads, parses and checks one file; a problem is added to `errors`.
fn parse<T: DeserializeOwned>(
    read: &impl Fn(&str) -> Result<(PathBuf, String), CatalogError>,
    name: &str,
    errors: &mut Vec<CatalogError>,
    verify: impl Fn(&T) -> Result<(), String>,
) -> Option<T> {
    let parsed = read(name).and_then(|(path, text)| {
        let value: T = serde_json::from_str(&text).map_err(|source| CatalogError::Parse {
            path: path.clone(),
            source,
        })?;
        check(&path, verify(&value))?;
        Ok(value)
    });
    parsed.map_err(|err| errors.push(err)).ok()
}

fn check(path: &Path, result: Result<(), String>) -> Result<(), CatalogError> {
    result.map_err(|message| CatalogError::Invalid {
        path: path.to_owned(),
        message,
    })
}

fn unique<'a>(key: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = HashSet::new();
    for id in ids {
        if id.trim().is_empty() {
            return Err(format!("an entry has an empty `{key}`"));
        }
        if !seen.insert(id) {
            return Err(format!("`{key}` {id:?} appears twice"));
        }
    }
    Ok(())
}

fn check_orders(orders: &[Order]) -> Result<(), String> {
    unique("id", orders.iter().map(|o| o.id.as_str()))?;
    for order in orders {
        if !is_e164(&order.customer) {
            return Err(format!(
                "order {:?}: `customer` must be an E.164 number like +14155550123",
                order.id
            ));
        }
        if !is_date(&order.placed_on) || order.eta.as_deref().is_some_and(|d| !is_date(d)) {
            return Err(format!("order {:?}: dates must be YYYY-MM-DD", order.id));
        }
        if order.items.is_empty() {
            return Err(format!("order {:?}: `items` is empty", order.id));
        }
    }
    Ok(())
}

fn check_hours(hours: &StoreHours) -> Result<(), String> {
    for day in Week::DAYS {
        if let Some(h) = hours.week.day(day) {
            check_open_hours(h).map_err(|e| format!("week.{day}: {e}"))?;
        }
    }
    for holiday in &hours.holidays {
        if !is_date(&holiday.date) {
            return Err(format!(
                "holiday {:?}: `date` must be YYYY-MM-DD",
                holiday.name
            ));
        }
        if let Some(h) = &holiday.hours {
            check_open_hours(h).map_err(|e| format!("holiday {:?}: {e}", holiday.date))?;
        }
    }
    Ok(())
}

fn check_open_hours(hours: &OpenHours) -> Result<(), String> {
    if !is_time(&hours.open) || !is_time(&hours.close) {
        return Err("`open` and `close` must be HH:MM".into());
    }
    if hours.open >= hours.close {
        return Err("`open` must be before `close`".into());
    }
    Ok(())
}

fn check_slots(slots: &[Slot]) -> Result<(), String> {
    unique("id", slots.iter().map(|s| s.id.as_str()))?;
    for slot in slots {
        let valid = slot
            .start
            .split_once('T')
            .is_some_and(|(date, time)| is_date(date) && is_time(time));
        if !valid {
            return Err(format!(
                "slot {:?}: `start` must be YYYY-MM-DDTHH:MM",
                slot.id
            ));
        }
    }
    Ok(())
}

/// `+` then 8 to 15 digits, the first not 0 (one definition, in `phone`).
pub use super::phone::is_e164;

/// `YYYY-MM-DD` with a plausible month and day.
pub(crate) fn is_date(s: &str) -> bool {
    parse_date(s).is_some()
}

/// `(year, month, day)` of a `YYYY-MM-DD` date with a plausible month and day.
pub(crate) fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let mut parts = s.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(year) && all_digits(month) && all_digits(day)) {
        return None;
    }
    let (year, month, day) = (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((year, month, day))
}

fn is_time(s: &str) -> bool {
    let Some((h, m)) = s.split_once(':') else {
        return false;
    };
    h.len() == 2
        && m.len() == 2
        && h.parse::<u8>().is_ok_and(|h| h < 24)
        && m.parse::<u8>().is_ok_and(|m| m < 60)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn demo_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/catalog")
    }

    pub(crate) fn demo() -> Catalog {
        Catalog::load(&demo_dir()).unwrap()
    }

    /// A scratch copy of the demo catalog with one file replaced.
    fn with_file(name: &str, text: &str) -> PathBuf {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("catalog-test-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for file in ["orders", "products", "hours", "faq", "slots"] {
            fs::copy(
                demo_dir().join(format!("{file}.json")),
                dir.join(format!("{file}.json")),
            )
            .unwrap();
        }
        fs::write(dir.join(name), text).unwrap();
        dir
    }

    #[test]
    fn the_demo_catalog_loads() {
        let c = demo();
        assert!(c.orders.len() >= 12);
        assert!(c.products.len() >= 10);
        assert!(!c.faq.is_empty());
        assert!(!c.slots.is_empty());
        assert!(c.order("1001").is_some());
        assert!(c.slots.windows(2).all(|w| w[0].start <= w[1].start));
        assert!(c.hours.week.day("monday").is_some());
    }

    #[test]
    fn orders_for_a_customer_are_newest_first() {
        let c = demo();
        let customer = c.order("1001").unwrap().customer.clone();
        let orders = c.orders_for(&customer);
        assert!(!orders.is_empty());
        assert!(orders.windows(2).all(|w| w[0].placed_on >= w[1].placed_on));
        assert!(orders.iter().all(|o| o.customer == customer));
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = with_file("faq.json", "[]");
        fs::remove_file(dir.join("slots.json")).unwrap();
        let err = Catalog::load(&dir).unwrap_err().to_string();
        assert!(err.contains("slots.json"), "{err}");
    }

    #[test]
    fn bad_json_names_the_file_and_the_field() {
        let dir = with_file("products.json", r#"[{"sku": "X", "nme": "typo"}]"#);
        let err = Catalog::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("products.json") && err.contains("nme"),
            "{err}"
        );
    }

    #[test]
    fn invalid_entries_are_named() {
        let order = r#"[{"id":"1","customer":"555-1234","status":"shipped","placed_on":"2026-01-01",
            "items":[{"sku":"a","name":"a","quantity":1,"price_cents":1}],"total_cents":1}]"#;
        let err = Catalog::load(&with_file("orders.json", order))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("orders.json") && err.contains("E.164"),
            "{err}"
        );

        let slots = r#"[{"id":"S1","start":"2026-01-01T10:00","duration_min":30,"service":"x"},
                        {"id":"S1","start":"2026-01-01T11:00","duration_min":30,"service":"x"}]"#;
        let err = Catalog::load(&with_file("slots.json", slots))
            .unwrap_err()
            .to_string();
        assert!(err.contains("slots.json") && err.contains("twice"), "{err}");

        let slots = r#"[{"id":"S1","start":"tomorrow","duration_min":30,"service":"x"}]"#;
        let err = Catalog::load(&with_file("slots.json", slots))
            .unwrap_err()
            .to_string();
        assert!(err.contains("S1") && err.contains("start"), "{err}");
    }

    #[test]
    fn formats() {
        assert!(is_e164("+14155550123"));
        assert!(!is_e164("+0123456789") && !is_e164("14155550123") && !is_e164("+1"));
        assert!(is_date("2026-02-28") && !is_date("2026-13-01") && !is_date("26-1-1"));
        assert!(is_time("09:30") && !is_time("24:00") && !is_time("9:30"));
    }
}

//! The dashboard's view of thousands of actors: search, kind, sort and one page at a time,
//! decided here on the server so neither the page nor the JSON grows with the engine.
//!
//! `GET /actors?q=…&kind=calls|conversations|all&sort=…&order=asc|desc&page=N&per_page=N`
//! (all optional). `q` matches, case-insensitively, a call's `CallSid`, the agent, channel,
//! state and kind, and the customer — by number too: `+1 (415) 555-0101`, `4155550101` and
//! `0101` all find the caller `+14155550101`, although the page shows the number masked.

use std::cmp::Ordering;

use actors::call::messages::CallView;
use serde::{Deserialize, Serialize};

/// Rows per page unless asked otherwise, and at most.
pub const PER_PAGE: usize = 50;
pub const MAX_PER_PAGE: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub q: Option<String>,
    pub kind: Option<String>,
    pub sort: Option<String>,
    pub order: Option<String>,
    pub page: Option<usize>,
    pub per_page: Option<usize>,
}

/// Where a page sits in the matching rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageInfo {
    /// 1-based, within `1..=pages`.
    pub page: usize,
    pub pages: usize,
    pub per_page: usize,
    /// Rows that match the search and kind.
    pub matched: usize,
    /// The sort actually applied (`started` when an unknown one was asked for) and its order.
    pub sort: &'static str,
    pub order: &'static str,
}

/// One page of the matching rows.
#[derive(Debug)]
pub struct Listed {
    pub calls: Vec<CallView>,
    pub conversations: Vec<CallView>,
    /// Every row's `key`, in the order to show them.
    pub order: Vec<String>,
    pub page: PageInfo,
}

const SORTS: [&str; 10] = [
    "started", "id", "kind", "state", "channel", "agent", "restarts", "backlog", "latency",
    "customer",
];

fn compare(sort: &str, a: &CallView, b: &CallView) -> Ordering {
    match sort {
        "id" => a.id.cmp(&b.id),
        "kind" => a.kind.cmp(b.kind),
        "state" => a.state.cmp(b.state),
        "channel" => a.channel.cmp(b.channel),
        "agent" => a.agent.cmp(&b.agent),
        "restarts" => a.restarts.cmp(&b.restarts),
        "backlog" => a.mailbox_delay_us.cmp(&b.mailbox_delay_us),
        // Rows without a latency yet sort as the smallest.
        "latency" => a.last_turn_latency_ms.cmp(&b.last_turn_latency_ms),
        "customer" => a.customer.cmp(&b.customer),
        _ => a.started_at_ms.cmp(&b.started_at_ms),
    }
}

/// The digits of a query that looks like a phone number (digits and `+ ( ) - . ` only,
/// at least three digits), else `None`.
fn phone_digits(q: &str) -> Option<String> {
    let phoneish = q
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '(' | ')' | '-' | '.' | ' '));
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    (phoneish && digits.len() >= 3).then_some(digits)
}

fn matches(view: &CallView, needle: &str, digits: Option<&str>) -> bool {
    if needle.is_empty() {
        return true;
    }
    let has = |field: &str| field.to_lowercase().contains(needle);
    if has(&view.id)
        || has(&view.key)
        || has(&view.agent)
        || has(view.channel)
        || has(view.state)
        || has(view.kind)
        || view.customer.as_deref().is_some_and(has)
        || view.customer_key.as_deref().is_some_and(has)
    {
        return true;
    }
    let Some(digits) = digits else {
        return false;
    };
    view.customer_key.as_deref().is_some_and(|customer| {
        let own: String = customer.chars().filter(char::is_ascii_digit).collect();
        own.contains(digits)
    })
}

/// Filters, sorts and pages the live calls and conversations.
pub fn list(calls: Vec<CallView>, conversations: Vec<CallView>, query: &ListQuery) -> Listed {
    let needle = query.q.as_deref().unwrap_or("").trim().to_lowercase();
    let digits = phone_digits(&needle);
    let (with_calls, with_conversations) = match query.kind.as_deref() {
        Some("calls" | "call") => (true, false),
        Some("conversations" | "conversation") => (false, true),
        _ => (true, true),
    };
    let mut rows: Vec<CallView> = calls
        .into_iter()
        .filter(|_| with_calls)
        .chain(conversations.into_iter().filter(|_| with_conversations))
        .filter(|view| matches(view, &needle, digits.as_deref()))
        .collect();
    let sort = query
        .sort
        .as_deref()
        .and_then(|s| SORTS.iter().find(|known| **known == s))
        .copied()
        .unwrap_or("started");
    let descending = query.order.as_deref() == Some("desc");
    rows.sort_by(|a, b| {
        let order = compare(sort, a, b).then_with(|| a.key.cmp(&b.key));
        if descending {
            order.reverse()
        } else {
            order
        }
    });
    let per_page = query.per_page.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
    let matched = rows.len();
    let pages = matched.div_ceil(per_page).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let shown: Vec<CallView> = rows
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let order = shown.iter().map(|v| v.key.clone()).collect();
    let (calls, conversations) = shown.into_iter().partition(|v| v.kind == "call");
    Listed {
        calls,
        conversations,
        order,
        page: PageInfo {
            page,
            pages,
            per_page,
            matched,
            sort,
            order: if descending { "desc" } else { "asc" },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(kind: &'static str, key: &str, customer: &str, agent: &str, started: u64) -> CallView {
        CallView {
            id: if kind == "call" {
                key.into()
            } else {
                "+1******0000".into()
            },
            key: key.into(),
            customer_key: Some(customer.into()),
            kind,
            channel: if kind == "call" { "voice" } else { "sms" },
            state: "live",
            agent: agent.into(),
            customer: Some(format!("+1******{}", &customer[customer.len() - 4..])),
            audio_mode: "pcmu",
            started_at_ms: started,
            restarts: 0,
            mailbox_delay_us: 0,
            last_turn_latency_ms: None,
            children: Vec::new(),
        }
    }

    fn keys(listed: &Listed) -> Vec<&str> {
        listed.order.iter().map(String::as_str).collect()
    }

    fn sample() -> (Vec<CallView>, Vec<CallView>) {
        (
            vec![
                view("call", "CA01", "+14155550101", "triage", 3),
                view("call", "CA02", "+14155550199", "orders", 1),
            ],
            vec![view("conversation", "c7", "+14155550123", "billing", 2)],
        )
    }

    #[test]
    fn search_finds_a_number_however_it_is_written_and_a_sid_or_agent() {
        for q in ["+1 (415) 555-0101", "4155550101", "0101", "ca01", "CA01"] {
            let (calls, conversations) = sample();
            let listed = list(
                calls,
                conversations,
                &ListQuery {
                    q: Some(q.into()),
                    ..Default::default()
                },
            );
            assert_eq!(keys(&listed), ["CA01"], "{q}");
        }
        let (calls, conversations) = sample();
        let listed = list(
            calls,
            conversations,
            &ListQuery {
                q: Some("BILLING".into()),
                ..Default::default()
            },
        );
        assert_eq!(keys(&listed), ["c7"]);
        // Two digits are not a number: nothing but text fields match.
        let (calls, conversations) = sample();
        let listed = list(
            calls,
            conversations,
            &ListQuery {
                q: Some("99".into()),
                ..Default::default()
            },
        );
        assert_eq!(keys(&listed), ["CA02"], "the masked number shows 0199");
    }

    #[test]
    fn rows_are_sorted_and_paged_on_the_server() {
        let (calls, conversations) = sample();
        let listed = list(calls, conversations, &ListQuery::default());
        assert_eq!(keys(&listed), ["CA02", "c7", "CA01"]);
        assert_eq!(listed.calls.len(), 2);
        assert_eq!(listed.conversations.len(), 1);

        let (calls, conversations) = sample();
        let query = ListQuery {
            sort: Some("agent".into()),
            order: Some("desc".into()),
            per_page: Some(2),
            page: Some(2),
            ..Default::default()
        };
        let listed = list(calls, conversations, &query);
        assert_eq!(keys(&listed), ["c7"]);
        assert_eq!(
            listed.page,
            PageInfo {
                page: 2,
                pages: 2,
                per_page: 2,
                matched: 3,
                sort: "agent",
                order: "desc"
            }
        );

        // Past the last page: the last page. An unknown sort: by start.
        let (calls, conversations) = sample();
        let query = ListQuery {
            kind: Some("calls".into()),
            sort: Some("nonsense".into()),
            page: Some(9),
            ..Default::default()
        };
        let listed = list(calls, conversations, &query);
        assert_eq!(keys(&listed), ["CA02", "CA01"]);
        assert_eq!(listed.page.page, 1);
        assert_eq!(listed.page.sort, "started");
    }

    #[test]
    fn thousands_of_rows_make_one_short_page() {
        let calls: Vec<CallView> = (0..5000)
            .map(|i| view("call", &format!("CA{i:05}"), "+14155550101", "triage", i))
            .collect();
        let listed = list(
            calls,
            Vec::new(),
            &ListQuery {
                per_page: Some(100_000),
                ..Default::default()
            },
        );
        assert_eq!(listed.order.len(), MAX_PER_PAGE);
        assert_eq!(listed.page.pages, 10);
        assert_eq!(listed.page.matched, 5000);
    }
}

//! The cards, decided from facts already read: pure, no I/O (unit tests below).
//!
//! `rapport-alliance` (patient-view): one card per open alert, most severe first, then
//! newest; at most five, then one `info` card counting the rest. The prescribing services,
//! when the orders they are about include a medication: a `critical` card per open safety
//! flag, then one card on the prescribing relationship when the patient has a scored
//! alliance response of the last 180 days (`warning` when an alliance alert is open).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::model::{Card, CardLink, CardSource, Indicator};
use crate::alerts::model::AlertKind;

/// At most this many alert cards on patient-view (then one card counts the rest).
pub const MAX_ALERT_CARDS: usize = 5;
/// A summary is fewer than this many characters.
pub const SUMMARY_LIMIT: usize = 140;
/// Alliance data older than this many days do not make a prescribing card.
pub const ALLIANCE_RECENT_DAYS: i64 = 180;

/// What a card needs of one open alert.
#[derive(Debug, Clone)]
pub struct AlertFacts {
    pub id: Uuid,
    pub kind: AlertKind,
    pub instrument: String,
    pub instrument_title: String,
    /// The instrument is of kind `alliance`.
    pub alliance: bool,
    pub rater: String,
    pub detail: Value,
    pub created_at: DateTime<Utc>,
}

/// The patient's latest alliance series (an alliance instrument's, scored in the last 180
/// days), as the prescribing card tells it.
#[derive(Debug, Clone)]
pub struct AllianceFacts {
    pub instrument: String,
    pub instrument_title: String,
    pub rater: String,
    /// Every point of the series, in time order (at least one).
    pub points: Vec<(DateTime<Utc>, f64)>,
    /// `improved`, `deteriorated` or `unchanged`; None when it cannot be judged.
    pub reliable_change: Option<String>,
}

/// A card before its uuid, source and link.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub indicator: Indicator,
    pub summary: String,
    pub detail: String,
    /// The alerts it carries (feedback on the card shows on them).
    pub alert_ids: Vec<Uuid>,
    /// What "Open in rapport" opens: the instrument and alert, when the card is about one.
    pub instrument: Option<String>,
    pub alert: Option<Uuid>,
}

fn severity(kind: AlertKind) -> Indicator {
    match kind {
        AlertKind::ItemFlag => Indicator::Critical,
        AlertKind::Rupture | AlertKind::Deterioration | AlertKind::NotOnTrack => Indicator::Warning,
        AlertKind::BelowCutoff => Indicator::Info,
    }
}

/// The alert kinds that make the prescribing card a warning (on an alliance instrument).
fn is_alliance_alert(a: &AlertFacts) -> bool {
    a.alliance
        && matches!(
            a.kind,
            AlertKind::Rupture | AlertKind::BelowCutoff | AlertKind::Deterioration
        )
}

/// A number as a clinician reads it: 36, 3.5, 2.33.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn detail_number(detail: &Value, key: &str) -> String {
    match detail.get(key) {
        Some(Value::Number(n)) => n.as_f64().map(number).unwrap_or_else(|| n.to_string()),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

fn short_name(instrument: &str) -> String {
    instrument.to_uppercase()
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// `summary` cut to fewer than 140 characters at a word boundary, with "…".
pub fn shorten(summary: &str) -> String {
    if summary.chars().count() < SUMMARY_LIMIT {
        return summary.to_string();
    }
    // Room for the ellipsis: at most 138 characters of text.
    let room = SUMMARY_LIMIT - 2;
    let head: String = summary.chars().take(room + 1).collect();
    let cut = match head.rfind(char::is_whitespace) {
        Some(i) if i > 0 => &head[..i],
        _ => {
            let end = head.char_indices().nth(room).map_or(head.len(), |(i, _)| i);
            &head[..end]
        }
    };
    format!("{}…", cut.trim_end())
}

/// One alert's card.
pub fn alert_card(a: &AlertFacts) -> Draft {
    let name = short_name(&a.instrument);
    let when = day(a.created_at);
    let d = &a.detail;
    let (summary, what) = match a.kind {
        AlertKind::ItemFlag => (
            format!(
                "Safety flag on {name}: item {} answered {} ({when})",
                detail_number(d, "item"),
                detail_number(d, "answer")
            ),
            format!(
                "The patient's answer to item {} raised the flag `{}`. Review it before anything else.",
                detail_number(d, "item"),
                detail_number(d, "flag")
            ),
        ),
        AlertKind::Rupture => (
            format!(
                "Alliance rupture on {name}: {} to {} ({when})",
                detail_number(d, "from"),
                detail_number(d, "to")
            ),
            format!(
                "The total fell from {} to {} (a drop of {}, rule `{}`). A rupture that is talked \
                 about and repaired is often followed by a better outcome.",
                detail_number(d, "from"),
                detail_number(d, "to"),
                detail_number(d, "drop"),
                detail_number(d, "rule")
            ),
        ),
        AlertKind::Deterioration => (
            format!(
                "Reliable deterioration on {name}: {} to {} ({when})",
                detail_number(d, "baseline"),
                detail_number(d, "latest")
            ),
            format!(
                "From the first point ({}) to the latest ({}), a change of {}: more than measurement \
                 error explains (rule `{}`).",
                detail_number(d, "baseline"),
                detail_number(d, "latest"),
                detail_number(d, "change"),
                detail_number(d, "rule")
            ),
        ),
        AlertKind::NotOnTrack => (
            format!(
                "Not on track on {name}: {} at point {} of the course (bound {}, {when})",
                detail_number(d, "total"),
                detail_number(d, "t"),
                detail_number(d, "bound")
            ),
            format!(
                "At point {} of this course the total {} is beyond the bound {} of what this clinic's \
                 own patients with the same intake reached (expected {}). Patients not on track are \
                 the ones feedback helps most.",
                detail_number(d, "t"),
                detail_number(d, "total"),
                detail_number(d, "bound"),
                detail_number(d, "expected")
            ),
        ),
        AlertKind::BelowCutoff => (
            format!(
                "{name} below its cut-off: {} (cut-off {}, {when})",
                detail_number(d, "total"),
                detail_number(d, "cutoff")
            ),
            format!(
                "The total {} is beyond the instrument's cut-off of {} (`{}`).",
                detail_number(d, "total"),
                detail_number(d, "cutoff"),
                detail_number(d, "comparator")
            ),
        ),
    };
    Draft {
        indicator: severity(a.kind),
        summary: shorten(&summary),
        detail: format!(
            "**{}** ({}-rated), raised {when}.\n\n{what}\n\nThe alert stays open in rapport until it is \
             acknowledged or a later response resolves it.",
            a.instrument_title, a.rater
        ),
        alert_ids: vec![a.id],
        instrument: Some(a.instrument.clone()),
        alert: Some(a.id),
    }
}

/// Open alerts, most severe first, then newest (then by id, so the order is stable).
fn ordered(alerts: &[AlertFacts]) -> Vec<&AlertFacts> {
    let mut sorted: Vec<&AlertFacts> = alerts.iter().collect();
    sorted.sort_by(|a, b| {
        severity(a.kind)
            .cmp(&severity(b.kind))
            .then(b.created_at.cmp(&a.created_at))
            .then(a.id.cmp(&b.id))
    });
    sorted
}

/// `rapport-alliance`: the patient's open alerts as cards.
pub fn patient_view(alerts: &[AlertFacts]) -> Vec<Draft> {
    let sorted = ordered(alerts);
    let mut drafts: Vec<Draft> = sorted.iter().take(MAX_ALERT_CARDS).map(|a| alert_card(a)).collect();
    let rest = sorted.len().saturating_sub(MAX_ALERT_CARDS);
    if rest > 0 {
        let noun = if rest == 1 { "alert" } else { "alerts" };
        drafts.push(Draft {
            indicator: Indicator::Info,
            summary: format!("{rest} more open {noun} in rapport"),
            detail: format!(
                "{rest} more open {noun} of this patient are not shown here; rapport lists every open \
                 alert, most severe first."
            ),
            alert_ids: Vec::new(),
            instrument: None,
            alert: None,
        });
    }
    drafts
}

const WHY_IT_MATTERS: &str = "**Why it matters for this prescription.** In the NIMH depression trial \
    the psychiatrist explained 9.1% of the variance in outcome and the drug 3.4% (McKay, Imel & \
    Wampold, 2006). Across pharmacotherapy studies the alliance predicts outcome (z = .30; Totura \
    et al., 2018): how this patient and prescriber work together is part of how the drug works.";

/// The prescribing services, once the orders include a medication: safety flags first,
/// then the card on the prescribing relationship when there are recent alliance data.
pub fn prescribing(alerts: &[AlertFacts], alliance: Option<&AllianceFacts>) -> Vec<Draft> {
    let sorted = ordered(alerts);
    let mut drafts: Vec<Draft> = sorted
        .iter()
        .filter(|a| a.kind == AlertKind::ItemFlag)
        .map(|a| alert_card(a))
        .collect();
    let Some(facts) = alliance else { return drafts };
    let Some((latest_at, latest)) = facts.points.last() else {
        return drafts;
    };
    let open: Vec<&&AlertFacts> = sorted.iter().filter(|a| is_alliance_alert(a)).collect();
    let rupture = open.iter().find(|a| a.kind == AlertKind::Rupture);
    let name = short_name(&facts.instrument);
    let mut summary = format!("Alliance ({name}): {} on {}", number(*latest), day(*latest_at));
    if let Some(r) = rupture {
        summary.push_str(&format!(
            "; rupture open ({} to {})",
            detail_number(&r.detail, "from"),
            detail_number(&r.detail, "to")
        ));
    } else if !open.is_empty() {
        summary.push_str("; alliance alert open");
    }
    let mut detail = format!(
        "**Latest working alliance: {}** ({}-rated)\n\n| Date | Total |\n|---|---|\n",
        facts.instrument_title, facts.rater
    );
    let skip = facts.points.len().saturating_sub(3);
    for (at, total) in facts.points.iter().skip(skip) {
        detail.push_str(&format!("| {} | {} |\n", day(*at), number(*total)));
    }
    detail.push('\n');
    detail.push_str(&match (facts.points.len(), facts.reliable_change.as_deref()) {
        (1, _) => "One point so far: no change to judge yet.".to_string(),
        (_, Some(class)) => format!("Reliable change since the first point: **{class}**."),
        (_, None) => "Reliable change since the first point: cannot be judged (no norms).".to_string(),
    });
    detail.push_str("\n\n");
    for a in &open {
        detail.push_str(&format!("- Open: {}\n", alert_card(a).summary));
    }
    if !open.is_empty() {
        detail.push('\n');
    }
    detail.push_str(WHY_IT_MATTERS);
    drafts.push(Draft {
        indicator: if open.is_empty() {
            Indicator::Info
        } else {
            Indicator::Warning
        },
        summary: shorten(&summary),
        detail,
        alert_ids: open.iter().map(|a| a.id).collect(),
        instrument: Some(facts.instrument.clone()),
        alert: rupture.or(open.first()).map(|a| a.id),
    });
    drafts
}

/// The order hooks' question: do the orders the hook is about include a medication?
/// `order-select`: the draft orders named in `selections`; `order-sign`: every draft order.
/// Any `MedicationRequest` or `MedicationOrder` counts, whatever its status or intent.
pub fn orders_include_medication(context: &Value, selected_only: bool) -> bool {
    let selections: Vec<&str> = context
        .get("selections")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let entries = context
        .get("draftOrders")
        .and_then(|b| b.get("entry"))
        .and_then(Value::as_array);
    let Some(entries) = entries else { return false };
    entries.iter().filter_map(|e| e.get("resource")).any(|r| {
        let kind = r.get("resourceType").and_then(Value::as_str).unwrap_or_default();
        let medication = kind == "MedicationRequest" || kind == "MedicationOrder";
        if !medication {
            return false;
        }
        if !selected_only {
            return true;
        }
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        selections.iter().any(|s| *s == format!("{kind}/{id}"))
    })
}

/// Where cards point and whether they carry the "Open in rapport" link.
pub struct Finish<'a> {
    pub public_url: &'a str,
    pub patient: &'a str,
    /// The CDS client names an EHR connection: cards carry the SMART link.
    pub link: bool,
}

/// Cards from drafts: a new uuid each, the source, and the link when the client has one.
pub fn finish(drafts: &[Draft], f: &Finish<'_>) -> Vec<Card> {
    drafts
        .iter()
        .map(|d| Card {
            uuid: Uuid::new_v4(),
            summary: d.summary.clone(),
            indicator: d.indicator,
            detail: d.detail.clone(),
            source: CardSource {
                label: "rapport".into(),
                url: f.public_url.to_string(),
            },
            links: f.link.then(|| {
                vec![CardLink {
                    label: "Open in rapport".into(),
                    kind: "smart".into(),
                    url: format!("{}/launch", f.public_url),
                    app_context: json!({"patient": f.patient, "instrument": d.instrument, "alert": d.alert})
                        .to_string(),
                    auto_launchable: false,
                }]
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn alert(kind: AlertKind, minute: u32, alliance: bool) -> AlertFacts {
        let detail = match kind {
            AlertKind::ItemFlag => json!({"flag": "item_9_positive", "item": "9", "answer": 2}),
            AlertKind::Rupture => json!({"from": 48.0, "to": 36.0, "drop": 12.0, "rule": "reliable_drop"}),
            AlertKind::Deterioration => json!({"baseline": 8.0, "latest": 15.0, "change": 7.0, "rule": "rci"}),
            AlertKind::BelowCutoff => json!({"total": 30.5, "cutoff": 36, "comparator": "lt"}),
            AlertKind::NotOnTrack => json!({"t": 4, "total": 19.0, "expected": 12.5, "bound": 16.2}),
        };
        AlertFacts {
            id: Uuid::new_v4(),
            kind,
            instrument: if alliance { "wai-sr" } else { "phq-9" }.into(),
            instrument_title: "An instrument".into(),
            alliance,
            rater: "patient".into(),
            detail,
            created_at: Utc.with_ymd_and_hms(2026, 11, 2, 10, minute, 0).unwrap(),
        }
    }

    #[test]
    fn patient_view_orders_by_severity_then_newest_and_counts_the_rest() {
        let alerts = vec![
            alert(AlertKind::BelowCutoff, 1, true),
            alert(AlertKind::Rupture, 2, true),
            alert(AlertKind::ItemFlag, 3, false),
            alert(AlertKind::Deterioration, 4, false),
            alert(AlertKind::Rupture, 5, true),
            alert(AlertKind::BelowCutoff, 6, true),
            alert(AlertKind::BelowCutoff, 7, true),
        ];
        let cards = patient_view(&alerts);
        assert_eq!(cards.len(), 6);
        let order: Vec<Uuid> = cards.iter().take(5).map(|c| c.alert.unwrap()).collect();
        let id = |i: usize| alerts[i].id;
        assert_eq!(order, vec![id(2), id(4), id(3), id(1), id(6)]);
        let indicators: Vec<Indicator> = cards.iter().map(|c| c.indicator).collect();
        use Indicator::*;
        assert_eq!(indicators, vec![Critical, Warning, Warning, Warning, Info, Info]);
        assert_eq!(cards[5].summary, "2 more open alerts in rapport");
        assert!(cards[5].alert_ids.is_empty());
        assert!(patient_view(&alerts[..5]).iter().all(|c| c.alert.is_some()));
        assert!(patient_view(&[]).is_empty());
    }

    #[test]
    fn a_not_on_track_alert_is_a_warning_that_says_the_bound() {
        let a = alert(AlertKind::NotOnTrack, 1, false);
        let cards = patient_view(&[a, alert(AlertKind::BelowCutoff, 2, false)]);
        assert_eq!(cards[0].indicator, Indicator::Warning);
        assert_eq!(
            cards[0].summary,
            "Not on track on PHQ-9: 19 at point 4 of the course (bound 16.2, 2026-11-02)"
        );
        assert!(cards[0].detail.contains("expected 12.5"), "{}", cards[0].detail);
    }

    #[test]
    fn summaries_are_shorter_than_140_characters_cut_at_a_word() {
        let long = "word ".repeat(40);
        let cut = shorten(&long);
        assert!(cut.chars().count() < 140, "{}", cut.chars().count());
        assert!(cut.ends_with("word…"), "{cut}");
        let exactly = "x".repeat(139);
        assert_eq!(shorten(&exactly), exactly);
        let unbroken = "é".repeat(200);
        let cut = shorten(&unbroken);
        assert_eq!(cut.chars().count(), 139);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn the_prescribing_card_is_a_warning_only_with_an_open_alliance_alert() {
        let facts = AllianceFacts {
            instrument: "wai-sr".into(),
            instrument_title: "Working Alliance Inventory - Short Revised".into(),
            rater: "patient".into(),
            points: (1..=4)
                .map(|d| (Utc.with_ymd_and_hms(2026, 10, d, 9, 0, 0).unwrap(), 40.0 + f64::from(d)))
                .collect(),
            reliable_change: Some("improved".into()),
        };
        let quiet = prescribing(&[alert(AlertKind::Deterioration, 1, false)], Some(&facts));
        assert_eq!(quiet.len(), 1);
        assert_eq!(quiet[0].indicator, Indicator::Info);
        assert_eq!(quiet[0].summary, "Alliance (WAI-SR): 44 on 2026-10-04");
        assert!(quiet[0].detail.contains("| 2026-10-02 | 42 |"));
        assert!(
            !quiet[0].detail.contains("| 2026-10-01 |"),
            "only the last three points"
        );
        assert!(quiet[0].detail.contains("**improved**"));
        assert!(
            quiet[0].detail.contains("9.1%") && quiet[0].detail.contains("3.4%") && quiet[0].detail.contains("z = .30")
        );

        let rupture = alert(AlertKind::Rupture, 2, true);
        let cards = prescribing(&[rupture.clone(), alert(AlertKind::ItemFlag, 1, false)], Some(&facts));
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].indicator, Indicator::Critical);
        assert_eq!(cards[1].indicator, Indicator::Warning);
        assert!(
            cards[1].summary.contains("rupture open (48 to 36)"),
            "{}",
            cards[1].summary
        );
        assert_eq!(cards[1].alert, Some(rupture.id));

        let flag_only = prescribing(&[alert(AlertKind::ItemFlag, 1, false)], None);
        assert_eq!(flag_only.len(), 1);
        assert_eq!(flag_only[0].indicator, Indicator::Critical);
        assert!(prescribing(&[alert(AlertKind::Rupture, 1, true)], None).is_empty());
    }

    #[test]
    fn medication_orders_count_only_when_the_hook_is_about_them() {
        let context = json!({"selections": ["ServiceRequest/lab-1"], "draftOrders": {"resourceType": "Bundle",
            "entry": [{"resource": {"resourceType": "MedicationRequest", "id": "med-1", "status": "draft"}},
                      {"resource": {"resourceType": "ServiceRequest", "id": "lab-1"}}]}});
        assert!(
            !orders_include_medication(&context, true),
            "the medication is not selected"
        );
        assert!(
            orders_include_medication(&context, false),
            "order-sign counts every draft order"
        );
        let selected = json!({"selections": ["MedicationOrder/m2"], "draftOrders": {"entry": [
            {"resource": {"resourceType": "MedicationOrder", "id": "m2", "status": "cancelled"}}]}});
        assert!(orders_include_medication(&selected, true));
        assert!(!orders_include_medication(&json!({}), false));
    }

    #[test]
    fn cards_carry_the_smart_link_only_for_a_client_with_an_ehr_connection() {
        let a = alert(AlertKind::Rupture, 1, true);
        let drafts = patient_view(std::slice::from_ref(&a));
        let finish = |link| Finish {
            public_url: "https://rapport.example",
            patient: "p-1",
            link,
        };
        let plain = finish_cards(&drafts, false, &finish);
        assert!(plain[0].links.is_none());
        let linked = finish_cards(&drafts, true, &finish);
        let card = serde_json::to_value(&linked[0]).unwrap();
        assert_eq!(
            card["source"],
            json!({"label": "rapport", "url": "https://rapport.example"})
        );
        let link = &card["links"][0];
        assert_eq!(link["label"], "Open in rapport");
        assert_eq!(link["type"], "smart");
        assert_eq!(link["url"], "https://rapport.example/launch");
        let context: Value = serde_json::from_str(link["appContext"].as_str().unwrap()).unwrap();
        assert_eq!(
            context,
            json!({"patient": "p-1", "instrument": "wai-sr", "alert": a.id})
        );
        assert_ne!(plain[0].uuid, linked[0].uuid, "a new uuid per card issued");
    }

    fn finish_cards(drafts: &[Draft], link: bool, f: &dyn Fn(bool) -> Finish<'static>) -> Vec<Card> {
        finish(drafts, &f(link))
    }

    #[test]
    fn numbers_read_as_written() {
        assert_eq!(number(36.0), "36");
        assert_eq!(number(30.5), "30.5");
        assert_eq!(number(2.0 / 3.0), "0.67");
    }
}
